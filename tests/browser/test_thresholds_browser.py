"""Browser tests of issue 16: the threshold page (curve, slider, apply), rounds without a certified
threshold on the dashboard (defect 11), and the label page after a lapsed lease or in a second tab
(defect 9). Each asserts on the store as well as on the page; screenshots go to tests/browser/out/.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from labelsieve.data import Dataset, load_dataset
from labelsieve.store import schema as S
from labelsieve.store.project import Project, init_project


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from labelsieve.runs.directory import RunConfig
    from labelsieve.runs.project import run_project

    d = tmp_path_factory.mktemp("thrb") / "digits"
    p = init_project(d, load_dataset("digits"))
    run_project(p, RunConfig(dataset="project", epsilon=0.1, delta=0.1, budget=500, seed=0))
    p.store.add_labeler("rev", role="reviewer")
    p.close()
    return d


def test_threshold_page_curve_slider_and_apply(run_dir, serve_project, browser, screenshot) -> None:
    from labelsieve.runs.project import load_evidence

    p = Project(run_dir)
    rid, meta, a = load_evidence(p)
    p.close()
    thr = meta["thresholds"][0]
    assert thr is not None
    expected = int((a["pool_conf"] >= thr).sum())
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    try:
        with serve_project(run_dir) as url:
            page.goto(f"{url}/thresholds?reviewer=rev")
            page.wait_for_selector("#certmark")
            assert page.locator("#error").inner_text() == ""
            # the slider starts at the certified threshold: its count and bound are the certificate's
            assert page.locator("#s-threshold").inner_text() == f"{thr:.4f}"
            assert int(page.locator("#s-pool").inner_text()) == expected
            assert page.locator("#s-ok").inner_text() == "yes"
            curve = page.evaluate("data.curve")
            for i in (0, len(curve["threshold"]) // 3, len(curve["threshold"]) - 1):
                page.locator("#slider").fill(str(i))
                t = curve["threshold"][i]
                assert int(page.locator("#s-pool").inner_text()) == int((a["pool_conf"] >= t).sum())  # hand count
                assert page.locator("#s-bound").inner_text() == f"{curve['upper'][i]:.4f}"
                assert page.locator("#s-ok").inner_text() == ("yes" if curve["upper"][i] <= meta["epsilon"] else "no")
            page.locator("#slider").fill(str(len(curve["threshold"]) // 3))
            screenshot(page, "thresholds")
            page.locator("#apply").click()
            page.wait_for_selector(f"#msg:has-text('{expected} auto-label event')")
            assert page.locator("#error").inner_text() == ""
            page.locator("#cls").select_option("3")
            page.wait_for_function("data && data.class === '3'")
            assert "recomputes the per-class scan" in page.locator("#scopenote").inner_text()
            screenshot(page, "thresholds-class")
    finally:
        page.close()
    p = Project(run_dir)
    ev = p.store.events(source="auto")
    p.close()
    applied = ev[ev["run_id"] > rid]
    assert len(applied) == expected and (applied["threshold"] == thr).all()


def test_dashboard_rounds_without_a_certified_threshold_show_a_dash(tmp_path, serve_project, browser,
                                                                   screenshot) -> None:
    d = tmp_path / "uncert"
    p = init_project(d, load_dataset("digits").subset(np.arange(50)))
    rounds = [  # a later round that certified nothing, after earlier auto-labels (geometric schedule)
        {"coverage": 0.4, "error_bound": 0.05, "n_auto_total": 20, "thresholds": [0.9] * 10},
        {"coverage": 0.4, "error_bound": 0.0, "n_auto_total": 20, "thresholds": [None] * 10},
        {"coverage": 0.0, "error_bound": 0.0, "n_auto_total": 0, "thresholds": [None] * 10},
    ]
    with p.store.transaction() as c:
        c.execute(sa.insert(S.runs).values(id=1, kind="tbal", config="{}", status="complete", started=0.0))
        for r, stats in enumerate(rounds, start=1):
            c.execute(sa.insert(S.run_rounds).values(run_id=1, round=r, stats=json.dumps(stats), committed=0.0))
    p.close()
    pg = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        with serve_project(d) as url:
            pg.goto(f"{url}/dashboard")
            pg.wait_for_selector("#rounds tr:has(td)")
            bounds = pg.eval_on_selector_all("#rounds tr:has(td)", "rows => rows.map(r => r.children[3].textContent)")
            assert bounds == ["0.050", "—", "—"]
            screenshot(pg, "dashboard-no-threshold")
    finally:
        pg.close()


def _texts(d: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    ds = Dataset(ids=[f"t{j}" for j in range(n)], X=rng.normal(size=(n, 3)).astype(np.float32),
                 classes=tuple(str(c) for c in range(10)), raw=[f"text number {j}" for j in range(n)], name="t")
    p = init_project(d, ds)
    p.store.add_labeler("ann")
    p.store.add_labeler("bob")
    p.close()
    return d


def _item(page) -> str:
    return page.locator("#itemid").inner_text().removeprefix("item ")


def test_label_page_after_a_lapsed_lease_records_the_answer(tmp_path, serve_project, browser, screenshot, live_votes) -> None:
    d = _texts(tmp_path / "lease")
    with serve_project(d, lease_seconds=1, kappa=3) as url:
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        try:
            page.goto(f"{url}/label?labeler=ann")
            page.wait_for_selector("#itemid:has-text('item t')")
            first = _item(page)
            page.wait_for_timeout(2500)  # the 1 s lease lapses (the heartbeat is every 60 s)
            page.keyboard.press("4")
            page.wait_for_function(f"document.querySelector('#itemid').textContent !== 'item {first}'")
            assert page.locator("#error").inner_text() == ""
            assert ("ann", first, 4) in live_votes(d)  # the answer to the lapsed lease still counts
            # lapsed again, and meanwhile someone else took the item: the page moves on, no error
            second = _item(page)
            page.wait_for_timeout(2500)
            other = browser.new_page()
            other.goto(f"{url}/label?labeler=bob")
            other.wait_for_selector("#itemid:has-text('item t')")
            page.keyboard.press("5")
            page.wait_for_function(f"document.querySelector('#itemid').textContent !== 'item {second}'")
            assert page.locator("#error").inner_text() == ""
            assert page.locator("#itemid").inner_text().startswith("item t")
            screenshot(page, "label-lapsed-lease")
            other.close()
        finally:
            page.close()


def test_label_page_second_tab_moves_on_without_an_error(tmp_path, serve_project, browser, screenshot, live_votes) -> None:
    d = _texts(tmp_path / "tabs")
    with serve_project(d, kappa=3) as url:
        ctx = browser.new_context(viewport={"width": 1100, "height": 800})
        a, b = ctx.new_page(), ctx.new_page()
        try:
            a.goto(f"{url}/label?labeler=ann")
            a.wait_for_selector("#itemid:has-text('item t')")
            b.goto(f"{url}/label?labeler=ann")
            b.wait_for_selector("#itemid:has-text('item t')")
            item_a, item_b = _item(a), _item(b)
            assert item_a == item_b  # the same labeler's lease: one item, shown in both tabs
            b.keyboard.press("2")  # answered in the second tab
            b.wait_for_function(f"document.querySelector('#itemid').textContent !== 'item {item_b}'")
            a.keyboard.press("7")  # the first tab answers the same item again
            a.wait_for_function(f"document.querySelector('#itemid').textContent !== 'item {item_a}'")
            assert a.locator("#error").inner_text() == ""
            assert not a.locator("#notice").is_hidden()
            assert [v for v in live_votes(d) if v[1] == item_a] == [("ann", item_a, 2)]  # one vote, not two
            screenshot(a, "label-second-tab")
        finally:
            ctx.close()
