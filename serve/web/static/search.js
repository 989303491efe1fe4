// Search page: pick a query image of a set (or upload one) and show its k
// nearest neighbours with cosine scores, labels and precision@k.
"use strict";
(function () {
  const setSel = document.getElementById("set");
  if (!setSel) return;
  let sets = {};

  function k() { return Math.max(1, parseInt(document.getElementById("k").value, 10) || 10); }

  function showQueries() {
    const s = sets[setSel.value], box = document.getElementById("queries");
    box.textContent = "";
    const n = Math.min(24, s.n);
    const ids = new Set();
    while (ids.size < n) ids.add(Math.floor(Math.random() * s.n));
    for (const id of ids) {
      const img = el("img", { src: imageURL(s.name, id, 96), alt: "image " + id, title: "image " + id, class: "cand", "data-id": String(id) });
      img.addEventListener("click", () => searchID(id));
      box.append(img);
    }
  }

  function showResult(res, qsrc, qname, qlabel) {
    document.getElementById("result").hidden = false;
    document.getElementById("qimg").src = qsrc;
    document.getElementById("qname").textContent = qname;
    document.getElementById("qlabel").textContent = qlabel;
    const p = document.getElementById("prec");
    p.textContent = res.precision_at_k === undefined ? "" : "precision@" + res.k + " = " + res.precision_at_k.toFixed(2);
    const box = document.getElementById("neighbors");
    box.textContent = "";
    for (const nb of res.neighbors) {
      const same = res.query_label !== undefined && nb.label === res.query_label;
      const cap = el("figcaption", {}, el("b", { text: nb.score.toFixed(3) }), el("br"), document.createTextNode(nb.class || (nb.label === null ? "" : String(nb.label))));
      const img = el("img", { src: imageURL(res.set, nb.id, 96), alt: nb.name, title: nb.name, class: "nb" });
      img.addEventListener("click", () => searchID(nb.id));
      box.append(el("figure", { class: same ? "hit" : "" }, img, cap));
    }
  }

  async function searchID(id) {
    showError("");
    const s = sets[setSel.value];
    try {
      const res = await api("/api/search?set=" + encodeURIComponent(s.name) + "&id=" + id + "&k=" + k());
      showResult(res, imageURL(s.name, id, 192), "image " + id, res.query_class || (res.query_label === undefined ? "" : String(res.query_label)));
    } catch (e) { showError(e.message); }
  }

  async function searchFile(f) {
    showError("");
    const s = sets[setSel.value];
    try {
      const res = await api("/api/search?set=" + encodeURIComponent(s.name) + "&k=" + k(), { method: "POST", body: f });
      showResult(res, URL.createObjectURL(f), f.name, "");
    } catch (e) { showError(e.message); }
  }

  // A link /search?set=NAME&id=I&k=K opens with that query.
  const params = new URLSearchParams(location.search);
  api("/api/sets").then((j) => {
    for (const s of j.sets) sets[s.name] = s;
    if (sets[params.get("set")]) setSel.value = params.get("set");
    if (params.get("k")) document.getElementById("k").value = params.get("k");
    showQueries();
    if (params.get("id") !== null) searchID(parseInt(params.get("id"), 10));
    document.body.dataset.ready = "1";
  }).catch((e) => showError(e.message));
  setSel.addEventListener("change", showQueries);
  document.getElementById("shuffle").addEventListener("click", showQueries);
  setupDrop(document.getElementById("drop"), document.getElementById("file"), searchFile);
})();
