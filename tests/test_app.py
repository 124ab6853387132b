"""Web app API: labeling with leases, review actions as events, dashboard, map, bad input, concurrency."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web app needs fastapi (pip install fastapi uvicorn httpx)")
httpx = pytest.importorskip("httpx", reason="the app tests need httpx")
from fastapi.testclient import TestClient

from labelsieve.app.server import STATIC, bind_socket, create_app
from labelsieve.data import Dataset, load_dataset
from labelsieve.errors import InputError
from labelsieve.store.project import Project, init_project


def client(app, **kw) -> TestClient:
    """A test client that, like a browser on loopback, names 127.0.0.1 as its host (the app's host check)."""
    return TestClient(app, base_url="http://127.0.0.1", **kw)


@pytest.fixture()
def digits_dir(tmp_path: Path) -> Path:
    p = init_project(tmp_path / "digits", load_dataset("digits").subset(np.arange(120)))
    for w in ("ann", "bob", "cy"):
        p.store.add_labeler(w, gold_accuracy=0.9)
    p.store.append_events([{"item": k, "code": k % 10, "source": "auto", "who": "logreg", "confidence": 0.5 + k / 400,
                            "round": 1 + k % 2} for k in range(60, 120)])
    p.close()
    return tmp_path / "digits"


def test_labeling_until_confident_then_item_is_no_longer_served(digits_dir: Path) -> None:
    c = client(create_app(digits_dir, tau=0.95, kappa=3))
    first = c.post("/api/next", json={"labeler": "ann"}).json()
    item = first["item"]["id"]
    assert c.post("/api/next", json={"labeler": "ann"}).json()["item"]["id"] == item  # same lease on reload
    r = c.post("/api/label", json={"labeler": "ann", "id": item, "label": "0", "request_id": first["request_id"]}).json()
    # GTX with accuracy 0.9 over 10 classes: 0.9 vs 0.1/9 for each other class (eq. 1-2)
    assert r["posterior"][0] == pytest.approx(0.9 / (0.9 + 9 * 0.1 / 9)) and not r["done"]
    dup = c.post("/api/label", json={"labeler": "ann", "id": item, "label": "0", "request_id": first["request_id"]})
    assert dup.json()["duplicate"] is True
    nb = c.post("/api/next", json={"labeler": "bob"}).json()
    assert nb["item"]["id"] == item  # threshold strategy: keep asking about the first item
    r = c.post("/api/label", json={"labeler": "bob", "id": item, "label": "0", "request_id": nb["request_id"]}).json()
    assert r["done"] and r["posterior"][0] > 0.95
    assert c.post("/api/next", json={"labeler": "cy"}).json()["item"]["id"] != item
    detail = c.get("/api/item", params={"id": item}).json()
    assert detail["label"] == "0" and detail["source"] == "aggregate"
    assert [e["source"] for e in detail["events"]] == ["vote", "vote", "aggregate"]


def test_unknown_labeler_wrong_label_and_no_lease_are_refused(digits_dir: Path) -> None:
    c = client(create_app(digits_dir))
    r = c.post("/api/next", json={"labeler": "<script>alert(1)</script>"})
    assert r.status_code == 403 and "unknown labeler id" in r.json()["detail"]
    nxt = c.post("/api/next", json={"labeler": "ann"}).json()
    bad = c.post("/api/label", json={"labeler": "ann", "id": nxt["item"]["id"], "label": "ten", "request_id": "x"})
    assert bad.status_code == 400 and "not one of the classes" in bad.json()["detail"]
    no_lease = c.post("/api/label", json={"labeler": "bob", "id": nxt["item"]["id"], "label": "1", "request_id": "y"})
    assert no_lease.status_code == 409
    assert Project(digits_dir).store.n_events() == 60  # only the fixture's auto events


def test_review_queue_sorted_filtered_paginated_and_actions_are_events(digits_dir: Path) -> None:
    c = client(create_app(digits_dir))
    q = c.get("/api/review", params={"page_size": 7}).json()
    assert q["total"] == 60 and len(q["items"]) == 7
    conf = [it["confidence"] for it in q["items"]]
    assert conf == sorted(conf) and conf[0] == pytest.approx(0.5 + 60 / 400)
    page2 = c.get("/api/review", params={"page_size": 7, "page": 1}).json()["items"]
    assert page2[0]["confidence"] >= conf[-1] and not {i["id"] for i in page2} & {i["id"] for i in q["items"]}
    f = c.get("/api/review", params={"class": "3", "round": 2}).json()
    assert f["total"] == 6 and all(i["label"] == "3" and i["round"] == 2 for i in f["items"])
    ids = [i["id"] for i in q["items"][:3]]
    assert c.post("/api/review", json={"reviewer": "ann", "ids": ids, "action": "accept"}).json()["events"] == 3
    c.post("/api/review", json={"reviewer": "ann", "ids": [q["items"][3]["id"]], "action": "relabel", "label": "9"})
    c.post("/api/review", json={"reviewer": "ann", "ids": [q["items"][4]["id"]], "action": "reject"})
    assert c.get("/api/review").json()["total"] == 55  # reviewed items leave the queue
    assert c.post("/api/review", json={"reviewer": "zed", "ids": ids, "action": "accept"}).status_code == 403
    d = c.get("/api/dashboard").json()
    assert d["reviews"] == 5 and d["by_source"]["review"] == 4 and d["rejected"] == 1
    # reliability against reviews: 3 accepted (correct), 1 relabelled, 1 rejected (wrong)
    assert d["reliability"]["basis"] == "reviews" and d["reliability"]["n"] == 5
    acc = [a for a in d["reliability"]["accuracy"] if a is not None]
    assert sum(n * a for n, a in zip([x for x in d["reliability"]["count"] if x], acc, strict=True)) == pytest.approx(3)


def test_map_similarity_and_thumbnails(digits_dir: Path) -> None:
    c = client(create_app(digits_dir))
    m = c.get("/api/map", params={"limit": 50}).json()
    assert m["shown"] == 50 and m["n_items"] == 120
    X = Project(digits_dir).features()
    sim = c.get("/api/similar", params={"id": "digits-0007", "k": 3}).json()["items"]
    Z = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1)
    d = ((Z - Z[7]) ** 2).sum(1)
    d[7] = np.inf
    assert [s["pos"] for s in sim] == np.argsort(d)[:3].tolist()
    png = c.get("/api/thumb", params={"id": "digits-0007"})
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_undecodable_image_gives_a_clear_error(tmp_path: Path) -> None:
    from PIL import Image

    good = tmp_path / "a.png"
    Image.new("L", (4, 4), 9).save(good)
    ds = Dataset(ids=["a", "b"], X=np.zeros((2, 2)), classes=("x", "y"), raw=[str(good), str(good)])
    init_project(tmp_path / "p", ds).close()
    good.write_bytes(b"garbage")  # the file went bad after init
    r = client(create_app(tmp_path / "p")).get("/api/thumb", params={"id": "a"})
    assert r.status_code == 422 and "cannot be decoded" in r.json()["detail"]


