"""Browser tests of issue 16, "a browser test per defect and per feature", for those still missing:
votes in a two-class project (defect 1), un-reject on the review page (defect 5, second half), the
map of a text project embedded at init and no URL answering 500 (defect 10), skip and its undo,
comments, instructions, progress per labeler and per run; and the docs/screenshots/ pictures.

Each test drives Debian's Chromium and asserts on the store (events, current labels, comments) as
well as on what the page shows.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from labelsieve.data import Dataset, load_dataset
from labelsieve.store import labeling as L
from labelsieve.store import schema as S
from labelsieve.store.project import Project, init_project


def _two_class(d: Path, n: int = 3, labelers: tuple[str, ...] = ("ann", "bob", "cy")) -> Path:
    rng = np.random.default_rng(1)
    ds = Dataset(ids=[f"s{j}" for j in range(n)], X=rng.normal(size=(n, 3)).astype(np.float32),
                 classes=("circle", "square"), raw=[f"shape number {j}" for j in range(n)], name="shapes")
    p = init_project(d, ds)
    for w in labelers:
        p.store.add_labeler(w)  # no registered accuracy
    p.close()
    return d


def _item(page) -> str:
    return page.locator("#itemid").inner_text().removeprefix("item ")


def _open_label(browser, url: str, who: str):
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    page = ctx.new_page()
    page.goto(f"{url}/label?labeler={who}")
    page.wait_for_function("document.querySelector('#itemid').textContent.startsWith('item ')"
                           " || !document.querySelector('#finished').hidden")
    return ctx, page


def _answer(page, label: str) -> str:
    """Click the class ``label`` on the item shown; wait for the page to move on; the item's id."""
    shown = _item(page)
    page.locator(f"#classes button[data-label='{label}']").click()
    page.wait_for_selector("#last-text:has-text('item " + shown + ":')")
    return shown


def _rows(page, sel: str) -> list[list[str]]:
    return page.eval_on_selector_all(sel, "rs => rs.map(r => [...r.children].map(c => c.textContent))")


# ---------------------------------------------------------------------------------- defect 1
def test_defect_1_votes_count_in_a_two_class_project(tmp_path, serve_project, browser, screenshot, live_votes) -> None:
    d = _two_class(tmp_path / "two", n=1)
    with serve_project(d, tau=0.99, kappa=3) as url:  # two agreeing votes would reach the default tau
        for who in ("ann", "bob", "cy"):
            ctx, page = _open_label(browser, url, who)
            try:
                assert _item(page) == "s0"
                assert page.locator("#classes button").all_inner_texts() == ["1 circle", "2 square"]
                page.keyboard.press("2")  # "square"
                page.wait_for_selector("#last-text:has-text(\"item s0: you answered 'square'\")")
                assert page.locator("#error").inner_text() == ""
            finally:
                ctx.close()
        assert live_votes(d) == [("ann", "s0", 1), ("bob", "s0", 1), ("cy", "s0", 1)]
        p = Project(d)
        cur = p.store.current_labels()
        p.close()
        assert cur[["id", "label", "source"]].values.tolist() == [["s0", "square", "aggregate"]]
        assert float(cur["confidence"].iloc[0]) >= 0.95  # main left it far below tau: the votes were ignored
        api = browser.new_page()
        exported = api.request.get(f"{url}/api/item?id=s0").json()
        api.close()
        assert exported["label"] == "square" and exported["source"] == "aggregate"
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        try:
            page.goto(f"{url}/dashboard")
            page.wait_for_selector("#labelers tr:has(td)")
            rows = {r[0]: r for r in _rows(page, "#labelers tr:has(td)")}
            assert set(rows) == {"ann", "bob", "cy"}
            for r in rows.values():
                assert r[1] == "1" and r[4] == "estimated"
                acc = float(r[2])
                m = re.fullmatch(r"\[(\d\.\d{3}), (\d\.\d{3})\]", r[3])
                assert m, r  # an interval, not "—"
                lo, hi = float(m.group(1)), float(m.group(2))
                assert 0.0 < lo < acc < hi <= 1.0 and hi - lo < 0.6
                assert acc > 0.8  # agreeing votes raise the estimate above the Beta(4, 1) prior's mean
            screenshot(page, "dashboard-two-class")
        finally:
            page.close()


# ---------------------------------------------------------------------------------- defect 5
def _reviewed(d: Path) -> Path:
    rng = np.random.default_rng(2)
    n = 4
    ds = Dataset(ids=[f"r{j}" for j in range(n)], X=rng.normal(size=(n, 3)).astype(np.float32),
                 classes=("circle", "square"), raw=[f"shape {j}" for j in range(n)], name="rev")
    p = init_project(d, ds)
    p.store.add_labeler("rev", role="reviewer")
    p.store.append_events([{"item": k, "code": k % 2, "source": "auto", "who": "logreg", "confidence": 0.6 + k / 20,
                            "round": 1} for k in range(n)])
    p.close()
    return d


