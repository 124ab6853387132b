"""The threshold page's API (issue 16): the curve's bound is the certificate's, the slider's pool
count is a hand count, applying the certified threshold writes the expected events as a new run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web app needs fastapi (pip install fastapi uvicorn httpx)")
pytest.importorskip("httpx", reason="the app tests need httpx")
from fastapi.testclient import TestClient

from labelsieve.app.server import create_app
from labelsieve.data import load_dataset
from labelsieve.guarantees.curve import bound_curve
from labelsieve.runs.directory import RunConfig
from labelsieve.runs.project import load_evidence, run_project
from labelsieve.store.project import Project, init_project

ORIGIN = {"Origin": "http://127.0.0.1"}


def _client(app) -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1")


@pytest.fixture(scope="module", params=["global", "per-class"])
def ran(request, tmp_path_factory) -> tuple[Path, int, object]:
    d = tmp_path_factory.mktemp("thr") / "digits"
    p = init_project(d, load_dataset("digits"))
    budget, eps = (500, 0.1) if request.param == "global" else (900, 0.25)
    cfg = RunConfig(dataset="project", epsilon=eps, delta=0.1, budget=budget, seed=0, scope=request.param)
    rid, res = run_project(p, cfg)
    p.store.add_labeler("rev", role="reviewer")
    p.store.add_labeler("ann")
    p.close()
    return d, rid, res


def test_curve_bound_at_the_certified_position_is_the_certificates(ran) -> None:
    d, rid, res = ran
    p = Project(d)
    _, meta, a = load_evidence(p)
    cert = res.certificates[meta["round"] - 1]
    c = _client(create_app(d))
    groups = ["all"] if cert.scope == "global" else list(p.classes)
    n_cert = 0
    for k, g in enumerate(groups):
        r = c.get("/api/thresholds", params={"class": g}).json()
        assert r["run_id"] == rid and r["scope_of_run"] and r["delta"] == cert.delta
        sr = cert.scans[k]
        if not np.isfinite(sr.threshold):
            assert r["certified"] is None
            continue
        n_cert += 1
        i = r["certified"]["index"]
        assert r["curve"]["threshold"][i] == sr.threshold == cert.thresholds[k]
        assert r["curve"]["upper"][i] == sr.upper == r["certified"]["upper"]
        assert r["curve"]["n"][i] == sr.n and r["curve"]["in_sequence"][i]
        assert sr.upper <= cert.epsilon
    assert n_cert >= 1
    # the curve reproduces the run's certificate from the stored validation data
    cert2, _ = bound_curve(a["val_pred"], a["val_conf"], a["val_label"], n_classes=10, epsilon=meta["epsilon"],
                           delta=meta["delta"], bound=meta["bound"], scope=meta["scope"], min_n=meta["min_n"],
                           noise_aware=meta["noise_aware"], label_share=meta["label_share"],
                           min_errors=meta["min_errors"])
    assert np.array_equal(cert2.thresholds, cert.thresholds)


def test_slider_pool_count_is_a_hand_count(ran) -> None:
    d, _, res = ran
    p = Project(d)
    _, _, a = load_evidence(p)
    c = _client(create_app(d))
    for g in ("all", p.classes[3]):
        r = c.get("/api/thresholds", params={"class": g}).json()
        cur = r["curve"]
        sel = np.ones(len(a["pool_pred"]), bool) if g == "all" else a["pool_pred"] == 3
        for i in np.linspace(0, len(cur["threshold"]) - 1, 7).astype(int):
            t = cur["threshold"][i]
            assert cur["pool_count"][i] == int(np.sum(a["pool_conf"][sel] >= t))
    # the run's pool is everything humans had not labeled before the certifying round
    human = (res.labels["source"] == "human").sum()
    assert len(a["pool_pos"]) + human == p.store.n_items()


def test_apply_writes_the_certified_auto_labels_as_a_new_run(ran) -> None:
    d, rid, res = ran
    p = Project(d)
    _, meta, a = load_evidence(p)
    cert = res.certificates[meta["round"] - 1]
    expected = int((a["pool_conf"] >= cert.thresholds[a["pool_pred"]]).sum())
    assert expected == int((res.labels["round"][res.labels["source"] == "auto"] == meta["round"]).sum())
    tok = {who: p.store.issue_token(who)[0] for who in ("ann", "rev")}
    c = _client(create_app(d))
    bearer = {who: {**ORIGIN, "Authorization": f"Bearer {t}"} for who, t in tok.items()}
    assert c.post("/api/thresholds/apply", json={}, headers=ORIGIN).status_code == 401  # signed in
    assert c.post("/api/thresholds/apply", json={}, headers=bearer["ann"]).status_code == 403  # role
    assert c.post("/api/thresholds/apply", json={}, headers={**bearer["rev"], "Origin": "http://evil.example"}
                  ).status_code == 403  # cross-site
    r = c.post("/api/thresholds/apply", json={}, headers=bearer["rev"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["from_run"] == rid and out["run_id"] > rid and out["events"] == expected
    ev = Project(d).store.events(source="auto")
    mine = ev[ev["run_id"] == out["run_id"]]
    assert len(mine) == expected
    assert (mine["confidence"] >= mine["threshold"]).all()
    codes = mine["code"].to_numpy().astype(int)
    np.testing.assert_array_equal(mine["threshold"].to_numpy(), cert.thresholds[codes])
    assert set(mine["who"]) == {"logreg"} and set(mine["source"]) == {"auto"}
    # the latest run with evidence is still the TBAL run: the page does not change
    assert c.get("/api/thresholds").json()["run_id"] == rid


def test_unknown_class_and_no_run_are_clear_errors(ran, tmp_path) -> None:
    d, _, _ = ran
    c = _client(create_app(d))
    r = c.get("/api/thresholds", params={"class": "nope"})
    assert r.status_code == 400 and "class must be" in r.json()["detail"]
    e = tmp_path / "empty"
    init_project(e, load_dataset("digits").subset(np.arange(40))).close()
    r = _client(create_app(e)).get("/api/thresholds")
    assert r.status_code == 400 and "no project run" in r.json()["detail"]
