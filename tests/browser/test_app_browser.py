"""Browser tests: Debian's Chromium (headless, loopback) drives the web app through Playwright.

Label an item, batch-accept in the review queue, see the dashboard numbers change; screenshots of
each page go to tests/browser/out/ (or to docs/screenshots/ with LABELSIEVE_UPDATE_SCREENSHOTS=1).
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
    screenshot(page, "label")
    page.keyboard.press("1")  # key 1 = class "0"
    page.wait_for_function(f"document.querySelector('#itemid').textContent !== {first!r}")
    page.locator("button[data-label='3']").click()  # and one by click
    page.wait_for_timeout(300)

    page.goto(f"{url}/review?reviewer=rev")
    page.wait_for_selector("#queue tbody tr")
    assert "(100 auto-labels)" in page.locator("#pageinfo").inner_text()
    screenshot(page, "review")
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
    screenshot(page, "dashboard")
    votes = Project(d).store.events(source="vote")
    assert votes["who"].tolist() == ["ann", "ann"] and votes["code"].tolist() == [0, 3]


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
    screenshot(page, "map")
