"""Browser test of the box review page: Debian's Chromium (headless, loopback) through Playwright.

Filter by class, select two boxes (click, shift-click), reject them with the keyboard, relabel a
third from the dropdown, and check the store's box events. Screenshot: tests/browser/out/boxes.png
(docs/screenshots/boxes.png with LABELSIEVE_UPDATE_SCREENSHOTS=1). Skipped with a reason when
chromium or playwright is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from labelsieve.data import load_image_folder
from labelsieve.detect import Detections, make_scenes
from labelsieve.store import boxes as B
from labelsieve.store.project import Project, init_project

CLASSES = ["square", "disk", "triangle"]


@pytest.fixture(scope="module")
def served(tmp_path_factory, serve_project):
    root = tmp_path_factory.mktemp("boxes")
    gt, pics = make_scenes(6, n_classes=3, objects_per_image=(3, 5), random_state=7)
    (root / "img").mkdir()
    for f, im in zip(gt.images["file_name"], pics, strict=True):
        Image.fromarray(im).save(root / "img" / f)
    p = init_project(root / "p", load_image_folder(root / "img", classes=CLASSES))
    rng = np.random.default_rng(0)
    pred = gt.boxes.assign(score=rng.uniform(0.05, 0.99, len(gt)).round(2))
    B.add_detections(p, Detections(pred, gt.images, gt.categories), who="sim-detector")
    p.store.add_labeler("rev")
    n_square = int((gt.boxes["category_id"] == 1).sum())
    p.close()
    with serve_project(root / "p") as url:
        yield url, root / "p", n_square


@pytest.fixture(scope="module")
def page(served, browser):
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    yield pg
    pg.close()


def _ids(page, sel: str) -> list[int]:
    return [int(v) for v in page.eval_on_selector_all(sel, "els => els.map(e => e.getAttribute('data-id'))")]


def test_filter_select_reject_relabel_are_box_events(served, page, screenshot) -> None:
    url, d, n_square = served
    page.goto(f"{url}/boxes?labeler=rev")
    page.wait_for_selector("g.box")
    assert "Missing boxes cannot be drawn here" in page.locator("#missing-note").inner_text()
    n_all = page.locator("g.box").count()
    assert n_all > n_square > 2
    # masks are drawn: one luminance mask per box, and its PNG loads
    assert page.locator("g.box mask image").count() == n_all

    page.select_option("#cls", "square")
    page.wait_for_function(f"document.querySelectorAll('g.box').length === {n_square}")
    assert set(page.eval_on_selector_all("g.box", "els => els.map(e => e.getAttribute('data-class'))")) == {"square"}
    # the first card holds the lowest-scoring pending square
    caps = page.locator(".boxcard .cap").all_inner_texts()
    lows = [float(c.rsplit(" ", 1)[1]) for c in caps]
    assert lows == sorted(lows)

    ids = _ids(page, "g.box")
    a, b, c = ids[0], ids[1], ids[2]
    page.locator(f"g.box[data-id='{a}'] rect.frame").click()
    page.locator(f"g.box[data-id='{b}'] rect.frame").click(modifiers=["Shift"])
    assert page.locator("#nsel").inner_text() == "2 selected"
    assert sorted(_ids(page, "g.box.sel")) == sorted([a, b])
    page.keyboard.press("r")
    page.wait_for_selector("#msg:has-text('reject: 2 box event(s) written')")
    assert page.locator(f"g.box[data-id='{a}']").get_attribute("data-status") == "rejected"
    assert page.locator(f"g.box[data-id='{b}']").get_attribute("data-status") == "rejected"

    page.locator(f"g.box[data-id='{c}'] rect.frame").click()
    assert _ids(page, "g.box.sel") == [c]  # a plain click replaces the selection
    page.select_option("#newclass", "disk")
    page.locator("#relabel").click()
    page.wait_for_selector("#msg:has-text('relabel: 1 box event(s) written')")
    g = page.locator(f"g.box[data-id='{c}']")
    assert g.get_attribute("data-status") == "relabeled" and g.get_attribute("data-class") == "disk"
    assert "disk \u2190 square" in g.locator("text").text_content()
    counts = page.locator("#counts").inner_text()  # updated in place, no reload
    assert f"(pending {n_square - 3}, accepted 0, relabeled 1, rejected 2)" in counts

    ev = B.box_events(Project(d))
    assert ev["box"].tolist() == [a, b, c]
    assert ev["action"].tolist() == ["reject", "reject", "relabel"]
    assert set(ev["who"]) == {"rev"} and set(ev["source"]) == {"review"}
    assert int(ev["code"].iloc[2]) == CLASSES.index("disk")

    # all classes again, one more decision by keyboard, two boxes selected for the screenshot
    page.select_option("#cls", "")
    page.wait_for_function(f"document.querySelectorAll('g.box').length === {n_all}")
    ids = _ids(page, "g.box[data-status='pending']")
    page.locator(f"g.box[data-id='{ids[0]}'] rect.frame").click()
    page.keyboard.press("a")
    page.wait_for_selector("#msg:has-text('accept: 1 box event(s) written')")
    page.locator(f"g.box[data-id='{ids[1]}'] rect.frame").click()
    page.locator(f"g.box[data-id='{ids[2]}'] rect.frame").click(modifiers=["Shift"])
    page.wait_for_timeout(300)  # mask PNGs
    screenshot(page, "boxes")
    assert B.current_boxes(Project(d), status="accepted")["box"].tolist() == [ids[0]]


def test_unknown_labeler_is_shown_and_nothing_is_written(served, page) -> None:
    url, d, _ = served
    page.goto(f"{url}/boxes?labeler=%3Cimg%20src%3Dx%3E")
    page.wait_for_selector("g.box")
    n = len(B.box_events(Project(d)))
    page.locator("g.box rect.frame").first.click()
    page.keyboard.press("a")
    page.wait_for_selector("#error:has-text('unknown labeler id')")
    assert page.locator("img[src='x']").count() == 0
    assert len(B.box_events(Project(d))) == n
