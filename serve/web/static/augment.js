// Augmentations page: random views of an uploaded image under a preset,
// with sliders for jitter strength, blur probability and the smallest crop.
"use strict";
(function () {
  const defaults = { cifar: [0.5, 0], stl10: [1, 0.5], imagenet: [1, 0.5] }; // jitter s, blur p per preset
  let file = null, seed = 1;
  const $ = (id) => document.getElementById(id);

  function sync() { for (const id of ["jitter", "blur", "crop"]) $(id + "-v").textContent = $(id).value; }

  async function render() {
    sync();
    if (!file) return;
    showError("");
    const q = "preset=" + $("preset").value + "&jitter=" + $("jitter").value + "&blur=" + $("blur").value +
      "&crop_min=" + $("crop").value + "&n=16&seed=" + seed;
    try {
      const res = await api("/api/augment?" + q, { method: "POST", body: file });
      $("orig").src = res.original; $("orig").hidden = false;
      const box = $("views");
      box.textContent = "";
      res.views.forEach((u, i) => box.append(el("img", { src: u, alt: "view " + (i + 1), class: "view" })));
      document.body.dataset.ready = "1";
    } catch (e) { showError(e.message); }
  }

  $("preset").addEventListener("change", () => {
    const d = defaults[$("preset").value];
    $("jitter").value = d[0]; $("blur").value = d[1];
    render();
  });
  for (const id of ["jitter", "blur", "crop"]) { $(id).addEventListener("input", sync); $(id).addEventListener("change", render); }
  $("again").addEventListener("click", () => { seed++; render(); });
  setupDrop($("drop"), $("file"), (f) => { file = f; render(); });

  // Or start from an indexed image: the "Random image" button, or a link
  // /augment?set=NAME&id=I (&preset=P).
  async function fromSet(set, id) {
    try {
      const r = await fetch(imageURL(set, id));
      if (!r.ok) throw new Error((await r.json()).error);
      file = await r.blob();
      render();
    } catch (e) { showError(e.message); }
  }
  $("random").addEventListener("click", async () => {
    try {
      const j = await api("/api/sets");
      if (!j.sets.length) throw new Error("no indexed set (start the server with --data SPEC)");
      const s = j.sets[Math.floor(Math.random() * j.sets.length)];
      fromSet(s.name, Math.floor(Math.random() * s.n));
    } catch (e) { showError(e.message); }
  });
  const params = new URLSearchParams(location.search);
  if (params.get("preset") && defaults[params.get("preset")]) {
    $("preset").value = params.get("preset");
    const d = defaults[params.get("preset")];
    $("jitter").value = d[0]; $("blur").value = d[1];
  }
  sync();
  if (params.get("set") && params.get("id") !== null) fromSet(params.get("set"), params.get("id"));
})();