def test_defect_5_reject_then_unreject_on_the_review_page_then_accept(tmp_path, serve_project, browser,
                                                                      screenshot) -> None:
    d = _reviewed(tmp_path / "rev")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    try:
        with serve_project(d) as url:
            page.goto(f"{url}/review?reviewer=rev")
            page.wait_for_selector("#pageinfo:has-text('(4 auto-labels)')")
            assert page.locator("tr.cursor td:nth-child(3)").inner_text() == "r0"
            page.keyboard.press("r")  # reject r0 (auto "circle")
            page.wait_for_selector("#msg:has-text('reject: 1 label event')")
            page.wait_for_selector("#pageinfo:has-text('(3 auto-labels)')")
            # the rejected items are listed, and can be un-rejected
            page.select_option("#source", "rejected")
            page.click("#apply")
            page.wait_for_selector("#pageinfo:has-text('(1 rejected)')")
            assert _rows(page, "#queue tbody tr")[0][2:5] == ["r0", "—", "review"]
            page.check("#queue .pick[data-id='r0']")
            screenshot(page, "review-rejected")
            page.click("#unreject")
            page.wait_for_selector("#msg:has-text('unreject: 1 label event')")
            page.wait_for_selector("#pageinfo:has-text('(0 rejected)')")
            assert page.locator("#error").inner_text() == ""
            # the auto-label is current again and accept works
            page.select_option("#source", "auto")
            page.click("#apply")
            page.wait_for_selector("#pageinfo:has-text('(4 auto-labels)')")
            assert page.locator("tr.cursor td:nth-child(3)").inner_text() == "r0"
            page.keyboard.press("a")
            page.wait_for_selector("#msg:has-text('accept: 1 label event')")
            page.wait_for_selector("#pageinfo:has-text('(3 auto-labels)')")
    finally:
        page.close()
    p = Project(d)
    ev = p.store.events()
    cur = p.store.current_labels().set_index("id")
    p.close()
    r0 = ev[ev["item"] == 0]
    assert r0["source"].tolist() == ["auto", "review", "withdraw", "review"]  # nothing deleted
    rej, wd, acc = r0.iloc[1], r0.iloc[2], r0.iloc[3]
    assert rej["action"] == "reject" and wd["target"] == rej["seq"] and wd["note"] == "un-reject"
    assert acc["action"] == "accept" and acc["code"] == 0 and acc["who"] == "rev"
    assert cur.loc["r0", "label"] == "circle" and cur.loc["r0", "source"] == "review"


# ---------------------------------------------------------------------------------- defect 10
def _text_csv(tmp_path: Path) -> Path:
    f = tmp_path / "texts.csv"
    words = ["cat", "dog", "eel", "owl", "bat", "cow"]
    lines = ["id,text,label"] + [f"x{j},a {words[j % 6]} that is number {j},{words[j % 2]}" for j in range(30)]
    f.write_text("\n".join(lines) + "\n")
    return f


def _routes(routes):
    """The app's routes, those of included routers too (FastAPI wraps them)."""
    for r in routes:
        if hasattr(r, "original_router"):
            yield from _routes(r.original_router.routes)
        else:
            yield r


