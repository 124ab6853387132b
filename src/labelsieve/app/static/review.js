"use strict";
let page = 0, total = 0;
const PAGE = 50;

async function load() {
  showError("");
  const cls = document.getElementById("cls").value, rnd = document.getElementById("round").value;
  let q = "/api/review?page=" + page + "&page_size=" + PAGE;
  if (cls) q += "&class=" + encodeURIComponent(cls);
  if (rnd !== "") q += "&round=" + encodeURIComponent(rnd);
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
    [it.id, it.label, fmt(it.confidence, 4), it.round].forEach(v => tr.appendChild(el("td", v)));
    tb.appendChild(tr);
  }
  const pages = Math.max(1, Math.ceil(total / PAGE));
  document.getElementById("pageinfo").textContent = " page " + (page + 1) + " of " + pages + " (" + total + " auto-labels) ";
}

function selected() { return [...document.querySelectorAll(".pick:checked")].map(c => c.getAttribute("data-id")); }

async function act(action) {
  const ids = selected();
  if (!ids.length) { showError("select at least one item"); return; }
  const body = {reviewer: document.getElementById("reviewer").value.trim(), ids: ids, action: action,
                request_id: crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()};
  if (action === "relabel") body.label = document.getElementById("newlabel").value;
  try {
    const r = await post("/api/review", body);
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
  document.getElementById("apply").addEventListener("click", () => { page = 0; load().catch(e => showError(e.message)); });
  document.getElementById("prev").addEventListener("click", () => { if (page > 0) { page--; load().catch(e => showError(e.message)); } });
  document.getElementById("next").addEventListener("click", () => { if ((page + 1) * PAGE < total) { page++; load().catch(e => showError(e.message)); } });
  document.getElementById("all").addEventListener("click", () => document.querySelectorAll(".pick").forEach(c => { c.checked = true; }));
  for (const a of ["accept", "reject", "relabel"]) document.getElementById(a).addEventListener("click", () => act(a));
  return load();
}).catch(e => showError(e.message));
