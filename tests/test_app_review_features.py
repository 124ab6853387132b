"""Issue 16 ("features a team expects"): review filters, gallery, agreement metrics, live vote counts.

Every expected number is worked out by hand on one tiny text project (8 items, 3 classes):

===  =================  ==========================================  ============================
pos  text               events                                      current label after serving
===  =================  ==========================================  ============================
0    a fluffy cat       votes ann/bob/cy cat; review relabel cat    cat (review, gold)
1    big dog barks      votes ann dog, bob cat, cy eel (withdrawn);  dog (review, gold)
                        review relabel dog
2    the eel swims      votes ann eel, bob eel, cy dog              eel (aggregate: kappa 3)
3    cat naps           vote ann cat; auto cat 0.4 r1 logreg        cat (auto)
4    dog runs           auto dog 0.9 r2 logreg                      dog (auto)
5    odd item           auto eel 0.7 r1 other                       eel (auto)
6    unlabeled thing    none                                        none (unlabeled)
7    rejected one       auto cat 0.55 r1 logreg; review reject      none (rejected)
===  =================  ==========================================  ============================
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web app needs fastapi (pip install fastapi uvicorn httpx)")
pytest.importorskip("httpx", reason="the app tests need httpx")
from fastapi.testclient import TestClient

from labelsieve.app.server import create_app
from labelsieve.data import Dataset
from labelsieve.store import review_queries as RQ
from labelsieve.store.project import Project, init_project

TEXTS = ["a fluffy cat", "big dog barks", "the eel swims", "cat naps", "dog runs", "odd item", "unlabeled thing",
         "rejected one"]
Z = 1.959963984540054


def client(app) -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1")


def make_project(d: Path) -> Path:
    """The project of the module docstring (before any app adds aggregates)."""
    n = len(TEXTS)
    ds = Dataset(ids=[f"pet-{k}" for k in range(n)], X=np.eye(n), classes=("cat", "dog", "eel"), raw=TEXTS)
    p = init_project(d, ds)
    for w in ("ann", "bob", "cy", "rev"):
        p.store.add_labeler(w)
    cat, dog, eel = 0, 1, 2
    votes = [(0, "ann", cat), (0, "bob", cat), (0, "cy", cat), (1, "ann", dog), (1, "bob", cat), (1, "cy", eel),
             (2, "ann", eel), (2, "bob", eel), (2, "cy", dog), (3, "ann", cat)]
    p.store.append_events([{"item": i, "code": c, "source": "vote", "who": w, "key": f"v{i}{w}"}
                           for i, w, c in votes])
    ev = p.store.events(source="vote")
    cy1 = int(ev[(ev["item"] == 1) & (ev["who"] == "cy")]["seq"].iloc[0])
    p.store.append_events([{"item": 1, "code": None, "source": "withdraw", "action": "withdraw", "who": "cy",
                            "target": cy1, "key": "undo-cy1"}])
    p.store.append_events([
        {"item": 3, "code": cat, "source": "auto", "who": "logreg", "confidence": 0.4, "round": 1},
        {"item": 4, "code": dog, "source": "auto", "who": "logreg", "confidence": 0.9, "round": 2},
        {"item": 5, "code": eel, "source": "auto", "who": "other", "confidence": 0.7, "round": 1},
        {"item": 7, "code": cat, "source": "auto", "who": "logreg", "confidence": 0.55, "round": 1}])
    p.store.append_events([
        {"item": 0, "code": cat, "source": "review", "action": "relabel", "who": "rev"},
        {"item": 1, "code": dog, "source": "review", "action": "relabel", "who": "rev"},
        {"item": 7, "code": None, "source": "review", "action": "reject", "who": "rev"}])
    p.close()
    return d


@pytest.fixture()
def proj(tmp_path: Path) -> Path:
    return make_project(tmp_path / "pets")


@pytest.fixture()
def c(proj: Path) -> TestClient:
    return client(create_app(proj, kappa=3))


def _ids(r) -> list[str]:
    return [it["id"] for it in r.json()["items"]]


# ------------------------------------------------------------------------------------ 1. review filters
def test_review_default_queue_is_unchanged_auto_least_confident_first(c: TestClient) -> None:
    r = c.get("/api/review")
    assert r.json()["total"] == 3 and _ids(r) == ["pet-3", "pet-5", "pet-4"]  # 0.4, 0.7, 0.9; 7 is rejected
    assert [it["source"] for it in r.json()["items"]] == ["auto"] * 3
    assert [it["who"] for it in r.json()["items"]] == ["logreg", "other", "logreg"]
    old = c.get("/api/review", params={"class": "cat", "round": 1})  # the existing params still work
    assert _ids(old) == ["pet-3"]


def test_review_confidence_range_labeler_and_source_filters(c: TestClient) -> None:
    assert _ids(c.get("/api/review", params={"min_conf": 0.5, "max_conf": 0.8})) == ["pet-5"]
    assert _ids(c.get("/api/review", params={"min_conf": 0.7})) == ["pet-5", "pet-4"]  # inclusive
    assert _ids(c.get("/api/review", params={"max_conf": 0.4})) == ["pet-3"]
    assert _ids(c.get("/api/review", params={"who": "logreg"})) == ["pet-3", "pet-4"]
    assert _ids(c.get("/api/review", params={"who": "other"})) == ["pet-5"]
    # voter: items with a live vote by cy are 0 and 2 (the vote on 1 is withdrawn); by ann 0, 1, 2, 3
    cy = c.get("/api/review", params={"source": "any", "voter": "cy"}).json()
    assert sorted(i["id"] for i in cy["items"]) == ["pet-0", "pet-2"]
    assert c.get("/api/review", params={"voter": "ann"}).json()["total"] == 1  # of the auto-labels: item 3
    agg = c.get("/api/review", params={"source": "aggregate"}).json()
    assert [i["id"] for i in agg["items"]] == ["pet-2"] and agg["items"][0]["label"] == "eel"
    rev = c.get("/api/review", params={"source": "review"}).json()
    assert sorted(i["id"] for i in rev["items"]) == ["pet-0", "pet-1"]  # the rejection has no label to review
    anycat = c.get("/api/review", params={"source": "any", "class": "cat"}).json()
    assert anycat["total"] == 2 and sorted(i["id"] for i in anycat["items"]) == ["pet-0", "pet-3"]


def test_review_disagreement_filter_counts_live_votes_only(c: TestClient, proj: Path) -> None:
    # item 1: ann dog vs bob cat (cy's eel withdrawn); item 2: eel, eel, dog; item 0 unanimous
    r = c.get("/api/review", params={"source": "any", "disagreement": "true"}).json()
    assert r["total"] == 2 and sorted(i["id"] for i in r["items"]) == ["pet-1", "pet-2"]
    # withdraw bob's vote on item 1: only ann's dog is left, so item 1 no longer disagrees
    p = Project(proj)
    ev = p.store.events(source="vote")
    seq = int(ev[(ev["item"] == 1) & (ev["who"] == "bob")]["seq"].iloc[0])
    p.store.append_events([{"item": 1, "code": None, "source": "withdraw", "action": "withdraw", "who": "bob",
                            "target": seq, "key": "undo-bob1"}])
    assert _ids(c.get("/api/review", params={"source": "any", "disagreement": "true"})) == ["pet-2"]


def test_review_bad_filters_are_400(c: TestClient) -> None:
    assert c.get("/api/review", params={"source": "nope"}).status_code == 400
    bad = c.get("/api/review", params={"min_conf": 0.9, "max_conf": 0.1})
    assert bad.status_code == 400 and "must not exceed" in bad.json()["detail"]
    assert c.get("/api/review", params={"min_conf": 2}).status_code == 422


# ------------------------------------------------------------------------------------ 2. gallery
def test_gallery_search_filters_paging_and_provenance(c: TestClient) -> None:
    g = c.get("/api/gallery").json()
    assert g["total"] == 8 and [i["id"] for i in g["items"]] == [f"pet-{k}" for k in range(8)]
    by = {i["id"]: i for i in g["items"]}
    assert {k: by["pet-4"][k] for k in ("label", "source", "confidence", "who", "round", "n_votes", "text")} == \
        {"label": "dog", "source": "auto", "confidence": 0.9, "who": "logreg", "round": 2, "n_votes": 0,
         "text": "dog runs"}
    assert (by["pet-1"]["label"], by["pet-1"]["source"], by["pet-1"]["who"], by["pet-1"]["n_votes"]) == \
        ("dog", "review", "rev", 2)  # cy's withdrawn vote does not count
    assert (by["pet-6"]["label"], by["pet-6"]["source"]) == (None, "unlabeled")
    assert (by["pet-7"]["label"], by["pet-7"]["source"]) == (None, "rejected")
    assert _ids(c.get("/api/gallery", params={"q": "CAT"})) == ["pet-0", "pet-3"]  # text, case-insensitive
    assert _ids(c.get("/api/gallery", params={"q": "pet-4"})) == ["pet-4"]  # id
    assert _ids(c.get("/api/gallery", params={"q": "%"})) == []  # a literal, not a LIKE wildcard
    assert _ids(c.get("/api/gallery", params={"class": "dog"})) == ["pet-1", "pet-4"]
    assert _ids(c.get("/api/gallery", params={"source": "auto"})) == ["pet-3", "pet-4", "pet-5"]
    assert _ids(c.get("/api/gallery", params={"source": "unlabeled"})) == ["pet-6"]
    assert _ids(c.get("/api/gallery", params={"source": "rejected"})) == ["pet-7"]
    assert _ids(c.get("/api/gallery", params={"q": "dog", "source": "auto"})) == ["pet-4"]
    p1 = c.get("/api/gallery", params={"page": 1, "page_size": 3}).json()
    assert p1["total"] == 8 and [i["id"] for i in p1["items"]] == ["pet-3", "pet-4", "pet-5"]
    assert c.get("/api/gallery", params={"source": "nope"}).status_code == 400
    assert c.get("/gallery").status_code == 200 and "gallery.js" in c.get("/gallery").text


# ------------------------------------------------------------------------------------ 3. agreement
def _wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    den = 1 + Z * Z / n
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / den
    return (p + Z * Z / (2 * n)) / den - half, (p + Z * Z / (2 * n)) / den + half


def test_wilson_interval_by_hand() -> None:
    lo, hi = RQ.wilson_interval(2, 2)
    assert lo == pytest.approx(1 / (1 + Z * Z / 2)) and hi == pytest.approx(1.0)  # k = n: (1/(1+z^2/n), 1)
    lo, hi = RQ.wilson_interval(1, 2)
    half = Z * math.sqrt(1 / 8 + Z * Z / 16) / (1 + Z * Z / 2)
    assert (lo, hi) == (pytest.approx(0.5 - half), pytest.approx(0.5 + half))
    assert (round(lo, 4), round(hi, 4)) == (0.0945, 0.9055)
    assert RQ.wilson_interval(0, 0) == (None, None)


def test_krippendorff_alpha_by_hand() -> None:
    import pandas as pd

    # two coders, four items: A = 0 0 1 1, B = 0 1 1 1. Coincidences o00 = 2, o01 = o10 = 1, o11 = 4;
    # n0 = 3, n1 = 5, n = 8: alpha = 1 - (n - 1) * 2 / (2 * n0 * n1) = 1 - 14/30 = 8/15
    v = pd.DataFrame({"item": [0, 1, 2, 3] * 2, "who": ["A"] * 4 + ["B"] * 4, "code": [0, 0, 1, 1, 0, 1, 1, 1]})
    assert RQ.krippendorff_alpha(v) == pytest.approx(8 / 15)
    same = pd.DataFrame({"item": [0, 0], "who": ["A", "B"], "code": [1, 1]})
    assert RQ.krippendorff_alpha(same) is None  # one value in use: expected disagreement 0, alpha undefined


def test_agreement_metrics_on_the_tiny_project(c: TestClient, proj: Path) -> None:
    a = c.get("/api/agreement").json()
    assert a == RQ.agreement(Project(proj))
    assert a["interval"] == "Wilson score, 95%" and a["n_votes"] == 9 and a["n_gold"] == 2  # 10 votes, 1 withdrawn
    lab = {r["labeler"]: r for r in a["labelers"]}
    # gold: item 0 = cat, item 1 = dog. ann: cat, dog (2/2); bob: cat, cat (1/2); cy: cat (1/1, eel withdrawn)
    assert [(r["n_votes"], r["n_gold"], r["n_correct"]) for r in (lab["ann"], lab["bob"], lab["cy"])] == \
        [(4, 2, 2), (3, 2, 1), (2, 1, 1)]
    assert lab["ann"]["accuracy"] == 1.0 and lab["bob"]["accuracy"] == 0.5
    assert (lab["bob"]["lower"], lab["bob"]["upper"]) == (pytest.approx(_wilson(1, 2)[0]), pytest.approx(_wilson(1, 2)[1]))
    assert lab["ann"]["lower"] == pytest.approx(1 / (1 + Z * Z / 2)) and lab["ann"]["upper"] == pytest.approx(1.0)
    pairs = {(p["a"], p["b"]): (p["n"], p["agree"], p["agreement"]) for p in a["pairs"]}
    # ann-bob share items 0, 1, 2 and agree on 0 and 2; ann-cy and bob-cy share 0 and 2 and agree on 0
    assert pairs == {("ann", "bob"): (3, 2, pytest.approx(2 / 3)), ("ann", "cy"): (2, 1, 0.5),
                     ("bob", "cy"): (2, 1, 0.5)}
    # alpha over items 0 (cat cat cat), 1 (dog cat), 2 (eel eel dog): o_cc = 3, o_cd = o_dc = 1, o_de = o_ed = 1,
    # o_ee = 1; n_c = 4, n_d = 2, n_e = 2, n = 8; alpha = 1 - 7 * 4 / (64 - 16 - 4 - 4) = 1 - 28/40 = 0.3
    assert a["alpha"] == pytest.approx(0.3) and a["alpha_items"] == 3 and a["alpha_level"] == "nominal"


def test_agreement_of_an_empty_project(tmp_path: Path) -> None:
    init_project(tmp_path / "e", Dataset(ids=["a", "b"], X=np.eye(2), classes=("x", "y"), raw=["u", "v"])).close()
    a = client(create_app(tmp_path / "e")).get("/api/agreement").json()
    assert (a["n_votes"], a["labelers"], a["pairs"], a["alpha"]) == (0, [], [], None)


# ------------------------------------------------------------------------------------ 4. dashboard counts
def test_dashboard_vote_counts_exclude_withdrawn_votes(c: TestClient) -> None:
    d = c.get("/api/dashboard").json()
    assert d["votes"] == 9 and d["labels_spent"] == 9  # 10 vote events, cy's on item 1 withdrawn
    assert d["reviews"] == 3


def test_dashboard_after_an_undo_in_the_app(tmp_path: Path) -> None:
    n = 4
    init_project(tmp_path / "u", Dataset(ids=[f"i{k}" for k in range(n)], X=np.eye(n), classes=("x", "y"),
                                         raw=[f"t{k}" for k in range(n)])).close()
    p = Project(tmp_path / "u")
    p.store.add_labeler("ann")
    p.close()
    c = client(create_app(tmp_path / "u"))
    nxt = c.post("/api/next", json={"labeler": "ann"}).json()
    c.post("/api/label", json={"labeler": "ann", "id": nxt["item"]["id"], "label": "x",
                               "request_id": nxt["request_id"]})
    assert c.get("/api/dashboard").json()["votes"] == 1
    assert c.post("/api/undo", json={"labeler": "ann"}).json()["undone"] == "vote"
    d = c.get("/api/dashboard").json()
    assert d["votes"] == 0 and d["labels_spent"] == 0
    assert c.get("/api/agreement").json()["n_votes"] == 0
