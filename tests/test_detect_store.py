"""Boxes in the project store: proposals with provenance, review/auto events, status, exports, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from PIL import Image

from labelsieve.cli import main
from labelsieve.data import load_image_folder
from labelsieve.detect import (
    BoxThresholds,
    Detections,
    SimulatedDetector,
    decode_mask,
    make_scenes,
    read_coco_gt,
    read_yolo,
    write_coco_gt,
    write_coco_results,
    write_yolo,
)
from labelsieve.errors import InputError
from labelsieve.store import SCHEMA_VERSION, Store
from labelsieve.store import boxes as B
from labelsieve.store import schema as S
from labelsieve.store.project import Project, init_project

CLASSES = ("square", "disk", "triangle")
CATS = {1: "square", 2: "disk", 3: "triangle"}
W, H = 128, 96


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Six synthetic scenes written as PNGs, with their exact boxes and masks."""
    d = tmp_path_factory.mktemp("scenes")
    gt, pics = make_scenes(6, n_classes=3, height=H, width=W, random_state=4)
    (d / "img").mkdir()
    for f, im in zip(gt.images["file_name"], pics, strict=True):
        Image.fromarray(im).save(d / "img" / f)
    return d / "img", gt


@pytest.fixture()
def project(scenes, tmp_path) -> Project:
    img_dir, _ = scenes
    return init_project(tmp_path / "proj", load_image_folder(img_dir, classes=list(CLASSES)))