def test_pages_never_inject_html() -> None:
    js = " ".join(p.read_text() for p in STATIC.glob("*.js"))
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "document.write" not in js
    assert re.search(r"textContent", js)


def test_second_server_on_the_same_port_is_a_clear_error() -> None:
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    try:
        with pytest.raises(InputError, match=f"port {port} on 127.0.0.1 is already in use"):
            bind_socket("127.0.0.1", port)
    finally:
        sock.close()


def test_concurrent_labelers_lose_nothing_and_never_exceed_kappa(digits_dir: Path) -> None:
    import uvicorn

    kappa = 2
    app = create_app(digits_dir, tau=0.999, kappa=kappa)
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error"))
    th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.01)
    accepted: list[tuple[str, str]] = []
    lock = threading.Lock()
    workers = ["ann", "bob", "cy", "dee", "eve"]  # five labelers at once
    for w in workers[3:]:
        Project(digits_dir).store.add_labeler(w, gold_accuracy=0.9)
    rng = np.random.default_rng(0)
    labels = {w: [str(v) for v in rng.integers(0, 10, 40)] for w in workers}

    def labeler(w: str) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as cl:
            for k in range(12):
                nxt = cl.post("/api/next", json={"labeler": w}).json()
                if nxt["done"]:
                    return
                r = cl.post("/api/label", json={"labeler": w, "id": nxt["item"]["id"], "label": labels[w][k],
                                                "request_id": nxt["request_id"]})
                if r.status_code == 200:
                    with lock:
                        accepted.append((w, nxt["item"]["id"]))
                    # a retry of the same request must not add an event
                    cl.post("/api/label", json={"labeler": w, "id": nxt["item"]["id"], "label": labels[w][k],
                                                "request_id": nxt["request_id"]})

    try:
        ts = [threading.Thread(target=labeler, args=(w,)) for w in workers]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
    finally:
        server.should_exit = True
        th.join(10)
    votes = Project(digits_dir).store.events(source="vote")
    assert len(accepted) == 60 and len(votes) == 60
    assert sorted(zip(votes["who"], votes["id"], strict=True)) == sorted(accepted)
    per_item = votes.groupby("id").size()
    assert per_item.max() <= kappa
    assert not votes.duplicated(["who", "id"]).any()
    aggs = Project(digits_dir).store.events(source="aggregate")
    assert set(aggs["id"]) == set(per_item[per_item == kappa].index)  # tau unreachable: done at kappa


