"use strict";
let pts = [], scale = null;
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
function colourOf(key, keys) { return key === null ? "#d9d9d9" : PALETTE[keys.indexOf(key) % PALETTE.length]; }
function draw() {
  const c = document.getElementById("map"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  const by = document.getElementById("colour").value, col = by === "label" ? 3 : 4;
  const keys = [...new Set(pts.map(p => p[col]).filter(v => v !== null))].sort();
  for (const p of pts) {
    ctx.fillStyle = colourOf(p[col], keys);
    ctx.fillRect(scale.x(p[1]) - 2, scale.y(p[2]) - 2, 4, 4);
  }
  const lg = document.getElementById("legend"); lg.replaceChildren();
  for (const k of keys) { const s = el("div", "■ " + k); s.style.color = colourOf(k, keys); lg.appendChild(s); }
  const none = pts.filter(p => p[col] === null).length;
  if (none) {  // the light grey points, named (a grey class colour sits close to it)
    const s = el("div", "■ " + (by === "label" ? "unlabeled" : "none") + " (" + none + ")");
    s.style.color = colourOf(null, keys); lg.appendChild(s);
  }
}
async function openItem(id) {
  showError("");
  const it = await api("/api/item?id=" + encodeURIComponent(id));
  const d = document.getElementById("detail"); d.hidden = false; d.replaceChildren();
  d.appendChild(itemView(it));
  d.appendChild(el("p", "item " + it.id + ": " + (it.label === null ? "unlabeled" : it.label + " (" + it.source + ")")));
  d.appendChild(el("p", it.events.length + " label event(s)"));
  const sim = await api("/api/similar?k=8&id=" + encodeURIComponent(id));
  document.getElementById("simtitle").hidden = false;
  const box = document.getElementById("similar"); box.replaceChildren();
  for (const s of sim.items) {
    const a = el("a", null, {href: "#", title: s.id + " (distance " + fmt(s.distance, 2) + ")", class: "simitem"});
    if (s.kind === "image") a.appendChild(el("img", null, {src: s.thumb, class: "thumb small", alt: s.id}));
    else a.appendChild(el("span", s.id + " "));
    a.addEventListener("click", ev => { ev.preventDefault(); openItem(s.id).catch(e => showError(e.message)); });
    box.appendChild(a);
  }
}
api("/api/map?limit=3000").then(m => {
  pts = m.points;
  document.getElementById("info").textContent = m.method + ": " + m.shown + " of " + m.n_items + " items shown";
  const xs = pts.map(p => p[1]), ys = pts.map(p => p[2]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  scale = {x: v => 10 + 580 * (v - x0) / ((x1 - x0) || 1), y: v => 590 - 580 * (v - y0) / ((y1 - y0) || 1)};
  draw();
  document.getElementById("colour").addEventListener("change", draw);
  document.getElementById("map").addEventListener("click", ev => {
    const r = ev.target.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
    let best = null, bd = Infinity;
    for (const p of pts) { const d = (scale.x(p[1]) - mx) ** 2 + (scale.y(p[2]) - my) ** 2; if (d < bd) { bd = d; best = p; } }
    if (best && bd < 400) openItem(best[0]).catch(e => showError(e.message));
  });
}).catch(e => showError(e.message));
