"use strict";
let page = 0, total = 0, cursor = 0;
const PAGE = 50;
const SOURCES = ["human", "aggregate", "review", "import", "salutary", "rejected"];

async function load() {
  showError("");
  const cls = document.getElementById("cls").value, rnd = document.getElementById("round").value;
  let q = "/api/review?page=" + page + "&page_size=" + PAGE;
  if (cls) q += "&class=" + encodeURIComponent(cls);
  if (rnd !== "") q += "&round=" + encodeURIComponent(rnd);
  const src = document.getElementById("source").value, lo = document.getElementById("minconf").value,
    hi = document.getElementById("maxconf").value, who = document.getElementById("who").value.trim();
  if (src) q += "&source=" + encodeURIComponent(src);
  if (lo !== "") q += "&min_conf=" + encodeURIComponent(lo);
  if (hi !== "") q += "&max_conf=" + encodeURIComponent(hi);
  if (who) q += "&who=" + encodeURIComponent(who);
  const voter = document.getElementById("voter").value.trim();
  if (voter) q += "&voter=" + encodeURIComponent(voter);
  if (document.getElementById("disagree").checked) q += "&disagreement=true";
  const r = await api(q);
  total = r.total;
  const tb = document.querySelector("#queue tbody");
  tb.replaceChildren();
  for (const it of r.items) {
    const tr = el("tr");
    const td = el("td"); td.appendChild(el("input", null, {type: "checkbox", "data-id": it.id, class: "pick"})); tr.appendChild(td);
    const ti = el("td");
    if (it.kind === "image") ti.appendChild(el("img", null, {src: it.thumb, class: "thumb small", alt: it.id}));
    else ti.appendChild(el("span", (it.text || "").slice(0, 120)));
    tr.appendChild(ti);
    [it.id, it.label === null ? "—" : it.label, it.source, it.who, fmt(it.confidence, 4), it.round].forEach(v => tr.appendChild(el("td", v)));
    tr.setAttribute("data-id", it.id);
    tb.appendChild(tr);
  }
  cursor = Math.min(cursor, Math.max(0, r.items.length - 1));
  highlight();
  const pages = Math.max(1, Math.ceil(total / PAGE));
  document.getElementById("pageinfo").textContent = " page " + (page + 1) + " of " + pages + " (" + total + ({auto: " auto-labels) ", rejected: " rejected) "}[document.getElementById("source").value] || " labels) ");
}

function rows() { return [...document.querySelectorAll("#queue tbody tr")]; }
function highlight() {
  rows().forEach((tr, k) => tr.classList.toggle("cursor", k === cursor));
  const cur = rows()[cursor];
  if (cur && cur.scrollIntoView) cur.scrollIntoView({block: "nearest"});
}
function current() { const tr = rows()[cursor]; return tr ? tr.getAttribute("data-id") : null; }

function selected() { return [...document.querySelectorAll(".pick:checked")].map(c => c.getAttribute("data-id")); }

async function act(action, only) {
  const ids = only ? [only] : selected();
  if (!ids.length) { showError("select at least one item"); return; }
  const body = {reviewer: document.getElementById("reviewer").value.trim(), ids: ids, action: action,
                request_id: crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()};
  if (action === "relabel") body.label = document.getElementById("newlabel").value;
  try {
    // un-reject withdraws the rejections (events): the label before each one is current again
    const r = await post(action === "unreject" ? "/api/unreject" : "/api/review", body);
    document.getElementById("msg").textContent = r.action + ": " + r.events + " label event(s) written";
    localStorage.setItem("reviewer", body.reviewer);
    await load();
  } catch (e) { showError(e.message); }
}

api("/api/project").then(p => {
  for (const c of p.classes) {
    document.getElementById("cls").appendChild(el("option", c, {value: c}));
    document.getElementById("newlabel").appendChild(el("option", c, {value: c}));
  }
  document.getElementById("reviewer").value = param("reviewer") || localStorage.getItem("reviewer") || "";
  document.getElementById("apply").addEventListener("click", () => { page = 0; cursor = 0; load().catch(e => showError(e.message)); });
  document.getElementById("prev").addEventListener("click", () => { if (page > 0) { page--; load().catch(e => showError(e.message)); } });
  document.getElementById("next").addEventListener("click", () => { if ((page + 1) * PAGE < total) { page++; load().catch(e => showError(e.message)); } });
  document.getElementById("all").addEventListener("click", () => document.querySelectorAll(".pick").forEach(c => { c.checked = true; }));
  for (const a of ["accept", "reject", "relabel", "unreject"]) document.getElementById(a).addEventListener("click", () => act(a));
  for (const s of SOURCES) document.getElementById("source").appendChild(el("option", s, {value: s}));
  document.addEventListener("keydown", e => {
    const t = e.target && e.target.tagName;
    if (t === "INPUT" || t === "SELECT" || t === "TEXTAREA" || e.ctrlKey || e.metaKey || e.altKey) return;
    const n = rows().length;
    if (e.key === "j" && n) { cursor = Math.min(n - 1, cursor + 1); highlight(); }
    else if (e.key === "k" && n) { cursor = Math.max(0, cursor - 1); highlight(); }
    else if (e.key === "x" && n) { const cb = rows()[cursor].querySelector(".pick"); cb.checked = !cb.checked; }
    else if ((e.key === "a" || e.key === "r") && current()) act(e.key === "a" ? "accept" : "reject", current());
    else if (e.key === "u" && current()) act("unreject", current());
    else return;
    e.preventDefault();
  });
  return load();
}).catch(e => showError(e.message));