def test_socket_helper_is_loopback_only_by_default() -> None:
    import inspect

    from labelsieve.app.server import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"


# ---------------------------------------------------------------------------------- no URL answers 500
#: Values tried for every query parameter, path parameter and body field (numbers past every column
#: type, NUL bytes, traversal, markup, too long, non-finite).
GARBAGE = ["", "x", "-1", "0", "1.5", "1e400", "nan", "inf", "-inf", "9" * 30, "-" + "9" * 30, "\x00", "%00",
           "../../etc/passwd", "<script>alert(1)</script>", "é", "a" * 600, "true", "digits-0001", "ann"]
#: Body fields of every POST route (a route ignores the ones it does not take).
BODY_KEYS = ("labeler", "reviewer", "id", "ids", "action", "label", "class", "request_id", "key", "token")
BODY_VALUES = [None, True, -1, 1.5, 10**30, "", "x", "\x00", "a" * 600, [], ["x"], [10**30], [None], [{"a": 1}],
               {"a": 1}, "accept", "reject", "relabel", "digits-0001", "ann", "1"]


def _crawl(client: TestClient, schema: dict | None = None) -> list[tuple[str, str, object, int]]:
    """Every route of the app's OpenAPI schema (``schema``, else the app's own) and every page,
    with missing and garbage input."""
    from urllib.parse import quote

    from labelsieve.app.routers.pages import PAGES

    if schema is None:
        got = client.get("/openapi.json")
        assert got.status_code == 200
        schema = got.json()
    failures: list[tuple[str, str, object, int]] = []

    def check(method: str, url: str, what: object, **kw: object) -> None:
        r = client.request(method, url, **kw)
        if r.status_code >= 500:
            failures.append((method, url, what, r.status_code))

    ops = [(path, m.upper(), [p["name"] for p in op.get("parameters", []) if p["in"] == "query"])
           for path, item in schema["paths"].items() for m, op in item.items()]
    ops += [(page, "GET", ["labeler", "reviewer", "page"]) for page in PAGES]
    ops += [("/login", "GET", ["token"]), ("/api/whoami", "GET", [])]
    ops += [("/static/{name}", "GET", [])]
    for path, method, params in ops:
        urls = [path.replace("{name}", quote(g, safe="") or "x") for g in GARBAGE] if "{" in path else [path]
        for url in urls:
            check(method, url, {})
            for g in GARBAGE:
                for ps in [dict.fromkeys(params, g)] + [{p: g} for p in params] if len(params) > 1 else \
                        [dict.fromkeys(params, g)] if params else []:
                    check(method, url, ps, params=ps)
            if method == "POST":
                for body in ("", "not json", "[]", '"x"', "{"):
                    check(method, url, body, content=body, headers={"Content-Type": "application/json"})
                for v in BODY_VALUES:
                    check(method, url, v, json=dict.fromkeys(BODY_KEYS, v))
                    for k in BODY_KEYS:  # one bad field among plausible ones
                        good = {"labeler": "ann", "reviewer": "ann", "id": "digits-0001", "ids": ["digits-0001"],
                                "action": "accept", "label": "1", "request_id": "r1", "key": "k1"}
                        check(method, url, (k, v), json={**good, k: v})
    return failures


def test_no_url_answers_500_to_missing_or_garbage_input(digits_dir: Path) -> None:
    c = client(create_app(digits_dir), raise_server_exceptions=False)
    failures = _crawl(c)
    assert not failures, failures[:20]


