// Run page: configuration, live curves (polls /api/run for new metrics
// records every 2 s while the page is open) and evaluation results.
"use strict";
(function () {
  const recs = [];
  let total = 0, charts = {}, configShown = false;

  function series(type, key) {
    const xs = [], ys = [];
    for (const r of recs) {
      if (r.type !== type || r[key] === undefined || r[key] === null) continue;
      xs.push(type === "epoch" ? r.epoch : r.step);
      ys.push(r[key]);
    }
    return [xs, ys];
  }

  function draw(id, label, xlabel, data, color) {
    const box = document.getElementById(id);
    if (charts[id]) { charts[id].setData(data); return; }
    if (data[0].length === 0) { box.textContent = "no data yet"; box.classList.add("empty"); return; }
    box.textContent = ""; box.classList.remove("empty");
    charts[id] = new uPlot({
      width: Math.max(280, box.clientWidth || 360), height: 220,
      scales: { x: { time: false } },
      axes: [{ label: xlabel }, {}],
      series: [{ label: xlabel }, { label: label, stroke: color, width: 2, points: { show: data[0].length < 40 } }],
    }, data, box);
  }

  function showConfig(cfg) {
    const t = document.getElementById("config");
    t.textContent = "";
    for (const k of Object.keys(cfg || {}).sort()) {
      const v = cfg[k];
      t.append(el("tr", {}, el("th", { text: k }), el("td", { text: typeof v === "object" ? JSON.stringify(v) : String(v) })));
    }
  }

  function showEvals(evals) {
    if (!evals.length) return;
    const box = document.getElementById("evals");
    box.textContent = "";
    const t = el("table", { class: "kv" });
    t.append(el("tr", {}, el("th", { text: "file" }), el("th", { text: "command" }), el("th", { text: "top-1" }), el("th", { text: "top-5" }), el("th", { text: "protocol" })));
    for (const e of evals) {
      const r = e.result, pct = (v) => (typeof v === "number" ? (100 * v).toFixed(2) + "%" : "");
      t.append(el("tr", {}, el("td", { text: e.file }), el("td", { text: r.command }), el("td", { text: pct(r.top1) }), el("td", { text: pct(r.top5) }), el("td", { text: r.protocol || "" })));
    }
    box.append(t);
  }

  async function poll() {
    try {
      const info = await api("/api/run?since=" + total);
      if (info.metrics_total < total) { recs.length = 0; total = 0; return poll(); } // the run restarted
      recs.push(...info.metrics);
      total = info.metrics_total;
      if (!configShown) { showConfig(info.config); configShown = true; }
      showEvals(info.evals);
      const step = info.step === null ? "no checkpoint yet" : "last checkpoint at step " + info.step;
      document.getElementById("status").textContent =
        info.encoder + " · " + step + " · " + total + " metrics records" + (info.problems ? " · " + info.problems.join("; ") : "");
      draw("chart-loss", "loss", "step", series("step", "loss"), "#d62728");
      draw("chart-lr", "lr", "step", series("step", "lr"), "#1f77b4");
      draw("chart-knn", "kNN top-1", "epoch", series("epoch", "knn_top1"), "#2ca02c");
      document.body.dataset.ready = "1";
    } catch (e) {
      document.getElementById("status").textContent = "cannot read the run: " + e.message;
    }
  }
  poll();
  setInterval(poll, 2000);
})();