def test_defect_10_text_project_map_page_and_no_url_answers_500(tmp_path, serve_project, browser,
                                                                screenshot) -> None:
    from fastapi.routing import APIRoute

    from labelsieve.app.server import create_app

    ds = load_dataset(str(_text_csv(tmp_path)), text_column="text")
    assert ds.X.shape[1] == 0  # only id,text,label: the features come from the embedder
    p = init_project(tmp_path / "txt", ds, embedder="hashing")
    p.store.add_labeler("ann")
    p.close()
    d = tmp_path / "txt"
    assert np.load(d / "features.npy").shape[0] == 30
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        with serve_project(d) as url:
            bad: list[tuple[str, int]] = []
            page.on("response", lambda r: bad.append((r.url, r.status)) if r.status >= 500 else None)
            page.goto(f"{url}/map")
            page.wait_for_selector("#info:has-text('30 of 30 items shown')")
            assert page.locator("#error").inner_text() == ""
            assert page.evaluate("pts.length") == 30
            # the canvas has points drawn on it
            painted = page.evaluate("(() => { const c = document.getElementById('map');"
                                    " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                                    " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; })()")
            assert painted >= 30 * 4
            x, y = page.evaluate("[scale.x(pts[0][1]), scale.y(pts[0][2])]")
            page.locator("#map").click(position={"x": x, "y": y})
            page.wait_for_selector("#detail:not([hidden]) pre.text")
            page.wait_for_selector("#similar .simitem")
            assert page.locator("#detail pre.text").inner_text().startswith("a ")
            assert not bad and not errors, (bad, errors)
            # every GET route the app has, pages and API, the schema and its docs
            routes = [r for r in _routes(create_app(d).routes) if "GET" in (getattr(r, "methods", None) or set())]
            paths = sorted({r.path for r in routes} | {"/docs", "/redoc"})  # the docs are off: 404, not 500
            assert {"/openapi.json", "/map", "/label", "/gallery", "/thresholds", "/api/map", "/api/item"} <= set(paths)
            assert sum(isinstance(r, APIRoute) for r in routes) >= 15
            crawled = []
            for path in paths:
                urls = [path.replace("{name}", n) for n in ("map.js", "nope.js", "..%2Fserver.py")] \
                    if "{" in path else [path, path + "?id=x0&labeler=ann&reviewer=ann&page=0&limit=5",
                                         path + "?id=nope&labeler=nobody&page=-1&limit=0&class=zzz"]
                for u in urls:
                    r = page.request.get(url + u)
                    crawled.append(u)
                    if r.status >= 500:
                        bad.append((u, r.status))
            assert len(crawled) > 3 * 15 and not bad, bad
            # the browser shows each page without a server error
            for path in ("/", "/label?labeler=ann", "/review", "/gallery", "/dashboard", "/thresholds", "/docs"):
                page.goto(url + path)
                page.wait_for_load_state("networkidle")
            assert not bad, bad
    finally:
        page.close()


# ---------------------------------------------------------------------------------- skip and undo
def test_skip_with_esc_then_backspace_undoes_the_skip(tmp_path, serve_project, browser, screenshot, live_votes) -> None:
    d = _two_class(tmp_path / "skip", n=3, labelers=("ann", "bob"))
    with serve_project(d) as url:
        ctx, page = _open_label(browser, url, "ann")
        try:
            first = _item(page)
            page.keyboard.press("Escape")
            page.wait_for_selector(f"#notice:has-text('Skipped item {first}.')")
            page.wait_for_function(f"document.querySelector('#itemid').textContent !== 'item {first}'")
            page.wait_for_selector("#progress:has-text('you: 0 answer(s), 1 skip(s)')")
            skips = page.request.get(f"{url}/api/skips").json()
            assert skips["total"] == 1 and skips["skips"][0]["id"] == first and skips["skips"][0]["reason"] == "unsure"
            page.keyboard.press("Backspace")
            page.wait_for_selector(f"#notice:has-text('Undone: your skip on item {first}')")
            assert _item(page) == first  # the item comes back
            page.wait_for_selector("#progress:has-text('you: 0 answer(s), 0 skip(s)')")
            assert page.request.get(f"{url}/api/skips").json()["total"] == 0
            screenshot(page, "label-skip-undone")
            page.keyboard.press("2")  # and it can be answered
            page.wait_for_selector(f"#last-text:has-text(\"item {first}: you answered 'square'\")")
        finally:
            ctx.close()
    p = Project(d)
    ev = p.store.events()
    pos = int(p.store.items(("pos", "id")).set_index("id").at[first, "pos"])
    p.close()
    mine = ev[ev["item"] == pos]
    assert mine["source"].tolist() == ["skip", "withdraw", "vote"]
    assert mine.iloc[1]["target"] == mine.iloc[0]["seq"] and mine.iloc[0]["who"] == mine.iloc[1]["who"] == "ann"
    assert live_votes(d) == [("ann", first, 1)]


# ---------------------------------------------------------------------------------- comments
def test_comments_from_the_label_page_are_stored_and_shown_to_the_next_labeler(tmp_path, serve_project, browser,
                                                                               screenshot) -> None:
    d = _two_class(tmp_path / "com", n=1, labelers=("ann", "bob"))
    text = "edges look <b>fuzzy</b> & odd"
    with serve_project(d) as url:
        ctx, page = _open_label(browser, url, "ann")
        try:
            assert _item(page) == "s0"
            page.locator("#comment-box summary").click()
            page.fill("#comment-text", text)
            page.click("#comment-send")
            page.wait_for_selector("#comment-msg:has-text('comment added')")
            assert page.locator("#comment-text").input_value() == ""
            _answer(page, "circle")
            page.wait_for_selector("#last-comments li")
            assert page.locator("#last-comments li").all_inner_texts() == [f"ann: {text}"]
        finally:
            ctx.close()
        ctx, page = _open_label(browser, url, "bob")
        try:
            assert _item(page) == "s0"
            assert page.locator("#last-comments li").count() == 0  # nothing of others' before answering
            _answer(page, "square")
            page.wait_for_selector("#last-comments h3:has-text('Comments on item s0')")
            assert page.locator("#last-comments li").all_inner_texts() == [f"ann: {text}"]
            assert page.locator("#last-comments b").count() == 0  # text, not HTML
            screenshot(page, "label-comments")
        finally:
            ctx.close()
    p = Project(d)
    got = L.comments(p, 0)
    p.close()
    assert [(c["who"], c["text"]) for c in got] == [("ann", text)]