def test_text_pool_is_embedded_at_init_and_its_map_works(tmp_path: Path) -> None:
    from labelsieve.cli import main

    csv = tmp_path / "pool.csv"
    csv.write_text("id,text,label\na,the rocket reached orbit,space\nb,the doctor saw a patient,med\n"
                   "c,nasa launched a probe,space\nd,a new vaccine trial,med\n")
    assert main(["init", str(tmp_path / "p"), "--dataset", str(csv), "--text-column", "text",
                 "--embedder", "hashing"]) == 0
    p = Project(tmp_path / "p")
    X = p.features()
    assert X.shape == (4, 2**12) and np.allclose((X.astype(float) ** 2).sum(1), 1)  # L2-normalised embeddings
    assert p.store.meta()["embedding_model"] == "hashing-bow-bigram:4096"
    c = client(create_app(tmp_path / "p"), raise_server_exceptions=False)
    m = c.get("/api/map")
    assert m.status_code == 200 and m.json()["shown"] == 4
    sim = c.get("/api/similar", params={"id": "a", "k": 10}).json()["items"]
    assert len(sim) == 3 and "a" not in {s["id"] for s in sim}  # k capped at the other items


def test_pool_without_features_or_texts_is_refused_at_init_and_an_old_one_gets_4xx(tmp_path: Path, capsys) -> None:
    from labelsieve.cli import main

    ds = Dataset(ids=["a", "b", "c"], X=np.zeros((3, 0)), classes=("x", "y"))
    with pytest.raises(InputError, match="no feature columns and no texts to embed"):
        init_project(tmp_path / "none", ds)
    assert not (tmp_path / "none" / "project.json").exists()
    csv = tmp_path / "ids.csv"
    csv.write_text("id,label\na,x\nb,y\n")
    assert main(["init", str(tmp_path / "q"), "--dataset", str(csv)]) == 2
    assert "no numeric feature columns" in capsys.readouterr().err
    # a project made before init embedded texts: features.npy has zero columns
    init_project(tmp_path / "old", Dataset(ids=["a", "b"], X=np.eye(2), classes=("x", "y"), raw=["u", "v"])).close()
    np.save(tmp_path / "old" / "features.npy", np.zeros((2, 0), dtype=np.float32))
    c = client(create_app(tmp_path / "old"), raise_server_exceptions=False)
    for url, params in [("/api/map", {}), ("/api/similar", {"id": "a"})]:
        r = c.get(url, params=params)
        assert r.status_code == 400 and "has no features" in r.json()["detail"]
    assert not _crawl(c)


def test_map_of_a_one_feature_pool_is_padded(tmp_path: Path) -> None:
    init_project(tmp_path / "one", Dataset(ids=["a", "b", "c"], X=np.array([[0.0], [1.0], [3.0]]),
                                           classes=("x", "y"))).close()
    pts = client(create_app(tmp_path / "one")).get("/api/map").json()["points"]
    xs = np.array([p[1] for p in pts])
    assert np.allclose(np.abs(xs - xs.mean()), np.abs(np.array([0.0, 1.0, 3.0]) - 4 / 3), atol=1e-5)
    assert [p[2] for p in pts] == [0.0, 0.0, 0.0]


def test_dashboard_answers_rounds_without_a_certified_threshold(digits_dir: Path) -> None:
    import json as _json

    import sqlalchemy as sa

    from labelsieve.store import schema as S

    p = Project(digits_dir)
    with p.store.transaction() as conn:
        conn.execute(sa.insert(S.runs).values(id=1, kind="tbal", config="{}", status="complete", started=0.0))
        for r, stats in enumerate([{"coverage": 0.0, "error_bound": 0.0, "n_auto_total": 0, "thresholds": [float("inf")]},
                                   {"coverage": 0.0, "error_bound": float("nan"), "n_auto_total": 0,
                                    "thresholds": [float("inf")] * 10}]):
            conn.execute(sa.insert(S.run_rounds).values(run_id=1, round=r, stats=_json.dumps(stats), committed=0.0))
    d = client(create_app(digits_dir)).get("/api/dashboard")
    assert d.status_code == 200  # +inf thresholds are JSON null, not a server error
    assert d.json()["thresholds"] == {str(k): None for k in range(10)}
    assert [r["error_bound"] for r in d.json()["rounds"]] == [0.0, None]
