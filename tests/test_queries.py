"""The app's query layer (labelsieve.store.queries), called directly on small hand-built projects."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from labelsieve.data import Dataset
from labelsieve.errors import InputError
from labelsieve.store import queries as Q
from labelsieve.store import schema as S
from labelsieve.store.project import Project, init_project


@pytest.fixture()
def proj(tmp_path: Path) -> Project:
    """10 items a0..a9 of classes x/y/z; truth k % 3; auto-labels on items 4..9 with confidence 0.5 + k/20."""
    ds = Dataset(ids=[f"a{k}" for k in range(10)], X=np.arange(20, dtype=float).reshape(10, 2),
                 classes=("x", "y", "z"), y=np.arange(10) % 3)
    p = init_project(tmp_path / "p", ds)
    p.store.add_labeler("ann")
    # auto-label = truth for even k, wrong (truth + 1) for odd k
    p.store.append_events([{"item": k, "code": (k % 3 + k % 2) % 3, "source": "auto", "who": "m",
                            "confidence": 0.5 + k / 20, "round": k % 2} for k in range(4, 10)])
    return p


def _add_round(p: Project, run_id: int, rnd: int, stats: dict) -> None:
    with p.store.transaction() as c:
        if not c.execute(sa.select(S.runs.c.id).where(S.runs.c.id == run_id)).first():
            c.execute(sa.insert(S.runs).values(id=run_id, kind="tbal", config="{}", status="complete",
                                               started=time.time()))
        c.execute(sa.insert(S.run_rounds).values(run_id=run_id, round=rnd, stats=json.dumps(stats),
                                                 committed=time.time()))


def test_review_queue_orders_by_confidence_filters_and_pages(proj: Project) -> None:
    total, page = Q.review_queue(proj, page_size=4)
    assert total == 6 and page["pos"].tolist() == [4, 5, 6, 7]
    assert page["confidence"].tolist() == pytest.approx([0.7, 0.75, 0.8, 0.85])
    _, page2 = Q.review_queue(proj, page=1, page_size=4)
    assert page2["pos"].tolist() == [8, 9]
    # class y = code 1: items whose auto-code is 1 -> k=4 (1+0), k=9 (0+1)
    total, rows = Q.review_queue(proj, cls="y")
    assert total == 2 and rows["pos"].tolist() == [4, 9] and set(rows["label"]) == {"y"}
    total, rows = Q.review_queue(proj, round=1)
    assert total == 3 and rows["pos"].tolist() == [5, 7, 9]
    with pytest.raises(InputError, match="class 'w' is not one of"):
        Q.review_queue(proj, cls="w")


def test_review_items_are_events_idempotent_and_leave_the_queue(proj: Project) -> None:
    assert Q.review_items(proj, [4, 5], "accept", who="ann", key="r1") == 2
    assert Q.review_items(proj, [4, 5], "accept", who="ann", key="r1") == 0  # retried request
    assert Q.review_items(proj, [6], "relabel", who="ann", label="z", key="r2") == 1
    assert Q.review_items(proj, [7], "reject", who="ann", key="r3") == 1
    ev = proj.store.events(source="review")
    assert ev["item"].tolist() == [4, 5, 6, 7] and ev["action"].tolist() == ["accept", "accept", "relabel", "reject"]
    assert ev["code"].tolist()[:3] == [1, 0, 2] and ev["code"].isna().tolist() == [False, False, False, True]
    assert Q.review_queue(proj)[0] == 2
    with pytest.raises(InputError, match="item 'a0' has no label to accept"):
        Q.review_items(proj, [0], "accept", who="ann", key="r4")
    with pytest.raises(InputError, match="label 'w' is not one of the classes"):
        Q.review_items(proj, [8], "relabel", who="ann", label="w", key="r5")
    with pytest.raises(InputError, match="action must be"):
        Q.review_items(proj, [8], "delete", who="ann", key="r6")
    with pytest.raises(InputError, match="ids must be a list of 1-500"):
        Q.review_items(proj, [], "accept", who="ann", key="r7")
    assert proj.store.n_events() == 6 + 4  # the refused requests wrote nothing


def test_label_counts_and_item_detail(proj: Project) -> None:
    Q.review_items(proj, [4], "accept", who="ann", key="a")
    Q.review_items(proj, [5], "reject", who="ann", key="b")
    c = Q.label_counts(proj)
    assert c == {"by_source": {"auto": 4, "review": 1}, "by_event": {"auto": 6, "review": 2}, "rejected": 1}
    d = Q.item_detail(proj, 4)
    assert d["label"] == "y" and d["source"] == "review"
    assert [(e["source"], e["action"], e["label"]) for e in d["events"]] == [("auto", "label", "y"),
                                                                             ("review", "accept", "y")]
    assert d["events"][0]["confidence"] == pytest.approx(0.7) and d["events"][1]["confidence"] is None
    assert Q.item_detail(proj, 5)["label"] is None  # rejected
    assert Q.item_detail(proj, 0) == {"label": None, "source": None, "events": []}


def test_reliability_against_reviews_then_truth(proj: Project) -> None:
    # against ground truth (no reviews): correct = even k among 4..9 -> confidences .7 .8 .9 correct
    r = Q.reliability(proj, n_bins=2)
    assert r["basis"] == "ground truth" and r["n"] == 6 and r["count"] == [0, 6]
    assert r["accuracy"][1] == pytest.approx(0.5) and r["accuracy"][0] is None
    # reviews take over: accept 4 (correct), reject 5 (wrong), relabel 6 to its auto class (correct),
    # relabel 7 to another class (wrong) -> 2 of 4
    Q.review_items(proj, [4], "accept", who="ann", key="a")
    Q.review_items(proj, [5], "reject", who="ann", key="b")
    Q.review_items(proj, [6], "relabel", who="ann", label="x", key="c")  # auto code of 6 is 0 = x
    Q.review_items(proj, [7], "relabel", who="ann", label="x", key="d")  # auto code of 7 is 2 = z
    r = Q.reliability(proj, n_bins=2)
    assert r["basis"] == "reviews" and r["n"] == 4 and r["accuracy"][1] == pytest.approx(0.5)
    assert r["confidence"][1] == pytest.approx(np.mean([0.7, 0.75, 0.8, 0.85]))


def test_reliability_without_auto_labels_or_truth(tmp_path: Path) -> None:
    ds = Dataset(ids=["a", "b"], X=np.zeros((2, 1)), classes=("x", "y"))
    p = init_project(tmp_path / "q", ds)
    assert Q.reliability(p)["basis"] is None
    p.store.append_events([{"item": 0, "code": 1, "source": "auto", "who": "m", "confidence": 0.9}])
    assert Q.reliability(p) == {"basis": None, "confidence": [], "accuracy": [], "count": []}


def test_last_run_rounds_latest_run_and_missing_values(proj: Project) -> None:
    assert Q.last_run_rounds(proj) == ([], {})
    _add_round(proj, 1, 0, {"coverage": 0.9, "error_bound": 0.1, "thresholds": [0.5, 0.5, 0.5]})
    _add_round(proj, 2, 0, {"coverage": 0.0, "error_bound": float("nan"), "thresholds": [0.7, 0.8, 0.9]})
    _add_round(proj, 2, 1, {"coverage": 0.2, "error_bound": 0.04, "human_labels": 30, "thresholds": [0.6]})
    rounds, thr = Q.last_run_rounds(proj)
    assert [(r["run_id"], r["round"]) for r in rounds] == [(2, 0), (2, 1)]
    assert rounds[0]["error_bound"] is None and rounds[0]["human_labels"] is None
    assert rounds[1]["coverage"] == 0.2 and rounds[1]["human_labels"] == 30
    assert thr == {"all": 0.6}
    _add_round(proj, 2, 2, {"coverage": 0.3, "thresholds": [0.1, 0.2, 0.3]})
    assert Q.last_run_rounds(proj)[1] == {"x": 0.1, "y": 0.2, "z": 0.3}


def test_map_points_step_offset_and_labels(proj: Project) -> None:
    Q.review_items(proj, [5], "reject", who="ann", key="b")
    xy = np.column_stack([np.arange(10.0), -np.arange(10.0)])
    ids = [f"a{k}" for k in range(10)]
    pts = Q.map_points(proj, xy, ids, limit=4, offset=1)  # step 10 // 4 = 2, from 1: 1 3 5 7
    assert [p[0] for p in pts] == ["a1", "a3", "a5", "a7"]
    assert pts[0] == ["a1", 1.0, -1.0, None, "unlabeled"]
    assert pts[2][3:] == [None, "review"] and pts[3][3:] == ["z", "auto"]  # rejected; auto code (1+1)%3
    assert len(Q.map_points(proj, xy, ids, limit=20)) == 10
    code, src = Q.current_codes(proj)
    assert code.tolist() == [-1] * 4 + [1, -1, 0, 2, 2, 1] and src[5] == "review" and src[0] == "unlabeled"


def test_clean_makes_values_json_ready() -> None:
    assert Q.clean(np.float64("nan")) is None and Q.clean(np.int32(4)) == 4 and type(Q.clean(np.int32(4))) is int
    assert Q.clean(None) is None and Q.clean("s") == "s"
