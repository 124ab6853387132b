// The label page. Everything is rendered with textContent / createElement: no user or item text is
// ever parsed as HTML (the instructions' markdown subset is built node by node, see renderMarkdown).
"use strict";
let project = null, current = null, labeler = "", busy = false, beyond = false, keys = [], heartbeat = null;
const NUMBERED = "1234567890qwertyuiopasdfghjklzxcvbnm";
const HEARTBEAT_MS = 60000;

// ------------------------------------------------------------------ requests
async function call(path, payload) {
  const opts = payload === undefined ? {credentials: "same-origin"} :
    {method: "POST", headers: {"Content-Type": "application/json"}, credentials: "same-origin", body: JSON.stringify(payload)};
  const r = await fetch(path, opts);
  let body = null;
  try { body = await r.json(); } catch (_) { body = null; }
  if (!r.ok) {
    const e = new Error((body && body.detail) ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : r.statusText);
    e.status = r.status; throw e;
  }
  return body;
}
function rid() { return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + String(Math.random()).slice(2)); }
function notice(msg) { const n = document.getElementById("notice"); n.textContent = msg || ""; n.hidden = !msg; }

// ------------------------------------------------------------------ keys (defect 2): a key per class
// Single-character class names (digits "0".."9", letters) are their own keys; otherwise 1, 2, ... q, w, ...
function keyMap(classes) {
  const lower = classes.map(c => String(c).toLowerCase());
  const own = classes.every(c => String(c).length === 1 && String(c).trim() !== "") && new Set(lower).size === classes.length;
  return own ? lower : classes.map((_, k) => k < NUMBERED.length ? NUMBERED[k] : null);
}

