"""Browser tests: Debian's Chromium (headless, loopback) drives the web app through Playwright.

Label an item, batch-accept in the review queue, see the dashboard numbers change; screenshots of
each page go to tests/browser/out/ (map.png to docs/screenshots/ with LABELSIEVE_UPDATE_SCREENSHOTS=1).
Skipped with a reason when chromium or playwright is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

from labelsieve.data import load_dataset
from labelsieve.store.project import Project, init_project


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, serve_project):
    d = tmp_path_factory.mktemp("browser") / "digits"
    p = init_project(d, load_dataset("digits").subset(np.arange(200)))
    p.store.add_labeler("ann", gold_accuracy=0.9)
    p.store.add_labeler("rev")
    p.store.append_events([{"item": k, "code": k % 10, "source": "auto", "who": "logreg",
                            "confidence": 0.6 + k / 1000, "round": 1} for k in range(100, 200)])
    p.close()
    with serve_project(d, tau=0.95, kappa=2) as url:
        yield url, d


@pytest.fixture(scope="module")
def page(base_url, browser):
    pg = browser.new_page(viewport={"width": 1100, "height": 800})
    yield pg
    pg.close()


def _stat(page, sel: str) -> int:
    return int(page.locator(sel).inner_text())


def test_label_review_and_dashboard_change(base_url, page, screenshot) -> None:
    url, d = base_url
    page.goto(f"{url}/dashboard")
    page.wait_for_selector("#n-reviews")
    before = {k: _stat(page, f"#n-{k}") for k in ("reviews", "votes", "auto")}
    assert before == {"reviews": 0, "votes": 0, "auto": 100}

    page.goto(f"{url}/label?labeler=ann")
    page.wait_for_selector("#itemid:has-text('item digits-')")
    first = page.locator("#itemid").inner_text()
    screenshot(page, "label-digits")
    page.keyboard.press("1")  # digit class names are their own keys: 1 = class "1" (defect 2: main recorded "0")
    page.wait_for_function(f"document.querySelector('#itemid').textContent !== {first!r}")
    page.locator("button[data-label='3']").click()  # and one by click
    page.wait_for_timeout(300)

    page.goto(f"{url}/review?reviewer=rev")
    page.wait_for_selector("#queue tbody tr")
    assert "(100 auto-labels)" in page.locator("#pageinfo").inner_text()
    screenshot(page, "review-digits")
    page.locator("#all").click()
    page.locator("#accept").click()
    page.wait_for_selector("#msg:has-text('50 label event')")
    page.wait_for_selector("#pageinfo:has-text('(50 auto-labels)')")

    page.goto(f"{url}/dashboard")
    page.wait_for_selector("#n-reviews")
    page.wait_for_timeout(200)
    after = {k: _stat(page, f"#n-{k}") for k in ("reviews", "votes", "auto")}
    assert after == {"reviews": 50, "votes": 2, "auto": 50}
    assert page.locator(".relbar").count() >= 1  # reliability against the 50 accepted reviews
    screenshot(page, "dashboard-digits")
    votes = Project(d).store.events(source="vote")
    assert votes["who"].tolist() == ["ann", "ann"] and votes["code"].tolist() == [1, 3]


def test_unknown_labeler_and_hostile_text_are_shown_as_text(base_url, page) -> None:
    url, _ = base_url
    page.goto(f"{url}/label?labeler=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    page.wait_for_selector("#error:has-text('unknown labeler id')")
    assert "<img src=x" in page.locator("#error").inner_text()
    assert page.locator("img[src='x']").count() == 0


def test_map_click_opens_item_and_similar(base_url, page, screenshot) -> None:
    url, _ = base_url
    page.goto(f"{url}/map")
    page.wait_for_function("document.querySelector('#info').textContent.includes('PCA')")
    box = page.locator("#map").bounding_box()
    # click the canvas where the first point is drawn
    xy = page.evaluate("[scale.x(pts[0][1]), scale.y(pts[0][2])]")
    page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
    page.wait_for_selector("#similar .simitem")
    assert page.locator("#similar .simitem").count() == 8
    # the light-grey points are named in the legend, with their count (items 0-99 had no label at the start)
    n_none = page.evaluate("pts.filter(p => p[3] === null).length")
    assert n_none > 0 and f"unlabeled ({n_none})" in page.locator("#legend").inner_text()
    page.wait_for_function("[...document.querySelectorAll('#similar img')].every(i => i.complete && i.naturalWidth > 0)")
    screenshot(page, "map")


def test_rounds_without_a_certified_threshold_show_a_dash(tmp_path, serve_project, browser, screenshot) -> None:
    import json

    import sqlalchemy as sa

    from labelsieve.store import schema as S

    d = tmp_path / "uncertified"
    p = init_project(d, load_dataset("digits").subset(np.arange(50)))
    with p.store.transaction() as c:
        c.execute(sa.insert(S.runs).values(id=1, kind="tbal", config="{}", status="complete", started=0.0))
        rounds = [{"coverage": 0.0, "error_bound": 0.0, "n_auto_total": 0, "thresholds": [float("inf")] * 10},
                  {"coverage": 0.0, "error_bound": float("nan"), "n_auto_total": 0, "thresholds": [float("inf")] * 10},
                  {"coverage": 0.4, "error_bound": 0.0321, "n_auto_total": 20, "thresholds": [0.9] * 9 + [float("inf")]}]
        for r, stats in enumerate(rounds):
            c.execute(sa.insert(S.run_rounds).values(run_id=1, round=r, stats=json.dumps(stats), committed=0.0))
    p.close()
    pg = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        with serve_project(d) as url:
            pg.goto(f"{url}/dashboard")
            pg.wait_for_selector("#rounds tr:has(td)")
            bounds = pg.eval_on_selector_all("#rounds tr:has(td)", "rows => rows.map(r => r.children[3].textContent)")
            assert bounds == ["—", "—", "0.032"]
            thr = pg.eval_on_selector_all("#thresholds tr:has(td)", "rows => rows.map(r => r.children[1].textContent)")
            assert thr == ["0.9000"] * 9 + ["—"]
            screenshot(pg, "dashboard-uncertified")
    finally:
        pg.close()


def test_login_link_signs_in_and_review_needs_it_once_tokens_exist(tmp_path, serve_project, browser,
                                                                   screenshot) -> None:
    d = tmp_path / "accounts"
    p = init_project(d, load_dataset("digits").subset(np.arange(30)))
    p.store.add_labeler("rev", role="reviewer")
    p.store.append_events([{"item": k, "code": k % 10, "source": "auto", "who": "logreg", "confidence": 0.7}
                           for k in range(30)])
    _, code = p.store.issue_token("rev")
    p.close()
    ctx = browser.new_context(viewport={"width": 1100, "height": 800})
    pg = ctx.new_page()
    try:
        with serve_project(d) as url:
            pg.goto(f"{url}/review?reviewer=rev")
            pg.wait_for_selector("#queue tbody tr")
            pg.locator("#all").click()
            pg.locator("#accept").click()
            pg.wait_for_selector("#error:has-text('sign in first')")  # not signed in: nothing written
            assert Project(d).store.events(source="review").empty
            pg.goto(f"{url}/login?token={code}")
            pg.wait_for_url("**/label?labeler=rev")
            cookie = next(c for c in ctx.cookies() if c["name"] == "labelsieve_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert pg.evaluate("document.cookie") == ""  # scripts cannot read the session
            pg.goto(f"{url}/review?reviewer=rev")
            pg.wait_for_selector("#queue tbody tr")
            pg.locator("#all").click()
            pg.locator("#accept").click()
            pg.wait_for_selector("#msg:has-text('30 label event')")
            screenshot(pg, "review-signed-in")
            pg.goto(f"{url}/login?token={code}")  # the link is spent
            pg.wait_for_selector("h1:has-text('Login link not valid')")
    finally:
        ctx.close()
    assert Project(d).store.events(source="review")["who"].unique().tolist() == ["rev"]


#: Markup that would run (and set window.__pwned) if any page parsed it as HTML.
XSS = ['<img src=x onerror="window.__pwned=1">', '<svg onload="window.__pwned=1"></svg>',
       '<script>window.__pwned=1</script>', '"><iframe src="javascript:window.top.__pwned=1">']


def test_hostile_ids_texts_classes_labelers_and_project_name_are_only_text(tmp_path, serve_project, browser,
                                                                            screenshot) -> None:
    from labelsieve.data import Dataset

    n = 12
    ids = [f"{XSS[k % 4]}#{k}&+%" for k in range(n)]
    texts = [f"text {k} {XSS[(k + 1) % 4]}" for k in range(n)]
    ds = Dataset(ids=ids, X=np.random.default_rng(0).normal(size=(n, 3)), classes=(XSS[0], XSS[1]),
                 y=np.arange(n) % 2, raw=texts)
    d = tmp_path / "hostile"
    p = init_project(d, ds, name=XSS[2])
    who = XSS[3][:60]
    p.store.add_labeler(who, role="reviewer")
    p.store.append_events([{"item": k, "code": k % 2, "source": "auto", "who": XSS[1], "confidence": 0.6}
                           for k in range(n)])
    p.close()
    pg = browser.new_page(viewport={"width": 1100, "height": 800})
    dialogs: list[str] = []
    pg.on("dialog", lambda dl: (dialogs.append(dl.message), dl.dismiss()))
    from urllib.parse import quote

    def clean() -> None:
        assert pg.evaluate("window.__pwned === undefined && window.top.__pwned === undefined")
        assert pg.locator("img[src='x'], svg[onload], iframe").count() == 0

    try:
        with serve_project(d) as url:
            pg.goto(f"{url}/")  # 1: the project name
            pg.wait_for_selector("#title:has-text('labelsieve project:')")
            assert XSS[2] in pg.locator("#title").inner_text()
            clean()
            pg.goto(f"{url}/review?reviewer={quote(who)}")  # 2-3: queue of hostile ids and classes, then review
            pg.wait_for_selector("#queue tbody tr")
            assert XSS[0] in pg.locator("#queue").inner_text()
            clean()
            pg.locator("#queue tbody tr input[type=checkbox]").first.check()
            pg.locator("#accept").click()
            pg.wait_for_selector("#msg:has-text('label event')")
            clean()
            pg.goto(f"{url}/dashboard")  # 4: labeler names, class names as threshold keys
            pg.wait_for_selector("#labelers td")
            clean()
            pg.goto(f"{url}/map")  # 5-6: points and the item opened from one, with its similar items
            pg.wait_for_function("document.querySelector('#info').textContent.includes('PCA')")
            box = pg.locator("#map").bounding_box()
            xy = pg.evaluate("[scale.x(pts[0][1]), scale.y(pts[0][2])]")
            pg.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
            pg.wait_for_selector("#similar .simitem")
            clean()
            screenshot(pg, "hostile-map")
            pg.goto(f"{url}/label?labeler={quote(who)}")  # 7: the label page with a hostile labeler and item
            pg.wait_for_timeout(1500)
            clean()
    finally:
        pg.close()
    assert not dialogs
    assert Project(d).store.events(source="review")["who"].tolist() == [who]
