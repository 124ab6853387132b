"use strict";
// The dashboard's agreement section: GET /api/agreement, rendered with textContent only.
function agreeTable(id, header, rows) {
  const t = document.getElementById(id); t.replaceChildren();
  const h = el("tr"); header.forEach(c => h.appendChild(el("th", c))); t.appendChild(h);
  if (!rows.length) { const tr = el("tr"); tr.appendChild(el("td", "none yet", {colspan: header.length})); t.appendChild(tr); }
  for (const r of rows) { const tr = el("tr"); r.forEach(v => tr.appendChild(el("td", v))); t.appendChild(tr); }
}
async function loadAgreement() {
  const a = await api("/api/agreement");
  document.getElementById("alpha").textContent = a.alpha === null ? "—" : fmt(a.alpha, 3);
  document.getElementById("alpha-note").textContent = "(" + a.alpha_items + " item(s) with 2+ votes, " + a.n_votes + " live vote(s))";
  document.getElementById("agree-interval").textContent = a.interval + " interval";
  agreeTable("agree-labelers", ["labeler", "votes", "gold votes", "correct", "accuracy", "95% interval"],
    a.labelers.map(r => [r.labeler, r.n_votes, r.n_gold, r.n_correct, fmt(r.accuracy, 3),
      r.lower === null ? "n/a" : "[" + fmt(r.lower, 3) + ", " + fmt(r.upper, 3) + "]"]));
  agreeTable("agree-pairs", ["labeler", "labeler", "common items (n)", "equal votes", "agreement"],
    a.pairs.map(p => [p.a, p.b, p.n, p.agree, fmt(p.agreement, 3)]));
}
loadAgreement().catch(e => showError(e.message));
