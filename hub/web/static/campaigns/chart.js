// Campaign stats chart: plain SVG lines from /api/v1/campaigns/{id}/stats (no inline script: CSP).
"use strict";
(function () {
  const SERIES = ["sent", "delivered", "opened", "clicked", "replied", "bounced", "unsubscribed"];
  const COLORS = ["#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#d62728", "#7f7f7f"];
  const NS = "http://www.w3.org/2000/svg";
  const box = document.getElementById("totals");
  const id = box.dataset.campaign;

  function el(name, attrs) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  function draw(points) {
    const svg = document.getElementById("chart");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const w = 900, h = 320, pad = 40;
    const max = Math.max(1, ...points.flatMap((p) => SERIES.map((s) => p[s] || 0)));
    const x = (i) => pad + (points.length < 2 ? 0 : (i * (w - 2 * pad)) / (points.length - 1));
    const y = (v) => h - pad - (v * (h - 2 * pad)) / max;
    svg.appendChild(el("line", { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, stroke: "#999" }));
    svg.appendChild(el("line", { x1: pad, y1: pad, x2: pad, y2: h - pad, stroke: "#999" }));
    const top = el("text", { x: 4, y: pad, "font-size": 11 }); top.textContent = String(max); svg.appendChild(top);
    SERIES.forEach((name, k) => {
      const path = points.map((p, i) => `${i ? "L" : "M"}${x(i)},${y(p[name] || 0)}`).join(" ");
      if (path) svg.appendChild(el("path", { d: path, fill: "none", stroke: COLORS[k], "stroke-width": 2 }));
    });
    if (points.length) {
      const first = el("text", { x: pad, y: h - 10, "font-size": 11 }); first.textContent = points[0].at;
      const last = el("text", { x: w - pad - 140, y: h - 10, "font-size": 11 }); last.textContent = points[points.length - 1].at;
      svg.appendChild(first); svg.appendChild(last);
    }
    const legend = document.getElementById("legend");
    legend.textContent = "";
    SERIES.forEach((name, k) => {
      const item = document.createElement("span");
      const sw = document.createElement("span"); sw.className = "swatch"; sw.style.background = COLORS[k];
      item.appendChild(sw); item.appendChild(document.createTextNode(name)); legend.appendChild(item);
    });
  }

  function variants(totals) {
    const body = document.querySelector("#variants tbody");
    body.textContent = "";
    for (const [name, v] of Object.entries(totals.variants || {})) {
      const tr = document.createElement("tr");
      for (const cell of [name, v.sent, v.opened, v.clicked, v.replied, v.unsubscribed]) {
        const td = document.createElement("td"); td.textContent = cell == null ? "0" : String(cell); tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  async function load() {
    const bucket = document.getElementById("bucket").value;
    const res = await fetch(`/api/v1/campaigns/${id}/stats?bucket=${bucket}`, { credentials: "same-origin" });
    if (!res.ok) { box.textContent = `stats unavailable (${res.status})`; return; }
    const data = await res.json();
    const t = data.totals;
    box.textContent = `recipients ${t.recipients} · ` + Object.entries(t.status).map(([k, v]) => `${k} ${v}`).join(" · ")
      + " · " + Object.entries(t.events).map(([k, v]) => `${k} ${v}`).join(" · ");
    draw(data.series);
    variants(t);
  }

  document.getElementById("bucket").addEventListener("change", load);
  load();
  setInterval(load, 10000);
})();
