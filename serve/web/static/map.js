// Map page: a 2-D projection (PCA or t-SNE) of a sample of a set, coloured
// by label; hovering a point shows its image.
"use strict";
(function () {
  const setSel = document.getElementById("set");
  if (!setSel) return;
  const cv = document.getElementById("map"), ctx = cv.getContext("2d"), hover = document.getElementById("hover");
  let pts = [], px = [], colors = [];

  function color(l) { return l >= 0 && l < colors.length ? colors[l] : "#282828"; }

  function render(res) {
    pts = res.points; colors = res.colors || [];
    const W = cv.width, H = cv.height, pad = 20;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const p of pts) { x0 = Math.min(x0, p[1]); x1 = Math.max(x1, p[1]); y0 = Math.min(y0, p[2]); y1 = Math.max(y1, p[2]); }
    const sx = (W - 2 * pad) / ((x1 - x0) || 1), sy = (H - 2 * pad) / ((y1 - y0) || 1);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    px = pts.map((p) => [pad + (p[1] - x0) * sx, H - pad - (p[2] - y0) * sy]);
    const r = pts.length > 5000 ? 1.5 : 3;
    pts.forEach((p, i) => {
      ctx.fillStyle = color(p[3]);
      ctx.beginPath(); ctx.arc(px[i][0], px[i][1], r, 0, 2 * Math.PI); ctx.fill();
    });
    const lg = document.getElementById("legend");
    lg.textContent = "";
    (res.classes || []).forEach((c, i) => lg.append(el("span", {}, el("i", { style: "background:" + color(i) }), document.createTextNode(c))));
  }

  async function drawMap() {
    const st = document.getElementById("status");
    const method = document.getElementById("method").value;
    let n = parseInt(document.getElementById("points").value, 10) || 2000;
    if (method === "tsne") n = Math.min(n, 1000);
    st.textContent = "computing " + method.toUpperCase() + " of " + n + " points…";
    try {
      const res = await api("/api/map?set=" + encodeURIComponent(setSel.value) + "&method=" + method + "&points=" + n);
      render(res);
      st.textContent = res.points.length + " images of " + res.set + ", " + method.toUpperCase() + "; hover a point to see its image";
      document.body.dataset.ready = "1";
    } catch (e) { st.textContent = e.message; }
  }

  cv.addEventListener("mousemove", (ev) => {
    const b = cv.getBoundingClientRect();
    const x = (ev.clientX - b.left) * cv.width / b.width, y = (ev.clientY - b.top) * cv.height / b.height;
    let best = -1, bd = 100;
    for (let i = 0; i < px.length; i++) {
      const d = (px[i][0] - x) ** 2 + (px[i][1] - y) ** 2;
      if (d < bd) { bd = d; best = i; }
    }
    if (best < 0) { hover.hidden = true; return; }
    const p = pts[best];
    hover.src = imageURL(setSel.value, p[0], 96);
    hover.title = "image " + p[0];
    hover.style.left = (ev.clientX - b.left + 12) + "px";
    hover.style.top = (ev.clientY - b.top + 12) + "px";
    hover.hidden = false;
  });
  cv.addEventListener("mouseleave", () => { hover.hidden = true; });
  document.getElementById("draw").addEventListener("click", drawMap);
  setSel.addEventListener("change", drawMap);
  drawMap();
})();
