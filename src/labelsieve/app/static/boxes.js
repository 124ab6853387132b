// Box review: images with their boxes (SVG overlay) and masks (SVG luminance masks of server PNGs).
// Every decision is POSTed as box events; the drawn boxes are updated in place from the answer.
"use strict";
const SVG = "http://www.w3.org/2000/svg";
const PAGE = 12, MAXW = 420, MAXH = 320;
let page = 0, totalImages = 0, totalBoxes = 0, classes = [], counts = {};
const boxes = new Map();     // box id -> {box, image card, g element, scale}
const selected = new Set();  // box ids

function colour(name) {
  const k = Math.max(0, classes.indexOf(name));
  return "hsl(" + Math.round((k * 137.508 + 10) % 360) + ",85%,55%)";
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function tagText(b) {
  const s = b.score === null ? "" : " " + Number(b.score).toFixed(2);
  if (b.status === "rejected") return "\u2717 " + b.class + s;
  if (b.status === "accepted") return "\u2713 " + b.class + s;
  if (b.status === "relabeled") return b.class + " \u2190 " + b.proposed + s;
  return b.class + s;
}

function drawBox(entry) {
  const b = entry.box, sc = entry.scale;
  const g = svg("g", {class: "box " + b.status + (selected.has(b.id) ? " sel" : ""), "data-id": b.id,
                      "data-status": b.status, "data-class": b.class});
  const col = colour(b.class);
  if (b.mask && b.status !== "rejected") {
    const mid = "m" + b.id;
    const m = svg("mask", {id: mid, maskUnits: "userSpaceOnUse", x: 0, y: 0, width: entry.w, height: entry.h});
    m.appendChild(svg("image", {href: "/api/boxes/mask?box=" + b.id, x: 0, y: 0, width: entry.w, height: entry.h,
                                preserveAspectRatio: "none"}));
    g.appendChild(m);
    g.appendChild(svg("rect", {class: "maskfill", x: 0, y: 0, width: entry.w, height: entry.h, fill: col,
                               "fill-opacity": 0.4, mask: "url(#" + mid + ")", "pointer-events": "none"}));
  }
  const w = b.x2 - b.x1, h = b.y2 - b.y1;
  g.appendChild(svg("rect", {class: "halo", x: b.x1, y: b.y1, width: w, height: h}));
  const frame = svg("rect", {class: "frame", x: b.x1, y: b.y1, width: w, height: h, stroke: col});
  g.appendChild(frame);
  const fs = 11 / sc, label = tagText(b), tw = label.length * fs * 0.58 + fs * 0.4;
  const ty = b.y1 - fs * 1.25 >= 0 ? b.y1 - fs * 1.25 : b.y1;
  const tx = Math.max(0, Math.min(b.x1, entry.w - tw));
  g.appendChild(svg("rect", {x: tx, y: ty, width: tw, height: fs * 1.25,
                             fill: b.status === "rejected" ? "#757575" : col, "fill-opacity": 0.85,
                             "pointer-events": "none"}));
  const t = svg("text", {x: tx + fs * 0.2, y: ty + fs, "font-size": fs, class: "tag"});
  t.textContent = label;
  g.appendChild(t);
  frame.addEventListener("click", ev => { ev.stopPropagation(); pick(b.id, ev.shiftKey); });
  if (entry.g) entry.g.replaceWith(g);
  entry.g = g;
  return g;
}

function pick(id, add) {
  if (add) { if (selected.has(id)) selected.delete(id); else selected.add(id); }
  else { const only = selected.size === 1 && selected.has(id); selected.clear(); if (!only) selected.add(id); }
  refreshSelection();
}
function refreshSelection() {
  for (const [id, e] of boxes) e.g.classList.toggle("sel", selected.has(id));
  document.getElementById("nsel").textContent = selected.size + " selected";
}

function query() {
  const p = new URLSearchParams({page: page, page_size: PAGE});
  const cls = document.getElementById("cls").value, st = document.getElementById("status").value;
  const lo = document.getElementById("smin").value, hi = document.getElementById("smax").value;
  if (cls) p.set("class", cls);
  if (st) p.set("status", st);
  if (lo !== "") p.set("min", lo);
  if (hi !== "") p.set("max", hi);
  return "/api/boxes?" + p.toString();
}

async function load() {
  showError("");
  const r = await api(query());
  totalImages = r.total_images;
  boxes.clear(); selected.clear();
  const grid = document.getElementById("images");
  grid.replaceChildren();
  for (const im of r.images) {
    const sc = Math.min(MAXW / im.width, MAXH / im.height);
    const card = el("div", null, {class: "boxcard", "data-image": im.id});
    const low = im.lowest_pending === null ? "no pending box" : "lowest pending score " + fmt(im.lowest_pending, 2);
    card.appendChild(el("div", im.id + " \u2014 " + im.boxes.length + " box(es), " + low, {class: "cap"}));
    const wrap = el("div", null, {class: "boxwrap"});
    wrap.style.width = Math.round(im.width * sc) + "px";
    wrap.style.height = Math.round(im.height * sc) + "px";
    const img = el("img", null, {src: im.src, alt: im.id});
    if (sc > 2) img.style.imageRendering = "pixelated";
    img.addEventListener("error", async () => { try { await api(im.src); } catch (e) { showError(e.message); } });
    wrap.appendChild(img);
    const s = svg("svg", {viewBox: "0 0 " + im.width + " " + im.height, preserveAspectRatio: "none"});
    // larger boxes first, so a small box inside a large one stays clickable
    const order = im.boxes.slice().sort((a, b) => (b.x2 - b.x1) * (b.y2 - b.y1) - (a.x2 - a.x1) * (a.y2 - a.y1));
    for (const b of order) {
      const entry = {box: b, scale: sc, w: im.width, h: im.height, g: null};
      boxes.set(b.id, entry);
      s.appendChild(drawBox(entry));
    }
    wrap.appendChild(s);
    card.appendChild(wrap);
    grid.appendChild(card);
  }
  counts = r.counts; totalBoxes = r.total_boxes;
  showCounts();
  const pages = Math.max(1, Math.ceil(totalImages / PAGE));
  document.getElementById("pageinfo").textContent = " page " + (page + 1) + " of " + pages + " (" + totalImages +
    " images) ";
  refreshSelection();
}

function showCounts() {
  const c = counts;
  document.getElementById("counts").textContent = "matching boxes: " + totalBoxes + " (pending " + c.pending +
    ", accepted " + c.accepted + ", relabeled " + c.relabeled + ", rejected " + c.rejected + ")";
}

async function act(action) {
  const ids = [...selected];
  if (!ids.length) { showError("select at least one box (click it; shift-click adds more)"); return; }
  const body = {labeler: document.getElementById("labeler").value.trim(), ids: ids, action: action,
                key: crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()};
  if (action === "relabel") body.class = document.getElementById("newclass").value;
  try {
    const r = await post("/api/boxes/review", body);
    for (const b of r.boxes) {
      const e = boxes.get(b.id);
      if (e) { counts[e.box.status]--; counts[b.status]++; e.box = b; drawBox(e); }
    }
    showCounts();
    showError("");
    document.getElementById("msg").textContent = r.action + ": " + r.events + " box event(s) written";
    localStorage.setItem("labeler", body.labeler);
    refreshSelection();
  } catch (e) { showError(e.message); }
}

function reload() { page = 0; load().catch(e => showError(e.message)); }

api("/api/project").then(p => {
  classes = p.classes;
  for (const c of p.classes) {
    document.getElementById("cls").appendChild(el("option", c, {value: c}));
    document.getElementById("newclass").appendChild(el("option", c, {value: c}));
  }
  document.getElementById("labeler").value = param("labeler") || localStorage.getItem("labeler") || "";
  for (const [id, key] of [["cls", "class"], ["status", "status"], ["smin", "min"], ["smax", "max"]]) {
    if (param(key)) document.getElementById(id).value = param(key);
  }
  document.getElementById("apply").addEventListener("click", reload);
  for (const id of ["cls", "status"]) document.getElementById(id).addEventListener("change", reload);
  document.getElementById("prev").addEventListener("click", () => { if (page > 0) { page--; load().catch(e => showError(e.message)); } });
  document.getElementById("next").addEventListener("click", () => { if ((page + 1) * PAGE < totalImages) { page++; load().catch(e => showError(e.message)); } });
  document.getElementById("all").addEventListener("click", () => { for (const id of boxes.keys()) selected.add(id); refreshSelection(); });
  document.getElementById("none").addEventListener("click", () => { selected.clear(); refreshSelection(); });
  for (const a of ["accept", "reject", "relabel"]) document.getElementById(a).addEventListener("click", () => act(a));
  document.addEventListener("keydown", ev => {
    const t = ev.target.tagName;
    if (t === "INPUT" || t === "SELECT" || t === "TEXTAREA" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "a") act("accept");
    else if (ev.key === "r") act("reject");
    else if (ev.key === "l") act("relabel");
    else if (ev.key === "Escape") { selected.clear(); refreshSelection(); }
  });
  return load();
}).catch(e => showError(e.message));
