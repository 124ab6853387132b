"use strict";
// The gallery: GET /api/gallery (q, class, source, page); everything is rendered with textContent.
let page = 0, total = 0;
const PAGE = 48;
const SOURCES = ["auto", "human", "aggregate", "review", "import", "salutary", "unlabeled", "rejected"];

function card(it) {
  const c = el("div", null, {class: "gcard", "data-id": it.id});
  c.appendChild(el("div", it.id, {class: "gid"}));
  if (it.kind === "image") c.appendChild(el("img", null, {src: it.thumb, class: "thumb small", alt: it.id}));
  else if (it.kind === "text") c.appendChild(el("pre", (it.text || "").slice(0, 300), {class: "text"}));
  c.appendChild(el("div", "label: " + (it.label === null ? "—" : it.label), {class: "glabel"}));
  const prov = "source " + it.source + (it.confidence === null ? "" : " · conf " + fmt(it.confidence, 3)) +
    (it.who ? " · by " + it.who : "") + (it.round === null ? "" : " · round " + it.round) +
    " · " + it.n_votes + " vote(s)";
  c.appendChild(el("div", prov, {class: "prov"}));
  return c;
}

async function load() {
  showError("");
  let q = "/api/gallery?page=" + page + "&page_size=" + PAGE;
  const s = document.getElementById("q").value.trim(), cls = document.getElementById("cls").value,
    src = document.getElementById("source").value;
  if (s) q += "&q=" + encodeURIComponent(s);
  if (cls) q += "&class=" + encodeURIComponent(cls);
  if (src) q += "&source=" + encodeURIComponent(src);
  const r = await api(q);
  total = r.total;
  const g = document.getElementById("gallery");
  g.replaceChildren();
  for (const it of r.items) g.appendChild(card(it));
  const pages = Math.max(1, Math.ceil(total / PAGE));
  document.getElementById("pageinfo").textContent = " page " + (page + 1) + " of " + pages + " (" + total + " items) ";
}

function reload() { page = 0; load().catch(e => showError(e.message)); }

api("/api/project").then(p => {
  for (const c of p.classes) document.getElementById("cls").appendChild(el("option", c, {value: c}));
  for (const s of SOURCES) document.getElementById("source").appendChild(el("option", s, {value: s}));
  document.getElementById("q").value = param("q");
  document.getElementById("apply").addEventListener("click", reload);
  document.getElementById("q").addEventListener("keydown", e => { if (e.key === "Enter") reload(); });
  document.getElementById("prev").addEventListener("click", () => { if (page > 0) { page--; load().catch(e => showError(e.message)); } });
  document.getElementById("next").addEventListener("click", () => { if ((page + 1) * PAGE < total) { page++; load().catch(e => showError(e.message)); } });
  return load();
}).catch(e => showError(e.message));
