"""The label page in Chromium (issue 16, defects 2-8): keys, Enter, a team of one, undo, hidden
votes, broken items, the run's queue and its progress. Each asserts on the store, not only the page.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sqlalchemy as sa

from labelsieve.data import Dataset
from labelsieve.store import labeling as L
from labelsieve.store import schema as S
from labelsieve.store.project import Project, init_project


def _texts(d: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    ds = Dataset(ids=[f"t{j}" for j in range(n)], X=rng.normal(size=(n, 3)).astype(np.float32),
                 classes=tuple(str(c) for c in range(10)), raw=[f"text number {j}" for j in range(n)], name="t")
    p = init_project(d, ds)
    p.store.add_labeler("ann")  # a team of one, no registered accuracy
    p.close()
    return d


def _votes(d: Path) -> list[tuple[str, int]]:
    p = Project(d)
    try:
        v = L.live_events(p.store, ("vote",))
        ids = p.store.items(("pos", "id")).set_index("pos")["id"]
        return [(str(ids[int(i)]), int(c)) for i, c in zip(v["item"], v["code"], strict=True)]
    finally:
        p.close()


def _item(page) -> str:
    return page.locator("#itemid").inner_text().removeprefix("item ")


def test_digit_keys_enter_team_of_one_undo_and_hidden_votes(tmp_path, serve_project, browser, screenshot) -> None:
    d = _texts(tmp_path / "t")
    with serve_project(d) as url:  # the defaults: tau 0.95, kappa 3
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(f"{url}/label?labeler=ann")
        page.wait_for_selector("#itemid:has-text('item t')")
        first = _item(page)
        # defect 6: nothing of the aggregate is shown before the labeler answers
        assert page.locator("#last").is_hidden() and page.locator("#posterior tr").count() == 0
        page.keyboard.press("4")  # defect 2: the key of class "4" is 4 (main recorded class "3")
        page.wait_for_function(f"document.querySelector('#itemid').textContent !== 'item {first}'")
        assert _votes(d) == [(first, 4)]
        # defect 4: a team of one finishes the item with the defaults, and the page says why
        page.wait_for_selector("#status:has-text('every labeler of the project has voted')")
        assert page.locator("#posterior tr").count() == 10  # shown after answering
        p = Project(d)
        cur = p.store.current_labels()
        p.close()
        assert cur[["id", "label", "source"]].values.tolist() == [[first, "4", "aggregate"]]
        # defect 3: Enter after a click does not answer the next item with the same class
        second = _item(page)
        page.locator("button[data-label='7']").click()
        page.wait_for_function(f"document.querySelector('#itemid').textContent !== 'item {second}'")
        third = _item(page)
        page.keyboard.press("Enter")
        page.wait_for_timeout(500)
        assert _item(page) == third and _votes(d) == [(first, 4), (second, 7)]
        page.wait_for_selector("#progress:has-text('you: 2 answer(s)')")
        # defect 5: Backspace withdraws the last answer (an event) and shows that item again
        page.keyboard.press("Backspace")
        page.wait_for_selector(f"#itemid:has-text('item {second}')")
        page.wait_for_selector("#notice:has-text('Undone')")
        screenshot(page, "label-undo")
        assert _votes(d) == [(first, 4)]
        p = Project(d)
        ev = p.store.events()
        p.close()
        assert (ev["source"] == "withdraw").sum() == 2  # the vote and the aggregate it made; nothing deleted
        assert (ev["source"] == "vote").sum() == 2
        page.keyboard.press("2")  # answered again
        page.wait_for_function(f"document.querySelector('#itemid').textContent !== 'item {second}'")
        assert _votes(d) == [(first, 4), (second, 2)]
        page.close()


def test_named_classes_show_their_key_and_a_broken_image_is_reported(tmp_path, serve_project, browser,
                                                                    screenshot) -> None:
    from PIL import Image

    paths = []
    for j in range(3):
        f = tmp_path / f"img {j}&#+.png"  # the characters that broke thumbnails (defect 7)
        Image.new("L", (8, 8), 40 * j).save(f)
        paths.append(str(f))
    ds = Dataset(ids=[Path(f).name for f in paths], X=np.arange(6, dtype=np.float32).reshape(3, 2),
                 classes=("circle", "square"), raw=paths, name="img")
    p = init_project(tmp_path / "p", ds)
    p.store.add_labeler("ann")
    p.close()
    Path(paths[0]).write_bytes(b"not an image")  # the first item's file went bad
    with serve_project(tmp_path / "p") as url:
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(f"{url}/label?labeler=ann")
        page.wait_for_selector("#broken:has-text('cannot be shown')")
        assert _item(page) == Path(paths[0]).name
        assert page.locator("#classes button:disabled").count() == 2  # the blank item cannot be answered
        screenshot(page, "label-broken")
        page.locator("#skip-broken").click()
        page.wait_for_selector("#notice:has-text('as broken')")
        page.wait_for_selector(f"#itemid:has-text('item {Path(paths[1]).name}')")
        # the file names with & # + load (percent-encoded thumbnail URLs)
        page.wait_for_function("(() => { const i = document.querySelector('#thumb'); return i && i.complete"
                               " && i.naturalWidth > 0; })()")
        assert page.locator("#broken").is_hidden()
        skips = page.request.get(f"{url}/api/skips").json()
        assert skips["broken"] == 1 and skips["skips"][0]["id"] == Path(paths[0]).name
        assert "cannot be decoded" in skips["skips"][0]["note"]
        # defect 2: names longer than one character get numbered keys, shown on the buttons
        assert page.locator("#classes button kbd").all_inner_texts() == ["1", "2"]
        page.keyboard.press("2")
        page.wait_for_selector(f"#itemid:has-text('item {Path(paths[2]).name}')")
        assert _votes(tmp_path / "p") == [(Path(paths[1]).name, 1)]  # "square"
        page.close()


def test_the_runs_queue_comes_first_with_its_progress_and_says_when_it_is_done(tmp_path, serve_project,
                                                                              browser, screenshot) -> None:
    d = _texts(tmp_path / "t")
    p = Project(d)
    with p.store.transaction() as c:
        c.execute(sa.insert(S.runs).values(id=3, kind="tbal", config="{}", status="waiting", started=0.0))
        c.execute(sa.insert(S.queue), [{"item": q, "run_id": 3, "round": 1, "created": 0.0} for q in (2, 4)])
    p.close()
    with serve_project(d) as url:
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(f"{url}/label?labeler=ann")
        page.wait_for_selector("#itemid:has-text('item t2')")
        assert "run 3 round 1: 2 of 2 left" in page.locator("#progress").inner_text()
        page.keyboard.press("1")
        page.wait_for_selector("#itemid:has-text('item t4')")
        page.wait_for_selector("#progress:has-text('run 3 round 1: 1 of 2 left')")
        page.keyboard.press("1")
        page.wait_for_selector("#finished-text:has-text('The queue of run 3 is done')")
        assert page.locator("#beyond").inner_text() == "Label other items (4 that no run asked for)"
        screenshot(page, "label-queue-done")
        assert [i for i, _ in _votes(d)] == ["t2", "t4"]  # only what the run asked for
        page.locator("#beyond").click()
        page.wait_for_selector("#itemid:has-text('item t0')")
        page.close()