def _images(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({"image_id": np.arange(1, n + 1), "file_name": [f"scene_{i:06d}.png" for i in range(1, n + 1)],
                         "width": W, "height": H})


# five hand-made boxes: name -> (image, xyxy, category, score)
HAND = {
    "A": (1, (10.0, 10.0, 30.0, 40.0), 1, 0.9),
    "B": (1, (50.0, 20.0, 70.0, 50.0), 2, 0.3),
    "C": (2, (5.0, 5.0, 25.0, 25.0), 3, 0.5),
    "D": (2, (60.0, 60.0, 90.0, 90.0), 1, 0.1),
    "E": (3, (1.0, 2.0, 3.0, 4.0), 2, 0.7),
}


def _hand() -> Detections:
    rows = [{"image_id": i, "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3], "category_id": c, "score": s}
            for i, b, c, s in HAND.values()]
    return Detections(pd.DataFrame(rows), _images(), CATS, source="hand.json")


def _ids(project) -> dict[str, int]:
    """Box id of each hand box, found by its corners."""
    cur = B.current_boxes(project, order="id")
    out = {}
    for name, (_i, b, _c, _s) in HAND.items():
        hit = cur[(cur["x1"] == b[0]) & (cur["y1"] == b[1])]
        assert len(hit) == 1
        out[name] = int(hit["box"].iloc[0])
    return out


def _counts(st: Store) -> tuple[int, int, int, int]:
    with st.read() as c:
        return tuple(int(c.execute(sa.select(sa.func.count()).select_from(t)).scalar())
                     for t in (S.boxes, S.box_events, S.box_images, S.labelers))


def _status(project) -> dict[int, tuple[str, str]]:
    cur = B.current_boxes(project)
    return {int(b): (s, c) for b, s, c in zip(cur["box"], cur["status"], cur["class"], strict=True)}


# ------------------------------------------------------------------------------------------ adding
def test_add_then_current_boxes_order_filters_and_provenance(project) -> None:
    assert B.add_detections(project, _hand(), who="detr-r50") == 5
    cur = B.current_boxes(project)
    by_score = sorted(HAND, key=lambda k: HAND[k][3])  # D .1, B .3, C .5, E .7, A .9
    assert cur["score"].tolist() == [HAND[k][3] for k in by_score]
    assert cur["image"].tolist() == [f"scene_{HAND[k][0]:06d}.png" for k in by_score]
    assert cur["class"].tolist() == [CATS[HAND[k][2]] for k in by_score]
    assert cur[["x1", "y1", "x2", "y2"]].values.tolist() == [list(HAND[k][1]) for k in by_score]
    assert set(cur["status"]) == {"pending"} and set(cur["who"]) == {"detr-r50"} and set(cur["source"]) == {"model"}
    assert not cur["has_mask"].any()
    assert B.current_boxes(project, cls="disk")["score"].tolist() == [0.3, 0.7]
    assert B.current_boxes(project, cls=1)["score"].tolist() == [0.3, 0.7]  # class code
    assert B.current_boxes(project, score_min=0.3, score_max=0.7)["score"].tolist() == [0.3, 0.5, 0.7]  # inclusive
    assert B.current_boxes(project, limit=2, offset=1)["score"].tolist() == [0.3, 0.5]
    assert B.current_boxes(project, status="accepted").empty
    assert B.current_boxes(project, items=[1])["score"].tolist() == [0.1, 0.5]  # scene 2 is item 1
    # the detector was registered as a model labeler; the images with their sizes
    lab = project.store.labelers().set_index("id")
    assert lab.at["detr-r50", "kind"] == "model"
    imgs = B.box_images(project)
    assert imgs["image"].tolist() == [f"scene_{i:06d}.png" for i in range(1, 7)]
    assert (imgs["width"] == W).all() and (imgs["height"] == H).all()


def test_image_queue_lowest_pending_first_then_images_without_pending(project) -> None:
    B.add_detections(project, _hand(), who="m")
    ids = _ids(project)
    q, counts = B.image_queue(project)
    # scene 2 (pending D .1), scene 1 (B .3), scene 3 (E .7)
    assert q["image"].tolist() == ["scene_000002.png", "scene_000001.png", "scene_000003.png"]
    assert q["lowest_pending"].tolist() == [0.1, 0.3, 0.7] and q["n"].tolist() == [2, 2, 1]
    B.box_review(project, [ids["D"], ids["C"]], "reject", who="ann")  # scene 2: nothing pending any more
    B.box_review(project, [ids["B"]], "accept", who="ann")  # scene 1: A (.9) still pending
    q, counts = B.image_queue(project)
    assert q["image"].tolist() == ["scene_000003.png", "scene_000001.png", "scene_000002.png"]
    assert q["lowest_pending"].tolist()[:2] == [0.7, 0.9] and np.isnan(q["lowest_pending"].iloc[2])
    assert q["lowest"].tolist() == [0.7, 0.3, 0.1]
    assert counts == {"pending": 2, "accepted": 1, "rejected": 2, "relabeled": 0}
    q, counts = B.image_queue(project, cls="square", status="rejected")  # filters apply before grouping
    assert q["image"].tolist() == ["scene_000002.png"] and q["n"].tolist() == [1]
    assert counts == {"pending": 0, "accepted": 0, "rejected": 1, "relabeled": 0}


def test_same_boxes_twice_add_nothing_another_detector_adds_its_own(project) -> None:
    assert B.add_detections(project, _hand(), who="m1") == 5
    before = _counts(project.store)
    assert B.add_detections(project, _hand(), who="m1") == 0
    assert _counts(project.store) == before
    assert B.add_detections(project, _hand(), who="m2") == 5
    assert len(B.current_boxes(project)) == 10


def test_masks_and_images_matched_by_file_name(scenes, project) -> None:
    _, gt = scenes
    # a detector that lists the images under other ids and in another folder: matched by file name
    images = gt.images.assign(image_id=gt.images["image_id"] + 100,
                              file_name="/elsewhere/" + gt.images["file_name"])
    boxes = gt.boxes.assign(image_id=gt.boxes["image_id"] + 100, score=np.linspace(0.05, 0.95, len(gt)))
    assert B.add_detections(project, Detections(boxes, images, gt.categories), who="sam") == len(gt)
    cur = B.current_boxes(project, order="id")
    assert cur["has_mask"].all()
    for r in (0, len(gt) - 1):
        m = B.mask_of(project, int(cur["box"].iloc[r]))
        assert np.array_equal(decode_mask(m), decode_mask(gt.boxes["mask"].iloc[r]))
        assert cur["image"].iloc[r] == gt.images["file_name"].iloc[int(gt.boxes["image_id"].iloc[r]) - 1]


# ------------------------------------------------------------------------------------------ decisions
def test_review_accept_reject_relabel_one_and_many(project) -> None:
    B.add_detections(project, _hand(), who="m")
    ids = _ids(project)
    assert B.box_review(project, [ids["A"]], "reject", who="ann") == 1
    assert B.box_review(project, [ids["B"]], "relabel", code="triangle", who="ann") == 1
    assert B.box_review(project, [ids["C"], ids["D"], ids["E"]], "accept", who="bob") == 3  # many in one call
    st = _status(project)
    assert st[ids["A"]] == ("rejected", "square")
    assert st[ids["B"]] == ("relabeled", "triangle")
    assert st[ids["C"]] == ("accepted", "triangle") and st[ids["D"]] == ("accepted", "square")
    assert st[ids["E"]] == ("accepted", "disk")
    cur = B.current_boxes(project).set_index("box")
    assert cur.at[ids["B"], "proposed"] == CLASSES.index("disk") and cur.at[ids["B"], "decided_by"] == "ann"
    ev = B.box_events(project)
    assert ev["action"].tolist() == ["reject", "relabel", "accept", "accept", "accept"]
    assert ev["who"].tolist() == ["ann", "ann", "bob", "bob", "bob"] and set(ev["source"]) == {"review"}
    assert ev["code"].isna().tolist() == [True, False, False, False, False]
    # accepting the relabeled box keeps its new class (an accept records the class it accepted)
    B.box_review(project, [ids["B"]], "accept", who="bob")
    assert _status(project)[ids["B"]] == ("accepted", "triangle")
    assert B.current_boxes(project, status="accepted", cls="triangle")["box"].tolist() == [ids["B"], ids["C"]]


def test_latest_event_wins_and_review_beats_auto(project) -> None:
    B.add_detections(project, _hand(), who="m")
    ids = _ids(project)
    # review then auto: the review stays
    B.box_review(project, [ids["A"]], "reject", who="ann")
    B.box_review(project, [ids["A"]], "accept", who="rule", source="auto", confidence=0.9, threshold=0.5)
    # auto then review: the review wins
    B.box_review(project, [ids["B"]], "accept", who="rule", source="auto")
    B.box_review(project, [ids["B"]], "relabel", code="square", who="ann")
    # two reviews: the latest wins
    B.box_review(project, [ids["C"]], "accept", who="ann")
    B.box_review(project, [ids["C"]], "reject", who="bob")
    # two auto events: the latest wins
    B.box_review(project, [ids["D"]], "reject", who="r1", source="auto")
    B.box_review(project, [ids["D"]], "accept", who="r2", source="auto")
    st = _status(project)
    assert st[ids["A"]][0] == "rejected" and st[ids["B"]] == ("relabeled", "square")
    assert st[ids["C"]][0] == "rejected" and st[ids["D"]][0] == "accepted"
    assert st[ids["E"]][0] == "pending"
    cur = B.current_boxes(project).set_index("box")
    assert cur.at[ids["D"], "decided_by"] == "r2" and cur.at[ids["D"], "decision_source"] == "auto"
    assert len(B.box_events(project)) == 8  # nothing overwritten


def test_idempotency_key(project) -> None:
    B.add_detections(project, _hand(), who="m")
    ids = _ids(project)
    assert B.box_review(project, [ids["A"], ids["B"]], "reject", who="ann", key="req-1") == 2
    assert B.box_review(project, [ids["A"], ids["B"]], "reject", who="ann", key="req-1") == 0
    assert B.box_review(project, [ids["A"], ids["C"]], "reject", who="ann", key="req-1") == 1  # only C is new
    assert len(B.box_events(project)) == 3
    assert B.box_review(project, [ids["A"]], "accept", who="ann") == 1  # no key: always a new event
    assert B.box_review(project, [ids["A"]], "accept", who="ann") == 1


@pytest.mark.parametrize(("call", "match"), [
    (lambda p, i: B.box_review(p, [i["A"], 9999], "accept", who="ann"), "unknown box id 9999"),
    (lambda p, i: B.box_review(p, [i["A"]], "relabel", who="ann"), "relabel needs the new class"),
    (lambda p, i: B.box_review(p, [i["A"]], "relabel", code="cat", who="ann"), "'cat' is not one of the project"),
    (lambda p, i: B.box_review(p, [i["A"]], "relabel", code=3, who="ann"), "class code 3 is outside"),
    (lambda p, i: B.box_review(p, [i["A"]], "delete", who="ann"), "action must be one of"),
    (lambda p, i: B.box_review(p, [i["A"]], "reject", code="disk", who="ann"), "a rejection takes no class"),
    (lambda p, i: B.box_review(p, [i["A"], "x7"], "accept", who="ann"), "box id 'x7' is not an integer"),
    (lambda p, i: B.box_review(p, [], "accept", who="ann"), "no box ids"),
    (lambda p, i: B.box_review(p, [i["A"]], "accept", who=" "), "'who' must be"),
    (lambda p, i: B.box_review(p, [i["A"]], "accept", who="a", source="human"), "box event source"),
    (lambda p, i: B.auto_accept(p, {"cat": 0.5}, who="r"), "'cat' is not one of the project classes"),
    (lambda p, i: B.auto_accept(p, {"disk": "high"}, who="r"), "threshold of class 'disk' is not a number"),
    (lambda p, i: B.current_boxes(p, status="done"), "status must be one of"),
])
def test_bad_decisions_name_the_problem_and_write_nothing(project, call, match) -> None:
    B.add_detections(project, _hand(), who="m")
    ids = _ids(project)
    before = _counts(project.store)
    with pytest.raises(InputError, match=match):
        call(project, ids)
    assert _counts(project.store) == before


def _bad_image() -> Detections:
    imgs = pd.concat([_images(), pd.DataFrame({"image_id": [7], "file_name": ["nope.png"], "width": [W],
                                                "height": [H]})])
    b = _hand().boxes.copy()
    b.loc[len(b)] = {"image_id": 7, "x1": 1.0, "y1": 1.0, "x2": 5.0, "y2": 5.0, "category_id": 1, "score": 0.5}
    return Detections(b, imgs, CATS, source="preds.json")


def _bad_category() -> Detections:
    b = _hand().boxes.copy()
    b.loc[len(b)] = {"image_id": 2, "x1": 1.0, "y1": 1.0, "x2": 5.0, "y2": 5.0, "category_id": 4, "score": 0.5}
    return Detections(b, _images(), {**CATS, 4: "cat"}, source="preds.json")


def _bad_size() -> Detections:
    return Detections(_hand().boxes, _images().assign(width=[W, W, W, 2 * W, W, W]), CATS, source="preds.json")


@pytest.mark.parametrize(("make", "match"), [
    (_bad_image, r"preds.json: image 7 'nope.png' is not an item of the project"),
    (_bad_category, r"preds.json: category 'cat' \(id 4\) is not one of the project classes"),
    (_bad_size, r"image 'scene_000004.png' is 256x96 \(w x h\) in the detections but the project's image is 128x96"),
])
def test_bad_detections_name_the_item_and_write_nothing(project, make, match) -> None:
    B.add_detections(project, _hand(), who="m")
    before = _counts(project.store)
    with pytest.raises(InputError, match=match):
        B.add_detections(project, make(), who="other")
    assert _counts(project.store) == before


def test_unused_unknown_image_is_ignored_but_a_non_image_item_is_refused(scenes, tmp_path) -> None:
    img_dir, _ = scenes
    p = init_project(tmp_path / "p", load_image_folder(img_dir, classes=list(CLASSES)))
    extra = pd.concat([_images(), pd.DataFrame({"image_id": [9], "file_name": ["x.png"], "width": [5], "height": [5]})])
    assert B.add_detections(p, Detections(_hand().boxes, extra, CATS), who="m") == 5
    st = Store("sqlite://")
    st.set_classes(list(CLASSES))
    st.add_items(pd.DataFrame({"id": [f"scene_{i:06d}.png" for i in range(1, 7)], "kind": "text"}))
    with pytest.raises(InputError, match="matches project item 'scene_000001.png', which is not an image"):
        B.add_detections(st, _hand(), who="m")


# ------------------------------------------------------------------------------------------ migration
def test_migration_from_a_v2_store_keeps_everything_and_adds_boxes(scenes, tmp_path) -> None:
    img_dir, _ = scenes
    db = tmp_path / "v2.db"
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.begin() as c:  # a store written by schema version 2 (no box tables)
        S.migrate(c, target=2)
        c.execute(sa.insert(S.classes), [{"code": k, "name": n} for k, n in enumerate(CLASSES)])
        c.execute(sa.insert(S.items), [{"pos": k - 1, "id": f"scene_{k:06d}.png", "kind": "image",
                                         "source": str(img_dir / f"scene_{k:06d}.png"),
                                         "features_ref": f"features.npy#{k - 1}"} for k in range(1, 7)])
        c.execute(sa.insert(S.events), [{"item": 0, "code": 2, "source": "review", "precedence": 3, "who": "r",
                                          "created": 1.0}])
        c.execute(sa.text(S.UPSERT_CURRENT), {"lo": -1})
    with eng.connect() as c:
        assert not sa.inspect(c).has_table("boxes") and S.get_version(c) == 2
    eng.dispose()
    st = Store(db)
    assert st.schema_version == SCHEMA_VERSION > 2  # migrated from 2 to the latest
    with st.read() as c:
        assert S.get_version(c) == SCHEMA_VERSION
        assert {"boxes", "box_events", "box_images"} <= set(sa.inspect(c).get_table_names())
        idx = {i["name"] for t in ("boxes", "box_events") for i in sa.inspect(c).get_indexes(t)}
    assert {"ix_boxes_item", "ix_box_events_box"} <= idx
    assert st.current_labels()[["id", "label", "source"]].values.tolist() == [["scene_000001.png", "triangle", "review"]]
    assert B.add_detections(st, _hand(), who="m") == 5
    st.close()
    st = Store(db)  # reopening migrates nothing and keeps the boxes
    assert st.schema_version == SCHEMA_VERSION and len(B.current_boxes(st)) == 5


# ------------------------------------------------------------------------------------------ auto-accept
def test_auto_accept_exactly_the_boxes_at_or_above_their_class_threshold(scenes, project) -> None:
    _, gt = scenes
    pred = SimulatedDetector(random_state=3, fp_per_image=2).predict(gt)
    assert B.add_detections(project, pred, who="sim") == len(pred)
    s = pred.boxes["score"].to_numpy()
    disk_score = float(np.sort(s[pred.boxes["category_id"].to_numpy() == 2])[1])
    thr = {"square": 0.6, "disk": disk_score, "triangle": float("inf")}  # disk: a box exactly at the threshold
    n = B.auto_accept(project, thr, who="guarantee")["accepted"]
    t = pred.boxes["category_id"].map({1: 0.6, 2: disk_score, 3: np.inf}).to_numpy()
    want = pred.boxes[s >= t]
    assert n == len(want) > 0
    cur = B.current_boxes(project, status="accepted")
    key = lambda df, img: sorted(zip(img, df["x1"].round(9), df["score"], strict=True))
    assert key(cur, cur["image"]) == key(want, want["image_id"].map(lambda i: f"scene_{i:06d}.png"))
    assert (cur["class"] != "triangle").all() and (cur["decision_source"] == "auto").all()
    ev = B.box_events(project).set_index("box").loc[cur["box"]]
    assert np.allclose(ev["confidence"], cur["score"]) and (ev["source"] == "auto").all()
    assert np.array_equal(ev["threshold"].to_numpy(), cur["class"].map(thr).to_numpy())
    again = B.auto_accept(project, thr, who="guarantee")  # same thresholds again: nothing new
    assert again == {"accepted": 0, "withdrawn": 0, "unchanged": len(want)}
    # a reviewer's rejection is not overridden by a later auto-accept
    b0 = int(cur["box"].iloc[0])
    B.box_review(project, [b0], "reject", who="ann")
    B.auto_accept(project, {"square": 0.0, "disk": 0.0}, who="lower")
    assert _status(project)[b0][0] == "rejected"


def test_auto_accept_with_fitted_guaranteed_thresholds(scenes, project) -> None:
    _, gt = scenes
    verified, _ = make_scenes(300, n_classes=3, render=False, random_state=11)
    det = SimulatedDetector(random_state=5)
    bt = BoxThresholds(method="guarantee", epsilon=0.2, delta=0.2).fit(det.predict(verified), verified)
    assert np.isfinite(list(bt.thresholds_.values())).any()
    pool = det.predict(gt, random_state=9)
    B.add_detections(project, pool, who="sim")
    assert B.auto_accept(project, bt, who="guarantee eps=0.2")["accepted"] == int(bt.accept(pool).sum())


def test_a_stricter_auto_accept_withdraws_earlier_auto_accepts_but_not_reviews(scenes, project) -> None:
    _, gt = scenes
    pred = SimulatedDetector(random_state=4, fp_per_image=2).predict(gt)
    B.add_detections(project, pred, who="sim")
    s = pred.boxes["score"].to_numpy()
    loose = B.auto_accept(project, {"all": 0.2}, who="best-f1")  # "all": a global-scope report row
    assert loose["accepted"] == int((s >= 0.2).sum()) > 0
    reviewed = int(B.current_boxes(project, status="accepted", score_max=0.5)["box"].iloc[0])
    B.box_review(project, [reviewed], "accept", who="ann")
    strict = B.auto_accept(project, {"all": 0.9}, who="guarantee")
    # every box under 0.9 that only a rule had accepted is pending again; the reviewed one stays
    assert strict["withdrawn"] == int(((s >= 0.2) & (s < 0.9)).sum()) - 1
    acc = B.current_boxes(project, status="accepted")
    assert set(acc["box"]) == set(B.current_boxes(project, score_min=0.9)["box"]) | {reviewed}
    assert (B.current_boxes(project, status="pending")["score"] < 0.9).all()
    back = B.auto_accept(project, {"all": 0.2}, who="best-f1")  # and back: every rule-decided box is
    assert back["accepted"] == int((s >= 0.2).sum()) - 1 and back["withdrawn"] == 0  # re-accepted at 0.2
    ev = B.box_events(project).groupby("box").tail(1).set_index("box")
    assert (ev.loc[list(set(B.current_boxes(project, status="accepted")["box"]) - {reviewed}), "threshold"] == 0.2).all()


def test_auto_accept_needs_the_proposer_when_several_detectors_proposed(scenes, project) -> None:
    _, gt = scenes
    B.add_detections(project, SimulatedDetector(random_state=1).predict(gt), who="detA")
    B.add_detections(project, SimulatedDetector(random_state=2, overconfidence=3.0).predict(gt), who="detB")
    with pytest.raises(InputError, match=r"2 proposers \['detA', 'detB'\]"):
        B.auto_accept(project, {"all": 0.5}, who="t")
    with pytest.raises(InputError, match="no scored boxes from proposer 'detC'"):
        B.auto_accept(project, {"all": 0.5}, who="t", proposer="detC")
    B.auto_accept(project, {"all": 0.5}, who="t", proposer="detA")
    acc = B.current_boxes(project, status="accepted")
    assert len(acc) > 0 and set(acc["who"]) == {"detA"}


def test_human_boxes_are_accepted_by_their_author(scenes, project) -> None:
    _, gt = scenes
    assert B.add_detections(project, gt, who="ann", source="human") == len(gt)
    cur = B.current_boxes(project)
    assert (cur["status"] == "accepted").all() and set(cur["decided_by"]) == {"ann"}
    assert len(B.reviewed_detections(project)) == len(gt)
    assert B.add_detections(project, gt, who="ann", source="human") == 0  # and once only
    assert len(B.box_events(project)) == len(gt)


# ------------------------------------------------------------------------------------------ export
def test_reviewed_detections_coco_and_yolo_round_trip(scenes, project, tmp_path) -> None:
    _, gt = scenes
    pred = gt.boxes.assign(score=np.linspace(0.1, 0.9, len(gt)))
    B.add_detections(project, Detections(pred, gt.images, gt.categories), who="m")
    cur = B.current_boxes(project, order="id")
    n = len(cur)
    # decisions by row of the detections: 0,1 rejected; 2 relabeled to disk; 3..5 accepted; rest pending
    ids = cur["box"].to_numpy()
    B.box_review(project, ids[[0, 1]], "reject", who="ann")
    B.box_review(project, ids[[2]], "relabel", code="disk", who="ann")
    B.box_review(project, ids[3:6], "accept", who="ann")
    final = {2: 2} | {r: int(gt.boxes["category_id"].iloc[r]) for r in (3, 4, 5)}
    expect = sorted((gt.images["file_name"].iloc[int(gt.boxes["image_id"].iloc[r]) - 1],
                     *np.round(gt.xyxy[r], 6).tolist(), CATS[c]) for r, c in final.items())

    rev = B.reviewed_detections(project)
    assert len(rev) == 4 and len(rev.images) == 6 and rev.categories == CATS
    write_coco_gt(rev, tmp_path / "reviewed.json")
    back = read_coco_gt(tmp_path / "reviewed.json")
    names = back.images.set_index("image_id")["file_name"]
    got = sorted((names[i], *np.round([a, b, c, d], 6).tolist(), back.categories[k]) for i, a, b, c, d, k in
                 back.boxes[["image_id", "x1", "y1", "x2", "y2", "category_id"]].itertuples(index=False))
    assert got == expect
    assert len(back.images) == 6  # images whose boxes were all rejected are still listed
    for r in range(4):  # masks survive the trip
        src_row = int(np.flatnonzero((gt.xyxy == back.xyxy[r]).all(axis=1))[0])
        assert np.array_equal(decode_mask(back.boxes["mask"].iloc[r]), decode_mask(gt.boxes["mask"].iloc[src_row]))

    write_yolo(rev, tmp_path / "yolo", scores=False)
    y = read_yolo(tmp_path / "yolo", images=rev.images)
    assert np.allclose(np.sort(y.xyxy, axis=0), np.sort(rev.xyxy, axis=0), atol=1e-4)
    assert len(B.reviewed_detections(project, include_pending=True)) == n - 2


# ------------------------------------------------------------------------------------------ CLI
def test_cli_init_add_accept_export_and_bad_input(scenes, tmp_path, capsys) -> None:
    img_dir, gt = scenes
    proj = tmp_path / "p"
    assert main(["detect", "init", str(proj), str(img_dir), "--classes", ",".join(CLASSES)]) == 0
    write_coco_gt(gt, tmp_path / "gt.json")
    pred = SimulatedDetector(random_state=2, fp_per_image=1).predict(gt)
    write_coco_results(pred, tmp_path / "res.json")
    add = ["detect", "add", str(proj), str(tmp_path / "res.json"), "--images", str(tmp_path / "gt.json"),
           "--who", "yolov8"]
    assert main(add) == 0
    assert f"added {len(pred)} new boxes" in capsys.readouterr().out
    assert main(add) == 0 and "added 0 new boxes" in capsys.readouterr().out
    st = Project(proj).store
    before = _counts(st)
    (tmp_path / "thr.json").write_text(json.dumps({"square": 0.5, "cat": 0.5}))
    assert main(["detect", "accept", str(proj), "--thresholds", str(tmp_path / "thr.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'cat' is not one of the project classes" in err
    assert _counts(st) == before
    # a thresholds report as written by `detect thresholds --out`
    report = pd.DataFrame({"class": list(CLASSES), "threshold_guarantee": [0.5, 0.7, np.inf],
                           "threshold_best_f1": [0.1, 0.1, 0.1]})
    report.to_csv(tmp_path / "report.csv", index=False)
    assert main(["detect", "accept", str(proj), "--thresholds", str(tmp_path / "report.csv")]) == 0
    cat = pred.boxes["category_id"].to_numpy()
    s = pred.scores
    n_acc = int(((cat == 1) & (s >= 0.5)).sum() + ((cat == 2) & (s >= 0.7)).sum())
    assert f": {n_acc} boxes newly auto-accepted, 0 earlier" in capsys.readouterr().out
    assert main(["detect", "export-project", str(proj), "--format", "coco", "--out", str(tmp_path / "o.json")]) == 0
    assert len(read_coco_gt(tmp_path / "o.json")) == n_acc
    assert main(["detect", "export-project", str(proj), "--format", "coco", "--out", str(tmp_path / "o.json")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["detect", "export-project", str(proj), "--format", "yolo", "--out", str(tmp_path / "yo")]) == 0
    lines = [ln for f in (tmp_path / "yo").glob("scene_*.txt") for ln in f.read_text().splitlines()]
    assert len(lines) == n_acc and all(len(ln.split()) == 5 for ln in lines)  # labels: no score column
    # YOLO predictions into the project: sizes from the project's image folder, classes from the project
    write_yolo(pred, tmp_path / "ypred", scores=True)
    (tmp_path / "ypred" / "classes.txt").unlink()
    assert main(["detect", "add", str(proj), str(tmp_path / "ypred"), "--who", "yolo-run"]) == 0
    assert len(B.current_boxes(st)) == 2 * len(pred)
    # predictions on an image that is not in the project: one line, exit 2, nothing written
    other, _ = make_scenes(1, random_state=0, render=False, first_image_id=50)
    write_coco_gt(other, tmp_path / "other.json")
    before = _counts(st)
    assert main(["detect", "add", str(proj), str(tmp_path / "other.json"), "--source", "human"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'scene_000050.png' is not an item of the project" in err and err.count("\n") == 0
    assert _counts(st) == before
