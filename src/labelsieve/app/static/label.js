"use strict";
let project = null, current = null, labeler = "", busy = false;
const KEYS = "1234567890qwertyuiop";

function renderPosterior(post, nLabels, done) {
  const t = document.getElementById("posterior");
  t.replaceChildren();
  project.classes.forEach((c, k) => {
    const tr = el("tr");
    tr.appendChild(el("td", c));
    const td = el("td"); const bar = el("span", null, {class: "bar"});
    bar.style.width = Math.round(150 * post[k]) + "px"; td.appendChild(bar);
    td.appendChild(el("span", " " + fmt(post[k], 3))); tr.appendChild(td); t.appendChild(tr);
  });
  document.getElementById("status").textContent = nLabels + " label(s)" + (done ? "; confident enough: no longer served" : "");
}

async function next() {
  showError("");
  const r = await api("/api/next?labeler=" + encodeURIComponent(labeler));
  if (r.done) {
    document.getElementById("task").hidden = true; document.getElementById("finished").hidden = false; return;
  }
  current = r;
  document.getElementById("finished").hidden = true;
  document.getElementById("task").hidden = false;
  document.getElementById("item").replaceChildren(itemView(r.item));
  document.getElementById("itemid").textContent = "item " + r.item.id;
  renderPosterior(r.item.posterior, r.item.n_labels, false);
}

async function answer(label) {
  if (!current || busy) return;
  busy = true;
  try {
    const r = await post("/api/label", {labeler: labeler, id: current.item.id, label: label, request_id: current.request_id});
    renderPosterior(r.posterior, r.n_labels, r.done);
    document.getElementById("status").textContent += " — answered '" + label + "'";
    await next();
  } catch (e) { showError(e.message); }
  finally { busy = false; }
}

async function start(ev) {
  if (ev) ev.preventDefault();
  labeler = document.getElementById("labeler").value.trim();
  history.replaceState(null, "", "/label?labeler=" + encodeURIComponent(labeler));
  try { await next(); } catch (e) { document.getElementById("task").hidden = true; showError(e.message); }
}

api("/api/project").then(p => {
  project = p;
  const box = document.getElementById("classes");
  const keys = [];
  p.classes.forEach((c, k) => {
    const b = el("button", c, {type: "button", "data-label": c});
    b.addEventListener("click", () => answer(c)); box.appendChild(b);
    if (k < KEYS.length) keys.push(KEYS[k] + " = " + c);
  });
  document.getElementById("keys").textContent = keys.join(", ");
  document.getElementById("who").addEventListener("submit", start);
  const who = param("labeler");
  if (who) { document.getElementById("labeler").value = who; start(); }
}).catch(e => showError(e.message));

document.addEventListener("keydown", ev => {
  if (ev.target && ev.target.tagName === "INPUT") return;
  const k = KEYS.indexOf(ev.key);
  if (project && k >= 0 && k < project.classes.length) answer(project.classes[k]);
});