# ---------------------------------------------------------------------------------- instructions
INSTRUCTIONS = """# How to label shapes

Look at the **outline**, not the fill.

- a *circle* has no corners
- a square has four
- <img src=x onerror="window.__pwned = 1"> ignore this

<script>window.__pwned = 2</script>
"""


def test_instructions_are_rendered_markdown_and_html_in_them_is_text(tmp_path, serve_project, browser,
                                                                     screenshot) -> None:
    d = _two_class(tmp_path / "ins", n=3, labelers=("ann",))
    p = Project(d)
    L.set_instructions(p, INSTRUCTIONS)
    p.close()
    with serve_project(d) as url:
        ctx, page = _open_label(browser, url, "ann")
        try:
            assert page.request.get(f"{url}/api/instructions").json()["markdown"] == INSTRUCTIONS
            page.wait_for_selector("#instructions:not([hidden]) #instructions-body h3")
            body = page.locator("#instructions-body")
            assert body.locator("h3").inner_text() == "How to label shapes"
            assert body.locator("strong").inner_text() == "outline"
            items = body.locator("li").all_inner_texts()
            assert items[:2] == ["a circle has no corners", "a square has four"]
            assert body.locator("li em").inner_text() == "circle"
            assert items[2].startswith("<img src=x onerror=")  # shown as text
            assert "<script>window.__pwned = 2</script>" in body.inner_text()
            assert body.locator("img, script").count() == 0
            page.wait_for_timeout(300)
            assert page.evaluate("window.__pwned === undefined")
            assert page.locator("#classes button kbd").all_inner_texts() == ["1", "2"]
            screenshot(page, "label-instructions-hostile")
        finally:
            ctx.close()


# ---------------------------------------------------------------------------------- progress
def test_progress_per_labeler_and_per_run_match_the_store(tmp_path, serve_project, browser, screenshot, live_votes) -> None:
    d = _two_class(tmp_path / "prog", n=6, labelers=("ann", "bob"))
    p = Project(d)
    with p.store.transaction() as c:
        c.execute(sa.insert(S.runs).values(id=2, kind="tbal", config="{}", status="waiting", started=0.0))
        c.execute(sa.insert(S.queue), [{"item": q, "run_id": 2, "round": 1, "created": 0.0} for q in (0, 2, 4)])
    p.close()
    with serve_project(d, kappa=2) as url:
        ctx, ann = _open_label(browser, url, "ann")
        try:
            assert "run 2 round 1: 3 of 3 left" in ann.locator("#progress").inner_text()
            _answer(ann, "square")
            _answer(ann, "circle")
            ann.wait_for_selector("#progress:has-text('you: 2 answer(s), 0 skip(s)')")
        finally:
            ctx.close()
        ctx, bob = _open_label(browser, url, "bob")
        try:
            _answer(bob, "square")
            bob.wait_for_selector("#progress:has-text('you: 1 answer(s), 0 skip(s)')")
            votes = live_votes(d)
            per = {w: sum(1 for v in votes if v[0] == w) for w in ("ann", "bob")}
            assert per == {"ann": 2, "bob": 1}
            p = Project(d)
            cur = p.store.current_labels()
            p.close()
            queued = {"s0", "s2", "s4"}
            left = len(queued - set(cur["id"]))
            total_line = bob.locator("#progress").inner_text()
            assert f"run 2 round 1: {left} of 3 left" in total_line, total_line
            prog = bob.request.get(f"{url}/api/progress?labeler=bob").json()
            assert {r["labeler"]: r["votes"] for r in prog["labelers"]} == per
            assert prog["runs"] == [{"run_id": 2, "round": 1, "total": 3, "left": left}]
            assert prog["you"]["votes"] == 1
        finally:
            ctx.close()
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        try:
            page.goto(f"{url}/dashboard")
            page.wait_for_selector("#labelers tr:has(td)")
            shown = {r[0]: int(r[1]) for r in _rows(page, "#labelers tr:has(td)")}
            assert shown == per
            page.wait_for_function("document.querySelector('#n-votes') && document.querySelector('#n-votes')"
                                   ".textContent === '3'")
            agree = {r[0]: int(r[1]) for r in _rows(page, "#agree-labelers tr:has(td)") if len(r) > 1}
            assert agree == per
        finally:
            page.close()


