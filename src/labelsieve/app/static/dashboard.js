"use strict";
function table(id, header, rows) {
  const t = document.getElementById(id); t.replaceChildren();
  const h = el("tr"); header.forEach(c => h.appendChild(el("th", c))); t.appendChild(h);
  if (!rows.length) { const tr = el("tr"); tr.appendChild(el("td", "none yet", {colspan: header.length})); t.appendChild(tr); }
  for (const r of rows) { const tr = el("tr"); r.forEach(v => tr.appendChild(el("td", v))); t.appendChild(tr); }
}
function stat(label, value, id) {
  const c = el("div", null, {class: "card"});
  c.appendChild(el("div", value, {class: "num", id: id})); c.appendChild(el("div", label)); return c;
}
function svgEl(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e;
}
function reliability(rel) {
  const s = document.getElementById("reliability"); s.replaceChildren();
  document.getElementById("basis").textContent = rel.basis ? "(against " + rel.basis + ", n = " + rel.n + ")" : "(no auto-label has been reviewed or has ground truth yet)";
  const P = 30, W = 280;
  s.appendChild(svgEl("rect", {x: P, y: 10, width: W, height: W, fill: "#fff", stroke: "#999"}));
  s.appendChild(svgEl("line", {x1: P, y1: 10 + W, x2: P + W, y2: 10, stroke: "#aaa", "stroke-dasharray": "4"}));
  const edges = rel.edges || [];
  rel.accuracy.forEach((a, k) => {
    if (a === null) return;
    const x0 = edges[k], x1 = edges[k + 1];
    s.appendChild(svgEl("rect", {x: P + W * x0, y: 10 + W * (1 - a), width: Math.max(1, W * (x1 - x0) - 1), height: W * a,
                                 fill: "#1976d2", "fill-opacity": "0.7", class: "relbar"}));
  });
  const t1 = svgEl("text", {x: P + W / 2 - 40, y: W + 28, "font-size": "11"}); t1.textContent = "confidence"; s.appendChild(t1);
  const t2 = svgEl("text", {x: 2, y: 20, "font-size": "11"}); t2.textContent = "acc."; s.appendChild(t2);
}
// a round that certified no threshold (or auto-labeled nothing) has no bound: "—", never 0
function roundBound(r) {
  if (r.certified === false || (!r.n_auto_total && !r.coverage)) return "—";
  return fmtCertified(r.error_bound);
}
async function load() {
  const d = await api("/api/dashboard");
  const st = document.getElementById("stats"); st.replaceChildren();
  const auto = d.by_source.auto || 0;
  st.appendChild(stat("items", d.n_items, "n-items"));
  st.appendChild(stat("labeled now", d.labeled, "n-labeled"));
  st.appendChild(stat("auto-labeled", auto, "n-auto"));
  st.appendChild(stat("coverage", fmt(auto / Math.max(d.n_items, 1), 3), "coverage"));
  st.appendChild(stat("human labels spent", d.labels_spent, "n-spent"));
  st.appendChild(stat("web-app votes", d.votes, "n-votes"));
  st.appendChild(stat("review events", d.reviews, "n-reviews"));
  st.appendChild(stat("reviewed (current)", d.by_source.review || 0, "n-reviewed"));
  table("rounds", ["run", "round", "coverage", "error bound", "human labels", "auto-labeled", "true error"],
        d.rounds.map(r => [r.run_id, r.round, fmt(r.coverage), roundBound(r), r.human_labels, r.n_auto_total,
                           fmt(r.auto_label_error, 4)]));
  table("thresholds", ["class", "threshold"], Object.entries(d.thresholds).map(([c, t]) => [c, fmtCertified(t, 4)]));
  const iv = (lo, hi) => lo === null || lo === undefined ? "—" : "[" + fmt(lo) + ", " + fmt(hi) + "]";
  table("labelers", ["labeler", "votes", "accuracy used", "95% interval", "basis", "gold items", "gold correct", "gold accuracy: Beta posterior mean [95%]"],
        d.labelers.map(r => [r.labeler, r.n_votes, fmt(r.accuracy), iv(r.lower, r.upper), r.basis,
                             r.n_gold || 0, r.n_correct || 0, r.n_gold ? fmt(r.gold_accuracy) + " " + iv(r.gold_lower, r.gold_upper) : "—"]));
  reliability(d.reliability);
}
load().catch(e => showError(e.message));
