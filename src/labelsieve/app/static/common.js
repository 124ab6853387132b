// Shared helpers. Every piece of user or item text goes through textContent; nothing is parsed as HTML.
"use strict";
function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function showError(msg) { const e = document.getElementById("error"); if (e) e.textContent = msg || ""; }
async function api(path, options) {
  const r = await fetch(path, options);
  let body = null;
  try { body = await r.json(); } catch (_) { body = null; }
  if (!r.ok) throw new Error((body && body.detail) ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : r.statusText);
  return body;
}
function post(path, payload) {
  return api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(payload)});
}
function fmt(v, d) { return (v === null || v === undefined) ? "n/a" : Number(v).toFixed(d === undefined ? 3 : d); }
// a certified quantity: "—" when there is none (null, NaN or infinite: no threshold was certified)
function fmtCertified(v, d) {
  return (v === null || v === undefined || !Number.isFinite(Number(v))) ? "—" : Number(v).toFixed(d === undefined ? 3 : d);
}
function itemView(item) {
  const box = el("div");
  if (item.kind === "image") {
    const img = el("img", null, {src: item.thumb, alt: item.id, class: "thumb"});
    img.addEventListener("error", async () => {
      try { await api(item.thumb); } catch (e) { showError(e.message); }
    });
    box.appendChild(img);
  } else if (item.kind === "text") {
    box.appendChild(el("pre", item.text, {class: "text"}));
  } else {
    box.appendChild(el("p", "(no display for this item)"));
  }
  return box;
}
function param(name) { return new URLSearchParams(location.search).get(name) || ""; }