# ---------------------------------------------------------------------------------- screenshots
def _team(d: Path) -> Path:
    """14 texts, 3 classes: votes of three labelers (agreeing and not), reviews (gold) and auto-labels."""
    texts = ["a fluffy cat", "big dog barks", "the eel swims", "cat naps", "dog runs", "eel in a pond",
             "a cat or a dog", "small eel", "dog on a sofa", "cat on a mat", "eel and cat", "a dog again",
             "a kitten chases an eel", "two puppies"]
    n = len(texts)
    p = init_project(d, Dataset(ids=[f"pet-{k}" for k in range(n)], X=np.random.default_rng(3).normal(size=(n, 4)),
                                classes=("cat", "dog", "eel"), raw=texts, name="pets"))
    for w in ("ann", "bob", "cy"):
        p.store.add_labeler(w)
    p.store.add_labeler("rev", role="reviewer")
    votes = [(0, "ann", 0), (0, "bob", 0), (0, "cy", 0), (1, "ann", 1), (1, "bob", 1), (1, "cy", 2),
             (2, "ann", 2), (2, "bob", 2), (2, "cy", 2), (3, "ann", 0), (3, "bob", 1), (4, "bob", 1), (4, "cy", 1)]
    p.store.append_events([{"item": i, "code": c, "source": "vote", "who": w, "key": f"v{i}{w}"} for i, w, c in votes])
    p.store.append_events([{"item": i, "code": c, "source": "review", "action": "relabel", "who": "rev"}
                           for i, c in ((0, 0), (1, 1), (3, 0))])
    p.store.append_events([{"item": k, "code": k % 3, "source": "auto", "who": "logreg", "confidence": 0.5 + k / 30,
                            "round": 1 + k % 2} for k in range(5, 12)])
    p.close()
    return d


PET_RULES = """# Which animal is it?

Label the animal the text is **about**; when two are named, the one doing something.

- *cat*: cats, kittens
- *dog*: dogs, puppies
- *eel*: eels (and nothing else that swims)

Not sure? Press `Esc` to skip: someone else answers it.
"""


def test_screenshots_label_review_with_filters_and_dashboard_with_agreement(tmp_path, serve_project, browser,
                                                                            screenshot) -> None:
    d = _team(tmp_path / "pets")
    p = Project(d)
    L.set_instructions(p, PET_RULES)
    p.close()
    with serve_project(d) as url:
        ctx, page = _open_label(browser, url, "cy")
        try:
            page.wait_for_selector("#instructions:not([hidden]) #instructions-body li")
            assert page.locator("#instructions-body h3").inner_text() == "Which animal is it?"
            assert page.locator("#instructions-body li").count() == 3
            assert page.locator("#classes button kbd").all_inner_texts() == ["1", "2", "3"]
            assert _item(page) == "pet-12"
            screenshot(page, "label")
        finally:
            ctx.close()
        page = browser.new_page(viewport={"width": 1200, "height": 700})
        try:
            page.goto(f"{url}/review?reviewer=rev")
            page.wait_for_selector("#pageinfo:has-text('(7 auto-labels)')")
            page.fill("#minconf", "0.6")
            page.fill("#maxconf", "0.85")
            page.click("#apply")
            page.wait_for_selector("#pageinfo:has-text('(6 auto-labels)')")
            assert [r[2] for r in _rows(page, "#queue tbody tr")] == [f"pet-{k}" for k in range(5, 11)]
            assert page.locator("#error").inner_text() == ""
            screenshot(page, "review")
        finally:
            page.close()
        page = browser.new_page(viewport={"width": 1200, "height": 1750})
        try:
            page.goto(f"{url}/dashboard")
            page.wait_for_function("document.querySelector('#alpha').textContent !== '…'")
            page.wait_for_selector("#labelers tr:has(td)")
            assert page.locator("#n-votes").inner_text() == "13"
            assert [r[0] for r in _rows(page, "#agree-labelers tr:has(td)")] == ["ann", "bob", "cy"]
            assert len(_rows(page, "#agree-pairs tr:has(td)")) == 3
            assert page.locator("#error").inner_text() == ""
            screenshot(page, "dashboard")
        finally:
            page.close()