// ------------------------------------------------------------------ instructions: a tiny, safe markdown subset
// # / ## / ### headings, "-" or "*" lists, paragraphs, **bold**, *italic*, `code`, [text](https://...) links.
// Nothing else is interpreted: raw HTML stays text.
function inline(parent, text) {
  const re = /(\*\*[^*]+\*\*|\*[^*]+\*|`[^`]+`|\[[^\]]+\]\([^)\s]+\))/g;
  let last = 0, m;
  while ((m = re.exec(text)) !== null) {
    if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
    const t = m[0];
    if (t.startsWith("**")) parent.appendChild(el("strong", t.slice(2, -2)));
    else if (t.startsWith("`")) parent.appendChild(el("code", t.slice(1, -1)));
    else if (t.startsWith("[")) {
      const mm = /^\[([^\]]+)\]\(([^)\s]+)\)$/.exec(t);
      if (/^https?:\/\//i.test(mm[2])) parent.appendChild(el("a", mm[1], {href: mm[2], rel: "noopener noreferrer", target: "_blank"}));
      else parent.appendChild(document.createTextNode(mm[1]));
    } else parent.appendChild(el("em", t.slice(1, -1)));
    last = m.index + t.length;
  }
  if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
}
function renderMarkdown(md) {
  const root = el("div"); let list = null, para = [];
  const flush = () => { if (para.length) { const p = el("p"); inline(p, para.join(" ")); root.appendChild(p); para = []; } };
  for (const raw of String(md).split(/\r?\n/)) {
    const line = raw.replace(/\s+$/, "");
    let m;
    if (!line.trim()) { flush(); list = null; continue; }
    if ((m = /^(#{1,3})\s+(.*)$/.exec(line)) !== null) {
      flush(); list = null; const h = el("h" + (m[1].length + 2)); inline(h, m[2]); root.appendChild(h); continue;
    }
    if ((m = /^\s*[-*]\s+(.*)$/.exec(line)) !== null) {
      flush(); if (!list) { list = el("ul"); root.appendChild(list); }
      const li = el("li"); inline(li, m[1]); list.appendChild(li); continue;
    }
    list = null; para.push(line.trim());
  }
  flush();
  return root;
}

// ------------------------------------------------------------------ progress (defect 8)
function renderProgress(p) {
  if (!p) return;
  const parts = [];
  for (const r of p.runs || []) {
    const name = r.run_id === null ? "owner's queue" : "run " + r.run_id + (r.round === null ? "" : " round " + r.round);
    parts.push(name + ": " + r.left + " of " + r.total + " left");
  }
  if (p.you) {
    parts.push("you: " + p.you.votes + " answer(s), " + p.you.skips + " skip(s), " + p.you.left_for_you + " left for you");
    document.getElementById("undo").disabled = !p.you.can_undo;
    document.getElementById("undo-finished").disabled = !p.you.can_undo;
  }
  document.getElementById("progress").textContent = parts.join(" · ");
}
function renderFinished(p) {
  const t = document.getElementById("finished-text"), b = document.getElementById("beyond");
  const runs = (p && p.runs) || [], you = (p && p.you) || {};
  const left = runs.reduce((s, r) => s + r.left, 0);
  const name = runs.length ? runs.map(r => r.run_id === null ? "the owner's queue" : "run " + r.run_id).filter((v, i, a) => a.indexOf(v) === i).join(", ") : "";
  b.hidden = true;
  if (p && p.open_queue && left === 0) {
    t.textContent = "The queue of " + name + " is done: every item it asked for has its label. The project owner runs "
      + "`labelsieve run` again to use them (and to queue the next round).";
    b.hidden = !(you.free_left > 0);
  } else if (p && p.open_queue) {
    t.textContent = left + " item(s) of " + name + " still need answers from other labelers (you answered or skipped "
      + (you.waiting_for_others || 0) + " of them).";
    b.hidden = !(you.free_left > 0);
  } else {
    t.textContent = "Nothing left to label right now" + (you.waiting_for_others ? " (" + you.waiting_for_others
      + " item(s) you answered wait for other labelers)" : "") + ". Thank you!";
  }
  if (!b.hidden) b.textContent = "Label other items (" + you.free_left + " that no run asked for)";
}

// ------------------------------------------------------------------ the item
function renderPosterior(post) {
  const t = document.getElementById("posterior");
  t.replaceChildren();
  if (!post) return;
  project.classes.forEach((c, k) => {
    const tr = el("tr"); tr.appendChild(el("td", c));
    const td = el("td"); const bar = el("span", null, {class: "bar"});
    bar.style.width = Math.round(150 * post[k]) + "px"; td.appendChild(bar);
    td.appendChild(el("span", " " + fmt(post[k], 3))); tr.appendChild(td); t.appendChild(tr);
  });
}
function setButtons(enabled) {
  document.querySelectorAll("#classes button").forEach(b => { b.disabled = !enabled; });
}
async function showBroken(item, detail) {
  if (!current || current.item.id !== item.id) return;
  let why = detail;
  if (!why) { try { await call(item.thumb); why = "it could not be loaded"; } catch (e) { why = e.message; } }
  const p = document.getElementById("broken");
  p.textContent = "This item cannot be shown (" + why + "). Report it as broken: the owner sees it on the dashboard, and it is not served again.";
  p.hidden = false;
  setButtons(false);
  document.getElementById("skip-broken").classList.add("primary");
  current.broken = why;
}
function itemBox(item) {
  const box = el("div");
  if (item.kind === "image") {
    const img = el("img", null, {src: item.thumb, alt: item.id, class: "thumb", id: "thumb"});
    img.addEventListener("error", () => showBroken(item, null));
    box.appendChild(img);
  } else if (item.kind === "text") {
    box.appendChild(el("pre", item.text, {class: "text"}));
  } else {
    box.appendChild(el("p", "(no display for this item)"));
  }
  return box;
}
function show(r) {
  current = r;
  document.getElementById("finished").hidden = true;
  document.getElementById("task").hidden = false;
  document.getElementById("broken").hidden = true;
  document.getElementById("skip-broken").classList.remove("primary");
  setButtons(true);
  document.getElementById("item").replaceChildren(itemBox(r.item));
  document.getElementById("itemid").textContent = "item " + r.item.id;
  document.getElementById("comment-text").value = "";
  document.getElementById("comment-msg").textContent = "";
  if (r.item.posterior) {  // reviewers, when the project shows them the votes
    document.getElementById("last").hidden = false;
    document.getElementById("last-text").textContent = "Live aggregate of item " + r.item.id + " (" + r.item.n_labels + " vote(s)), shown to reviewers:";
    document.getElementById("status").textContent = "";
    renderPosterior(r.item.posterior);
  }
  // nothing keeps the focus: Enter must not re-press the class clicked last (defect 3)
  if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
  document.getElementById("task").focus({preventScroll: true});
}
function nothingLeft(r) {
  current = null;
  document.getElementById("task").hidden = true;
  document.getElementById("finished").hidden = false;
  renderFinished(r.progress);
}

async function next() {
  showError("");
  const r = await call("/api/next", {labeler: labeler, beyond_queue: beyond});
  renderProgress(r.progress);
  if (r.done) { nothingLeft(r); return; }
  show(r);
}
async function recover(e) {
  // a lease that lapsed, an item answered in another tab or finished meanwhile: move on (defect 9)
  if (e.status === 409) {
    notice("That item was no longer yours to answer (" + e.message.replace(/; ask for the next item$/, "") + "); here is the next one.");
    await next();
  } else showError(e.message);
}

async function answer(label) {
  if (!current || busy || current.broken) return;
  busy = true;
  const shown = current;
  try {
    notice("");
    const r = await call("/api/label", {labeler: labeler, id: shown.item.id, label: label, request_id: shown.request_id});
    document.getElementById("last").hidden = false;
    document.getElementById("last-text").textContent = "item " + shown.item.id + ": you answered '" + label + "'.";
    document.getElementById("status").textContent = r.status ? r.status.text : "";
    renderPosterior(r.posterior);
    loadComments(shown.item.id);
    await next();
  } catch (e) { await recover(e); }
  finally { busy = false; }
}
async function skip(reason) {
  if (!current || busy) return;
  busy = true;
  try {
    await call("/api/skip", {labeler: labeler, id: current.item.id, reason: reason, request_id: rid(),
                             note: reason === "broken" && current.broken ? current.broken : ""});
    notice(reason === "broken" ? "Reported item " + current.item.id + " as broken." : "Skipped item " + current.item.id + ".");
    await next();
  } catch (e) { await recover(e); }
  finally { busy = false; }
}
async function undo() {
  if (busy) return;
  busy = true;
  try {
    const r = await call("/api/undo", {labeler: labeler, request_id: rid()});
    if (!r.undone) { notice("Nothing to undo."); return; }
    notice("Undone: your " + (r.undone === "vote" ? "answer '" + r.label + "'" : "skip") + " on item " + r.item.id
      + (r.held ? ". Answer it again:" : " (it no longer needs you)."));
    renderProgress(r.progress);
    document.getElementById("last").hidden = true;
    if (r.held) show({item: r.item, request_id: r.request_id}); else await next();
  } catch (e) { showError(e.message); }
  finally { busy = false; }
}
async function loadComments(id) {
  const box = document.getElementById("last-comments");
  box.replaceChildren();
  try {
    const r = await call("/api/comments?id=" + encodeURIComponent(id));
    if (!r.comments.length) return;
    box.appendChild(el("h3", "Comments on item " + id));
    const ul = el("ul");
    for (const c of r.comments) ul.appendChild(el("li", c.who + ": " + c.text));
    box.appendChild(ul);
  } catch (_) { /* comments are optional */ }
}
async function sendComment() {
  if (!current) return;
  const text = document.getElementById("comment-text").value.trim();
  if (!text) return;
  try {
    await call("/api/comment", {labeler: labeler, id: current.item.id, text: text, request_id: rid()});
    document.getElementById("comment-text").value = "";
    document.getElementById("comment-msg").textContent = " comment added";
  } catch (e) { showError(e.message); }
}
async function beat() {
  if (!current || busy || document.hidden) return;
  try {
    const r = await call("/api/heartbeat", {labeler: labeler, id: current.item.id});
    if (!r.held) { notice("Item " + current.item.id + " was answered elsewhere or is done; here is the next one."); await next(); }
  } catch (e) { if (e.status !== 401) showError(e.message); }
}

async function start(ev) {
  if (ev) ev.preventDefault();
  labeler = document.getElementById("labeler").value.trim();
  history.replaceState(null, "", "/label?labeler=" + encodeURIComponent(labeler));
  try { await next(); } catch (e) { document.getElementById("task").hidden = true; showError(e.message); }
  if (heartbeat === null) heartbeat = setInterval(beat, HEARTBEAT_MS);
}

call("/api/project").then(p => {
  project = p;
  keys = keyMap(p.classes);
  const box = document.getElementById("classes");
  p.classes.forEach((c, k) => {
    const b = el("button", null, {type: "button", "data-label": c, "data-key": keys[k] || ""});
    if (keys[k] && keys[k] !== String(c).toLowerCase()) b.appendChild(el("kbd", keys[k]));
    b.appendChild(document.createTextNode((keys[k] && keys[k] !== String(c).toLowerCase() ? " " : "") + c));
    b.addEventListener("click", () => { b.blur(); answer(c); });
    box.appendChild(b);
  });
  const own = keys.every((k, i) => k === String(p.classes[i]).toLowerCase());
  document.getElementById("keys").textContent = (own ? "press a class's name" : "the key shown on each button")
    + "; Esc skips, Backspace undoes";
  document.getElementById("who").addEventListener("submit", start);
  document.getElementById("skip").addEventListener("click", ev => { ev.currentTarget.blur(); skip("unsure"); });
  document.getElementById("skip-broken").addEventListener("click", ev => { ev.currentTarget.blur(); skip("broken"); });
  document.getElementById("undo").addEventListener("click", ev => { ev.currentTarget.blur(); undo(); });
  document.getElementById("undo-finished").addEventListener("click", ev => { ev.currentTarget.blur(); undo(); });
  document.getElementById("beyond").addEventListener("click", () => { beyond = true; next().catch(e => showError(e.message)); });
  document.getElementById("comment-send").addEventListener("click", sendComment);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) beat(); });
  call("/api/instructions").then(r => {
    if (r.markdown && r.markdown.trim()) {
      document.getElementById("instructions-body").replaceChildren(renderMarkdown(r.markdown));
      document.getElementById("instructions").hidden = false;
    }
  }).catch(() => {});
  const who = param("labeler");
  if (who) { document.getElementById("labeler").value = who; start(); }
}).catch(e => showError(e.message));

document.addEventListener("keydown", ev => {
  const tag = ev.target && ev.target.tagName;
  if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
  if (ev.key === "Enter") { ev.preventDefault(); return; }  // never answers (defect 3)
  if (ev.repeat || ev.altKey || ev.metaKey) return;  // a held key must not answer item after item
  if (ev.key === "Backspace" || (ev.ctrlKey && ev.key.toLowerCase() === "z")) { ev.preventDefault(); undo(); return; }
  if (ev.ctrlKey) return;
  if (ev.key === "Escape") { skip("unsure"); return; }
  const k = keys.indexOf(ev.key.toLowerCase());
  if (project && k >= 0) { ev.preventDefault(); answer(project.classes[k]); }
});
