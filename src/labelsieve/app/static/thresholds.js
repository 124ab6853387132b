"use strict";
let data = null;
function svgEl(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e;
}
function draw(d) {
  const s = document.getElementById("curve"); s.replaceChildren();
  const L = 50, T = 10, W = 570, H = 260, c = d.curve, eps = d.epsilon;
  const x = v => L + W * v, ymax = Math.max(eps * 2, 0.001, ...c.upper.filter((u, i) => c.tested[i]).map(u => Math.min(u, 1)));
  const y = v => T + H * (1 - Math.min(v, ymax) / ymax);
  s.appendChild(svgEl("rect", {x: L, y: T, width: W, height: H, fill: "#fff", stroke: "#999"}));
  s.appendChild(svgEl("line", {x1: L, x2: L + W, y1: y(eps), y2: y(eps), stroke: "#b00020", "stroke-dasharray": "5"}));
  const path = (vals, keep) => {
    let p = "";
    c.coverage.forEach((cv, i) => { if (keep(i)) p += (p ? " L" : "M") + x(cv).toFixed(1) + " " + y(vals[i]).toFixed(1); });
    return p;
  };
  if (c.coverage.length) {
    s.appendChild(svgEl("path", {d: path(c.error, () => true), fill: "none", stroke: "#9e9e9e", "stroke-width": 1.5}));
    s.appendChild(svgEl("path", {d: path(c.upper, i => c.tested[i]), fill: "none", stroke: "#90caf9", "stroke-width": 2, class: "bound-all"}));
    s.appendChild(svgEl("path", {d: path(c.upper, i => c.in_sequence[i]), fill: "none", stroke: "#1565c0", "stroke-width": 2.5, class: "bound-seq"}));
  }
  if (d.certified) {
    const i = d.certified.index;
    s.appendChild(svgEl("circle", {cx: x(c.coverage[i]), cy: y(c.upper[i]), r: 5, fill: "#2e7d32", id: "certmark"}));
  }
  const cur = svgEl("line", {id: "cursor", x1: 0, x2: 0, y1: T, y2: T + H, stroke: "#555"}); s.appendChild(cur);
  const lab = (tx, xx, yy) => { const t = svgEl("text", {x: xx, y: yy, "font-size": "11"}); t.textContent = tx; s.appendChild(t); };
  lab("validation coverage", L + W / 2 - 50, T + H + 28); lab("0", L - 4, T + H + 14); lab("1", L + W - 4, T + H + 14);
  lab(fmt(ymax, 3), 4, T + 10); lab("0", 30, T + H); lab("ε " + eps, L + W - 50, y(eps) - 4);
}
function show(i) {
  const c = data.curve;
  if (!c.threshold.length) return;
  const ok = c.upper[i] <= data.epsilon;
  document.getElementById("s-threshold").textContent = fmt(c.threshold[i], 4);
  document.getElementById("s-pool").textContent = String(c.pool_count[i]);
  document.getElementById("s-bound").textContent = fmt(c.upper[i], 4);
  document.getElementById("s-ok").textContent = ok ? "yes" : "no";
  document.getElementById("s-cov").textContent = fmt(c.coverage[i], 3) + " (" + c.n[i] + ")";
  document.getElementById("s-note").textContent =
    !c.tested[i] ? "too few validation points here (fewer than " + data.min_n + "): the scan does not test this position" :
    c.in_sequence[i] ? "within the scan's passing sequence: certifiable" :
    ok ? "passes alone, but lies after the scan's first failure: choosing it is not covered by the guarantee" : "fails: bound above epsilon";
  const x = 50 + 570 * c.coverage[i];
  const cur = document.getElementById("cursor"); cur.setAttribute("x1", x); cur.setAttribute("x2", x);
}
async function load(cls) {
  showError("");
  const d = await api("/api/thresholds" + (cls ? "?class=" + encodeURIComponent(cls) : ""));
  data = d;
  const sel = document.getElementById("cls");
  if (!sel.options.length) d.classes.forEach(k => sel.appendChild(el("option", k === "all" ? "all (one global threshold)" : k, {value: k})));
  sel.value = d.class;
  document.getElementById("runinfo").textContent = "run " + d.run_id + ", round " + d.round + ": " + d.bound + " bound, epsilon " +
    d.epsilon + ", delta " + d.delta + " (" + fmt(d.delta_per_test, 4) + " per test" + (d.delta_bound !== d.delta_per_test ? ", " + fmt(d.delta_bound, 4) + " for sampling" : "") +
    "), " + d.n_validation + " validation points, " + d.n_pool + " pool items";
  document.getElementById("statement").textContent = d.statement;
  document.getElementById("scopenote").textContent = d.scope_of_run ? "(the run's scope: " + d.run_scope + ")" :
    "(the run used " + d.run_scope + " thresholds; this view recomputes the " + d.scope + " scan for exploration)";
  draw(d);
  const sl = document.getElementById("slider");
  sl.max = String(Math.max(d.curve.threshold.length - 1, 0));
  const start = d.certified ? d.certified.index : 0;
  sl.value = String(start);
  show(start);
  document.getElementById("certified").textContent = d.certified ?
    "threshold " + fmt(d.certified.threshold, 4) + ": " + d.certified.n + " validation points, " + d.certified.errors +
    " errors, bound " + fmt(d.certified.upper, 4) + " <= " + d.epsilon + "; auto-labels " + d.certified.pool_count + " pool items" :
    "— (no certified threshold" + (d.reason ? ": " + d.reason : "") + ")";
}
document.getElementById("slider").addEventListener("input", e => show(Number(e.target.value)));
document.getElementById("cls").addEventListener("change", e => load(e.target.value).catch(x => showError(x.message)));
document.getElementById("apply").addEventListener("click", async () => {
  showError(""); document.getElementById("msg").textContent = "";
  try {
    const r = await post("/api/thresholds/apply", {reviewer: document.getElementById("reviewer").value.trim()});
    document.getElementById("msg").textContent = "run " + r.run_id + ": " + r.events + " auto-label event(s) written";
    localStorage.setItem("reviewer", document.getElementById("reviewer").value.trim());
  } catch (e) { showError(e.message); }
});
document.getElementById("reviewer").value = param("reviewer") || localStorage.getItem("reviewer") || "";
load(param("class")).catch(e => showError(e.message));
