"""Browser tests of issue 16: review filters and keyboard review, the gallery, the agreement section.

The project is the hand-worked one of tests/test_app_review_features.py (8 text items, 3 classes,
3 labelers, one withdrawn vote); screenshots go to tests/browser/out/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelsieve.data import Dataset
from labelsieve.store.project import Project, init_project

TEXTS = ["a fluffy cat", "big dog barks", "the eel swims", "cat naps", "dog runs", "<img src=x onerror=alert(1)> odd",
         "unlabeled thing", "rejected one"]


def make_project(d: Path) -> Path:
    n = len(TEXTS)
    p = init_project(d, Dataset(ids=[f"pet-{k}" for k in range(n)], X=np.eye(n), classes=("cat", "dog", "eel"),
                                raw=TEXTS))
    for w in ("ann", "bob", "cy", "rev"):
        p.store.add_labeler(w)
    votes = [(0, "ann", 0), (0, "bob", 0), (0, "cy", 0), (1, "ann", 1), (1, "bob", 0), (1, "cy", 2),
             (2, "ann", 2), (2, "bob", 2), (2, "cy", 1), (3, "ann", 0)]
    p.store.append_events([{"item": i, "code": c, "source": "vote", "who": w, "key": f"v{i}{w}"} for i, w, c in votes])
    ev = p.store.events(source="vote")
    cy1 = int(ev[(ev["item"] == 1) & (ev["who"] == "cy")]["seq"].iloc[0])
    p.store.append_events([{"item": 1, "code": None, "source": "withdraw", "action": "withdraw", "who": "cy",
                            "target": cy1, "key": "undo-cy1"}])
    p.store.append_events([
        {"item": 3, "code": 0, "source": "auto", "who": "logreg", "confidence": 0.4, "round": 1},
        {"item": 4, "code": 1, "source": "auto", "who": "logreg", "confidence": 0.9, "round": 2},
        {"item": 5, "code": 2, "source": "auto", "who": "other", "confidence": 0.7, "round": 1},
        {"item": 7, "code": 0, "source": "auto", "who": "logreg", "confidence": 0.55, "round": 1}])
    p.store.append_events([
        {"item": 0, "code": 0, "source": "review", "action": "relabel", "who": "rev"},
        {"item": 1, "code": 1, "source": "review", "action": "relabel", "who": "rev"},
        {"item": 7, "code": None, "source": "review", "action": "reject", "who": "rev"}])
    p.close()
    return d


@pytest.fixture(scope="module")
def shared(tmp_path_factory, serve_project):
    d = make_project(tmp_path_factory.mktemp("rgb") / "pets")
    with serve_project(d, kappa=3) as url:
        yield url


@pytest.fixture()
def page(browser):
    pg = browser.new_page(viewport={"width": 1200, "height": 900})
    yield pg
    pg.close()


def _row_ids(page) -> list[str]:
    return page.eval_on_selector_all("#queue tbody tr", "rs => rs.map(r => r.children[2].textContent)")


def _wait_rows(page, ids: list[str]) -> None:
    """Wait until the queue shows exactly ``ids`` (in any order): counts alone can repeat across filters."""
    page.wait_for_function("want => JSON.stringify([...document.querySelectorAll('#queue tbody tr')]"
                           ".map(r => r.children[2].textContent).sort()) === JSON.stringify(want)", arg=sorted(ids))


def test_review_filters(shared, page, screenshot) -> None:
    page.goto(f"{shared}/review?reviewer=rev")
    page.wait_for_selector("#pageinfo:has-text('(3 auto-labels)')")
    assert _row_ids(page) == ["pet-3", "pet-5", "pet-4"]
    page.fill("#minconf", "0.5")
    page.fill("#maxconf", "0.8")
    page.click("#apply")
    page.wait_for_selector("#pageinfo:has-text('(1 auto-labels)')")
    assert _row_ids(page) == ["pet-5"]
    page.fill("#minconf", "")
    page.fill("#maxconf", "")
    page.fill("#who", "logreg")
    page.click("#apply")
    page.wait_for_selector("#pageinfo:has-text('(2 auto-labels)')")
    assert _row_ids(page) == ["pet-3", "pet-4"]
    page.fill("#who", "")
    page.select_option("#source", "any")
    page.fill("#voter", "cy")
    page.click("#apply")
    _wait_rows(page, ["pet-0", "pet-2"])
    assert "(2 labels)" in page.locator("#pageinfo").inner_text()  # cy's vote on pet-1 was withdrawn
    page.fill("#voter", "")
    page.check("#disagree")
    page.click("#apply")
    _wait_rows(page, ["pet-1", "pet-2"])
    assert "(2 labels)" in page.locator("#pageinfo").inner_text()
    cells = page.eval_on_selector_all("#queue tbody tr", "rs => rs.map(r => [r.children[3].textContent, "
                                      "r.children[4].textContent, r.children[5].textContent])")
    assert sorted(cells) == [["dog", "review", "rev"], ["eel", "aggregate", "GTX"]]
    screenshot(page, "review_filters")


def test_keyboard_review(tmp_path, serve_project, page, screenshot) -> None:
    d = make_project(tmp_path / "pets")
    with serve_project(d, kappa=3) as url:
        page.goto(f"{url}/review?reviewer=rev")
        page.wait_for_selector("#pageinfo:has-text('(3 auto-labels)')")
        assert page.locator("tr.cursor td:nth-child(3)").inner_text() == "pet-3"
        page.keyboard.press("j")
        assert page.locator("tr.cursor td:nth-child(3)").inner_text() == "pet-5"
        page.keyboard.press("a")  # accept pet-5
        page.wait_for_selector("#msg:has-text('accept: 1 label event')")
        page.wait_for_selector("#pageinfo:has-text('(2 auto-labels)')")
        assert _row_ids(page) == ["pet-3", "pet-4"]
        page.keyboard.press("k")
        assert page.locator("tr.cursor td:nth-child(3)").inner_text() == "pet-3"
        page.keyboard.press("r")  # reject pet-3
        page.wait_for_selector("#msg:has-text('reject: 1 label event')")
        page.wait_for_selector("#pageinfo:has-text('(1 auto-labels)')")
        assert _row_ids(page) == ["pet-4"]
        screenshot(page, "review_keyboard")
        page.fill("#who", "aaa")  # keys typed into a field are text, not commands
        assert page.locator("#who").input_value() == "aaa" and _row_ids(page) == ["pet-4"]
    rev = Project(d).store.events(source="review")
    rev = rev[rev["who"] == "rev"].tail(2)
    assert rev["item"].tolist() == [5, 3] and rev["action"].tolist() == ["accept", "reject"]
    assert rev["code"].tolist()[0] == 2 and rev["code"].isna().tolist()[1]


def test_gallery_search_and_provenance(shared, page, screenshot) -> None:
    page.goto(f"{shared}/dashboard")
    page.click("nav a[href='/gallery']")
    page.wait_for_selector("#pageinfo:has-text('(8 items)')")
    assert page.locator(".gcard").count() == 8
    assert page.locator("img[src='x']").count() == 0  # hostile item text is text
    assert "<img src=x" in page.locator(".gcard[data-id='pet-5'] pre").inner_text()
    prov = page.locator(".gcard[data-id='pet-4'] .prov").inner_text()
    assert prov == "source auto · conf 0.900 · by logreg · round 2 · 0 vote(s)"
    assert page.locator(".gcard[data-id='pet-1'] .prov").inner_text() == "source review · by rev · 2 vote(s)"
    screenshot(page, "gallery")
    page.fill("#q", "CAT")
    page.keyboard.press("Enter")
    page.wait_for_selector("#pageinfo:has-text('(2 items)')")
    assert page.eval_on_selector_all(".gcard", "cs => cs.map(c => c.getAttribute('data-id'))") == ["pet-0", "pet-3"]
    assert page.locator(".gcard[data-id='pet-0'] .glabel").inner_text() == "label: cat"
    page.fill("#q", "")
    page.select_option("#source", "rejected")
    page.click("#apply")
    page.wait_for_selector("#pageinfo:has-text('(1 items)')")
    assert page.locator(".gcard .gid").inner_text() == "pet-7"
    assert page.locator(".gcard .glabel").inner_text() == "label: —"
    screenshot(page, "gallery_search")


def test_dashboard_agreement_section(shared, browser, screenshot) -> None:
    pg = browser.new_page(viewport={"width": 1200, "height": 1500})
    try:
        pg.goto(f"{shared}/dashboard")
        pg.wait_for_function("document.querySelector('#alpha').textContent !== '…'")
        assert pg.locator("#alpha").inner_text() == "0.300"
        assert pg.locator("#n-votes").inner_text() == "9"  # cy's withdrawn vote is not counted
        rows = pg.eval_on_selector_all("#agree-labelers tr:has(td)",
                                       "rs => rs.map(r => [...r.children].map(c => c.textContent))")
        assert rows == [["ann", "4", "2", "2", "1.000", "[0.342, 1.000]"],
                        ["bob", "3", "2", "1", "0.500", "[0.095, 0.905]"],
                        ["cy", "2", "1", "1", "1.000", "[0.207, 1.000]"]]
        pairs = pg.eval_on_selector_all("#agree-pairs tr:has(td)",
                                        "rs => rs.map(r => [...r.children].map(c => c.textContent))")
        assert pairs == [["ann", "bob", "3", "2", "0.667"], ["ann", "cy", "2", "1", "0.500"],
                         ["bob", "cy", "2", "1", "0.500"]]
        pg.locator("#agree-pairs").scroll_into_view_if_needed()
        screenshot(pg, "dashboard_agreement")
    finally:
        pg.close()
