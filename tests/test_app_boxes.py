"""Box review API: filters, image order, review posts as box events, images and masks, bad requests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web app needs fastapi (pip install fastapi uvicorn httpx)")
pytest.importorskip("httpx", reason="the app tests need httpx")
from fastapi.testclient import TestClient

from labelsieve.app.server import create_app
from labelsieve.data import load_image_folder
from labelsieve.detect import Detections, decode_mask, make_scenes
from labelsieve.store import boxes as B
from labelsieve.store.project import Project, init_project

CLASSES = ["square", "disk", "triangle"]
W, H = 128, 96
# image -> [(class id, score)]: image 2's lowest pending box (0.2) is the lowest overall
SCORES = {1: [(1, 0.9), (2, 0.4)], 2: [(3, 0.2), (1, 0.95)], 3: [(2, 0.6)], 4: [(1, 0.3), (3, 0.8)]}


def client(app, **kw) -> TestClient:
    """A test client that, like a browser on loopback, names 127.0.0.1 as its host (the app's host check)."""
    return TestClient(app, base_url="http://127.0.0.1", **kw)


@pytest.fixture()
def proj(tmp_path: Path) -> Path:
    gt, pics = make_scenes(5, n_classes=3, height=H, width=W, random_state=1)
    (tmp_path / "img").mkdir()
    for f, im in zip(gt.images["file_name"], pics, strict=True):
        Image.fromarray(im).save(tmp_path / "img" / f)
    p = init_project(tmp_path / "p", load_image_folder(tmp_path / "img", classes=CLASSES))
    rows, masks = [], []
    for img, boxes in SCORES.items():
        for k, (c, s) in enumerate(boxes):
            x = 10.0 + 40 * k
            rows.append({"image_id": img, "x1": x, "y1": 10.0, "x2": x + 30, "y2": 50.0, "category_id": c, "score": s})
            m = np.zeros((H, W), bool)
            m[10:50, int(x):int(x) + 30] = True
            masks.append(m)
    from labelsieve.detect import encode_masks

    b = pd.DataFrame(rows)
    b["mask"] = pd.Series(encode_masks(np.stack(masks)), dtype=object)
    B.add_detections(p, Detections(b, gt.images, gt.categories), who="det")
    p.store.add_labeler("ann")
    p.close()
    return tmp_path / "p"


def _client(d: Path) -> TestClient:
    return client(create_app(d))


def test_images_ordered_by_lowest_pending_box_with_their_boxes(proj: Path) -> None:
    c = _client(proj)
    r = c.get("/api/boxes").json()
    assert r["total_images"] == 4 and r["total_boxes"] == 7 and r["counts"]["pending"] == 7
    assert [i["id"] for i in r["images"]] == ["scene_000002.png", "scene_000004.png", "scene_000001.png",
                                              "scene_000003.png"]  # lowest scores 0.2, 0.3, 0.4, 0.6
    first = r["images"][0]
    assert (first["width"], first["height"]) == (W, H) and first["lowest_pending"] == 0.2
    assert sorted((b["class"], b["score"]) for b in first["boxes"]) == [("square", 0.95), ("triangle", 0.2)]
    assert all(b["status"] == "pending" and b["mask"] for b in first["boxes"])
    # paging
    p1 = c.get("/api/boxes", params={"page_size": 3, "page": 1}).json()
    assert [i["id"] for i in p1["images"]] == ["scene_000003.png"]
    # once image 2's 0.2 box is decided, image 2 sorts by its remaining pending box (0.95): last
    low = next(b["id"] for b in first["boxes"] if b["score"] == 0.2)
    assert c.post("/api/boxes/review", json={"labeler": "ann", "ids": [low], "action": "accept"}).json()["events"] == 1
    order = [i["id"] for i in c.get("/api/boxes").json()["images"]]
    assert order == ["scene_000004.png", "scene_000001.png", "scene_000003.png", "scene_000002.png"]


def test_filters_by_class_score_range_and_status(proj: Path) -> None:
    c = _client(proj)
    r = c.get("/api/boxes", params={"class": "square"}).json()
    assert r["total_boxes"] == 3 and {b["class"] for i in r["images"] for b in i["boxes"]} == {"square"}
    assert [i["id"] for i in r["images"]] == ["scene_000004.png", "scene_000001.png", "scene_000002.png"]
    r = c.get("/api/boxes", params={"min": 0.3, "max": 0.6}).json()
    assert sorted(b["score"] for i in r["images"] for b in i["boxes"]) == [0.3, 0.4, 0.6]
    ids = [b["id"] for i in r["images"] for b in i["boxes"]]
    c.post("/api/boxes/review", json={"labeler": "ann", "ids": ids[:2], "action": "reject"})
    r = c.get("/api/boxes", params={"status": "rejected"}).json()
    assert sorted(b["id"] for i in r["images"] for b in i["boxes"]) == sorted(ids[:2])
    assert r["counts"] == {"pending": 0, "accepted": 0, "rejected": 2, "relabeled": 0}
    assert c.get("/api/boxes", params={"status": "pending"}).json()["total_boxes"] == 5


def test_review_posts_are_box_events_and_return_new_state(proj: Path) -> None:
    c = _client(proj)
    boxes = [b for i in c.get("/api/boxes").json()["images"] for b in i["boxes"]]
    a, b2, b3 = boxes[0]["id"], boxes[1]["id"], boxes[2]["id"]
    r = c.post("/api/boxes/review", json={"labeler": "ann", "ids": [a, b2], "action": "reject", "key": "k1"}).json()
    assert r["events"] == 2 and {x["status"] for x in r["boxes"]} == {"rejected"}
    again = c.post("/api/boxes/review", json={"labeler": "ann", "ids": [a, b2], "action": "reject", "key": "k1"})
    assert again.json()["events"] == 0  # a retried request writes nothing
    r = c.post("/api/boxes/review", json={"labeler": "ann", "ids": [b3], "action": "relabel", "class": "disk"}).json()
    assert r["boxes"][0]["class"] == "disk" and r["boxes"][0]["status"] == "relabeled"
    assert r["boxes"][0]["proposed"] == boxes[2]["class"]
    ev = B.box_events(Project(proj))
    assert ev["box"].tolist() == [a, b2, b3] and ev["action"].tolist() == ["reject", "reject", "relabel"]
    assert set(ev["who"]) == {"ann"} and set(ev["source"]) == {"review"}
    assert int(ev["code"].iloc[2]) == CLASSES.index("disk")


@pytest.mark.parametrize(("body", "status", "match"), [
    ({"labeler": "nobody", "ids": [1], "action": "accept"}, 403, "unknown labeler id 'nobody'"),
    ({"labeler": "ann", "ids": [1], "action": "delete"}, 400, "action must be accept, reject or relabel"),
    ({"labeler": "ann", "ids": [], "action": "accept"}, 400, "ids must be a list of 1-"),
    ({"labeler": "ann", "ids": "1", "action": "accept"}, 400, "ids must be a list of 1-"),
    ({"labeler": "ann", "ids": [1, 999], "action": "accept"}, 400, "unknown box id 999"),
    ({"labeler": "ann", "ids": [1], "action": "relabel"}, 400, "relabel needs 'class'"),
    ({"labeler": "ann", "ids": [1], "action": "relabel", "class": "cat"}, 400, "'cat' is not one of the project"),
    ({"labeler": "ann", "ids": [1], "action": "accept", "class": "disk"}, 400, "only taken by relabel"),
    ({"labeler": "ann", "ids": ["<b>"], "action": "accept"}, 400, "box id '<b>' is not an integer"),
])
def test_bad_review_requests_are_4xx_and_write_nothing(proj: Path, body, status, match) -> None:
    c = _client(proj)
    r = c.post("/api/boxes/review", json=body)
    assert r.status_code == status and match in r.json()["detail"]
    assert len(B.box_events(Project(proj))) == 0


@pytest.mark.parametrize(("params", "status", "match"), [
    ({"class": "cat"}, 400, "class 'cat' is not one of the project classes"),
    ({"status": "done"}, 400, "status 'done' is not one of"),
    ({"min": 0.8, "max": 0.2}, 400, "the score range is empty: min 0.8 > max 0.2"),
    ({"min": "high"}, 422, "min"),
    ({"page": -1}, 422, "page"),
])
def test_bad_filters_are_4xx_with_a_clear_message(proj: Path, params, status, match) -> None:
    r = _client(proj).get("/api/boxes", params=params)
    assert r.status_code == status and match in str(r.json()["detail"])


def test_image_and_mask_png(proj: Path) -> None:
    c = _client(proj)
    im = c.get("/api/boxes/image", params={"id": "scene_000002.png"})
    assert im.status_code == 200 and im.headers["content-type"] == "image/png"
    got = np.asarray(Image.open(io.BytesIO(im.content)).convert("RGB"))
    assert np.array_equal(got, np.asarray(Image.open(proj.parent / "img" / "scene_000002.png").convert("RGB")))
    boxes = c.get("/api/boxes").json()["images"][0]["boxes"]
    b = min(boxes, key=lambda x: x["x1"])
    m = np.asarray(Image.open(io.BytesIO(c.get("/api/boxes/mask", params={"box": b["id"]}).content)))
    want = decode_mask(B.mask_of(Project(proj), b["id"]))
    assert m.shape == (H, W) and np.array_equal(m == 255, want) and want[10:50, 10:40].all() and want.sum() == 1200
    assert c.get("/api/boxes/mask", params={"box": 999}).status_code == 400
    assert c.get("/api/boxes/image", params={"id": "nope.png"}).status_code == 400


def test_page_is_served_with_the_missing_box_note(proj: Path) -> None:
    c = _client(proj)
    html = c.get("/boxes").text
    assert "Missing boxes cannot be drawn here" in html and "CVAT or Label Studio" in html
    assert "/static/boxes.js" in html and c.get("/static/boxes.js").status_code == 200
    assert 'href="/boxes"' in c.get("/review").text  # linked from the other pages
