"""The web app's guard (issue 16, Security), against 127.0.0.1 only: accounts and roles, origin and
host checks, frame headers, body size limit, side-effect-free GETs, path traversal, pseudo-labelers."""

from __future__ import annotations

import re
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

pytest.importorskip("fastapi", reason="the web app needs fastapi (pip install fastapi uvicorn httpx)")
httpx = pytest.importorskip("httpx", reason="the app tests need httpx")
from fastapi.testclient import TestClient

from labelsieve.app.server import bind_socket, create_app, serve
from labelsieve.data import load_dataset
from labelsieve.errors import InputError
from labelsieve.store import schema as S
from labelsieve.store.core import Store, secret_hash
from labelsieve.store.project import Project, init_project

LOCAL = "http://127.0.0.1"


@pytest.fixture()
def proj(tmp_path: Path) -> Path:
    p = init_project(tmp_path / "digits", load_dataset("digits").subset(np.arange(40)))
    p.store.add_labeler("ann")
    p.store.add_labeler("rev", role="reviewer")
    p.store.append_events([{"item": k, "code": k % 10, "source": "auto", "who": "logreg", "confidence": 0.7}
                           for k in range(20, 40)])
    p.close()
    return tmp_path / "digits"


def _client(app, base: str = LOCAL, **kw) -> TestClient:
    return TestClient(app, base_url=base, **kw)


def _tokens(d: Path, *ids: str) -> dict[str, tuple[str, str]]:
    st = Project(d).store
    return {i: st.issue_token(i) for i in ids}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------------------- open loopback
def test_loopback_without_tokens_is_open_but_writes_pass_the_origin_check(proj: Path) -> None:
    c = _client(create_app(proj))
    assert c.get("/api/whoami").json() == {"accounts": False, "labeler": None, "role": None}
    ok = c.post("/api/next", json={"labeler": "ann"}, headers={"Origin": "http://127.0.0.1"})
    assert ok.status_code == 200 and ok.json()["item"] is not None
    n = Project(proj).store.n_events()
    for h in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Referer": "http://evil.example/x"},
              {"Origin": "http://127.0.0.1:9999"}):  # another port is another origin
        r = c.post("/api/review", json={"reviewer": "rev", "ids": ["digits-0020"], "action": "accept"}, headers=h)
        assert r.status_code == 403 and "cross-site write refused" in r.json()["detail"]
    assert Project(proj).store.n_events() == n
    # a foreign origin may read (the same-origin policy keeps it from seeing the answer)
    assert c.get("/api/project", headers={"Origin": "http://evil.example"}).status_code == 200


def test_host_header_must_be_the_bound_host(proj: Path) -> None:
    app = create_app(proj)
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "10.0.0.1"):
        r = _client(app).get("/api/project", headers={"Host": host})
        assert r.status_code == 400 and "DNS rebinding" in r.json()["detail"]
    for host in ("127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000"):
        assert _client(app).get("/api/project", headers={"Host": host}).status_code == 200
    lan = create_app(proj, host="192.0.2.10", allow_hosts=["labels.lan"])
    _tokens(proj, "ann")
    assert _client(lan, "http://192.0.2.10:8000").get("/login").status_code == 403  # reached, bad link
    assert _client(lan, "http://labels.lan").get("/login").status_code == 403
    assert _client(lan, "http://localhost").get("/login").status_code == 400


def test_every_response_forbids_framing(proj: Path) -> None:
    c = _client(create_app(proj))
    for r in (c.get("/label"), c.get("/api/project"), c.get("/static/nope.js"), c.get("/api/item"),
              c.get("/api/project", headers={"Host": "evil.example"})):
        assert r.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"


def test_static_path_traversal_is_refused(proj: Path) -> None:
    c = _client(create_app(proj))
    assert c.get("/static/style.css").status_code == 200
    for name in ("..%2fserver.py", "%2e%2e%2fserver.py", "..%2f..%2fstore%2fcore.py", "%2fetc%2fpasswd",
                 "..%5cserver.py", "%00style.css"):
        r = c.get(f"/static/{name}")
        assert r.status_code == 404 and "import" not in r.text


# ---------------------------------------------------------------------------------- GETs do nothing
def test_next_item_is_leased_by_post_only_and_gets_change_nothing(proj: Path) -> None:
    app = create_app(proj, kappa=1)
    c = _client(app)
    assert c.get("/api/next", params={"labeler": "ann"}).status_code == 405
    n = Project(proj).store.n_events()
    for url, params in [("/api/project", {}), ("/api/item", {"id": "digits-0000"}), ("/api/review", {}),
                        ("/api/dashboard", {}), ("/api/map", {}), ("/api/similar", {"id": "digits-0000"}),
                        ("/api/thumb", {"id": "digits-0000"}), ("/api/boxes", {}), ("/api/whoami", {}),
                        ("/label", {"labeler": "ann"}), ("/review", {})]:
        assert c.get(url, params=params).status_code == 200, url
    assert Project(proj).store.n_events() == n
    # nothing was leased to ann: with kappa 1, bob is served the first item
    Project(proj).store.add_labeler("bob")
    assert c.post("/api/next", json={"labeler": "bob"}).json()["item"]["id"] == "digits-0000"


# ---------------------------------------------------------------------------------- body size
def test_body_larger_than_the_limit_is_413_with_or_without_content_length(proj: Path) -> None:
    c = _client(create_app(proj, max_body=1000))
    big = b'{"labeler": "ann", "pad": "' + b"x" * 5000 + b'"}'
    r = c.post("/api/next", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    seen = []

    def chunks():  # no Content-Length: the stream itself is counted
        for _ in range(50):
            seen.append(1)
            yield b"x" * 500

    r = c.post("/api/next", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than 1000 bytes" in r.json()["detail"]
    ok = c.post("/api/next", json={"labeler": "ann"})
    assert ok.status_code == 200


@contextmanager
def _served(d: Path, **kw):
    import uvicorn

    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(d, **kw), log_level="error"))
    th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        th.join(10)


def test_a_400_mb_body_is_refused_before_it_is_sent(proj: Path) -> None:
    with _served(proj) as port, socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"POST /api/label HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 419430400\r\n\r\n" + b"[" * 1000)
        head = s.recv(4096).decode("latin-1")  # the server answers without waiting for 400 MB
    assert head.startswith("HTTP/1.1 413")


# ---------------------------------------------------------------------------------- accounts
def test_tokens_are_required_once_issued_and_name_the_labeler(proj: Path) -> None:
    tok = _tokens(proj, "ann", "rev")
    c = _client(create_app(proj))
    assert c.get("/api/whoami").json()["accounts"] is True
    r = c.post("/api/next", json={"labeler": "ann"})
    assert r.status_code == 401 and "sign in" in r.json()["detail"]
    r = c.post("/api/next", json={}, headers=_bearer(tok["ann"][0]))  # the token names the labeler
    assert r.status_code == 200
    nxt = r.json()
    assert c.post("/api/label", json={"labeler": "rev", "id": nxt["item"]["id"], "label": "0", "request_id": "a"},
                  headers=_bearer(tok["ann"][0])).status_code == 403  # signed in as ann, names rev
    r = c.post("/api/label", json={"id": nxt["item"]["id"], "label": "0", "request_id": "a"},
               headers={"X-Labelsieve-Token": tok["ann"][0]})
    assert r.status_code == 200
    votes = Project(proj).store.events(source="vote")
    assert votes["who"].tolist() == ["ann"]
    for bad in ("", "x" * 43, tok["ann"][1], tok["ann"][0] + "x"):  # the login code is not a token
        assert c.post("/api/next", json={}, headers=_bearer(bad)).status_code == 401
    assert c.get("/api/whoami", headers=_bearer(tok["rev"][0])).json() == {"accounts": True, "labeler": "rev",
                                                                           "role": "reviewer"}


def test_roles_decide_who_reviews(proj: Path) -> None:
    tok = _tokens(proj, "ann", "rev")
    c = _client(create_app(proj))
    body = {"ids": ["digits-0020"], "action": "accept"}
    r = c.post("/api/review", json=body, headers=_bearer(tok["ann"][0]))
    assert r.status_code == 403 and "needs 'reviewer'" in r.json()["detail"]
    r = c.post("/api/boxes/review", json={"ids": [1], "action": "accept"}, headers=_bearer(tok["ann"][0]))
    assert r.status_code == 403
    assert c.post("/api/review", json=body, headers=_bearer(tok["rev"][0])).json()["events"] == 1
    assert Project(proj).store.events(source="review")["who"].tolist() == ["rev"]
    Project(proj).store.add_labeler("ann", role="admin")
    assert c.post("/api/review", json={**body, "action": "reject"}, headers=_bearer(tok["ann"][0])).status_code == 200


def test_tokens_are_stored_hashed_and_reissuing_revokes(proj: Path) -> None:
    token, code = _tokens(proj, "ann")["ann"]
    st = Project(proj).store
    with st.read() as conn:
        rows = conn.execute(sa.select(S.credentials.c.hash, S.credentials.c.kind)).fetchall()
    assert sorted(r[1] for r in rows) == ["login", "token"]
    assert {r[0] for r in rows} == {secret_hash(token), secret_hash(code)}
    db = (proj / "project.db").read_bytes() + b"".join(p.read_bytes() for p in proj.glob("project.db-wal"))
    assert token.encode() not in db and code.encode() not in db
    new_token, _ = st.issue_token("ann")
    assert st.authenticate(token) is None and st.authenticate(new_token) == ("ann", "labeler")
    assert st.redeem_login(code) is None  # the old link died with the old token


def test_one_time_login_link_sets_a_strict_httponly_cookie(proj: Path) -> None:
    _, code = _tokens(proj, "ann")["ann"]
    c = _client(create_app(proj))
    r = c.get("/login", params={"token": code})
    assert r.status_code == 200 and 'url=/label?labeler=ann"' in r.text and r.headers["cache-control"] == "no-store"
    cookie = r.headers["set-cookie"]
    assert re.search(r"labelsieve_session=[\w-]{40,};", cookie)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie
    secret = re.search(r"labelsieve_session=([\w-]+)", cookie).group(1)
    assert secret != code
    assert c.post("/api/next", json={"labeler": "ann"}).status_code == 200  # the client keeps the cookie
    again = _client(create_app(proj)).get("/login", params={"token": code})
    assert again.status_code == 403 and "already used" in again.text and "set-cookie" not in again.headers
    assert Project(proj).store.authenticate(secret) == ("ann", "labeler")


def test_pseudo_labelers_never_vote_or_review(proj: Path) -> None:
    c = _client(create_app(proj))
    for who in ("GTX", "import"):
        assert c.post("/api/next", json={"labeler": who}).status_code == 403
        r = c.post("/api/review", json={"reviewer": who, "ids": ["digits-0020"], "action": "accept"})
        assert r.status_code == 403
        assert c.post("/api/boxes/review", json={"labeler": who, "ids": [1], "action": "accept"}).status_code == 403
        with pytest.raises(InputError, match="cannot sign in"):
            Project(proj).store.issue_token(who)
    assert Project(proj).store.events(source="review").empty


# ---------------------------------------------------------------------------------- beyond loopback
def test_beyond_loopback_every_page_and_read_needs_an_account(proj: Path) -> None:
    with pytest.raises(InputError, match="needs accounts"):
        serve(proj, host="0.0.0.0", port=0)  # no labeler has a token: refused before binding
    tok = _tokens(proj, "ann")
    c = _client(create_app(proj, host="192.0.2.10"), "http://192.0.2.10")
    for url in ("/", "/label", "/static/label.js", "/api/project", "/api/dashboard", "/api/map"):
        r = c.get(url)
        assert r.status_code == 401 and "beyond loopback" in r.json()["detail"], url
    assert c.get("/label", headers=_bearer(tok["ann"][0])).status_code == 200
    assert c.get("/login", params={"token": tok["ann"][1]}).status_code == 200
    assert c.get("/api/dashboard").status_code == 200  # with the session cookie


def test_no_url_answers_500_with_accounts_on_or_beyond_loopback(proj: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_app_crawl", Path(__file__).with_name("test_app.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _crawl = mod._crawl

    tok = _tokens(proj, "ann")
    local = _client(create_app(proj), raise_server_exceptions=False)
    assert not _crawl(local)
    lan = _client(create_app(proj, host="192.0.2.10"), "http://192.0.2.10", raise_server_exceptions=False)
    assert lan.get("/openapi.json").status_code == 401
    lan.headers.update(_bearer(tok["ann"][0]))
    assert not _crawl(lan)


# ---------------------------------------------------------------------------------- store and CLI
def test_migration_4_adds_roles_and_credentials_to_an_old_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    eng = sa.create_engine(url)
    with eng.begin() as c:
        S.migrate(c, target=3)
        c.execute(sa.insert(S.classes), [{"code": 0, "name": "a"}, {"code": 1, "name": "b"}])
        c.execute(sa.text("INSERT INTO labelers (id, kind, name, n_gold, created) VALUES ('ann', 'human', '', 0, 0)"))
    eng.dispose()
    st = Store(url)
    assert st.schema_version == S.SCHEMA_VERSION > 3  # migrated from 3 to the latest
    assert st.labelers().set_index("id").at["ann", "role"] == "labeler"
    assert not st.has_credentials()
    token, _ = st.issue_token("ann")
    assert st.authenticate(token) == ("ann", "labeler")


def test_labeler_command_sets_roles_and_prints_a_token_once(proj: Path, capsys) -> None:
    from labelsieve.cli import main

    assert main(["labeler", str(proj), "cy", "--role", "reviewer"]) == 0
    assert "token" not in capsys.readouterr().out and not Project(proj).store.has_credentials()
    assert main(["labeler", str(proj), "cy", "--token", "--url", "http://127.0.0.1:8123"]) == 0
    out = capsys.readouterr().out
    token = re.search(r"cy: token (\S+)", out).group(1)
    link = re.search(r"one-time login link (\S+)", out).group(1)
    assert link.startswith("http://127.0.0.1:8123/login?token=")
    st = Project(proj).store
    assert st.authenticate(token) == ("cy", "reviewer")  # the role set before was kept
    assert main(["labeler", str(proj), "import", "--token"]) == 2


def test_skip_undo_and_unreject_over_http_are_events_and_need_the_right_role(proj: Path) -> None:
    """Defects 5 and 7 through the API, with accounts on: one's own skip and undo; un-reject for reviewers."""
    tok = _tokens(proj, "ann", "rev")
    c = _client(create_app(proj))
    ann, rev = _bearer(tok["ann"][0]), _bearer(tok["rev"][0])
    got = c.post("/api/next", json={"labeler": "ann"}, headers=ann).json()
    item = got["item"]["id"]
    r = c.post("/api/skip", json={"labeler": "ann", "id": item, "reason": "broken", "request_id": "s1"}, headers=rev)
    assert r.status_code == 403  # rev cannot skip for ann
    r = c.post("/api/skip", json={"labeler": "ann", "id": item, "reason": "broken", "note": "blank",
                                  "request_id": "s1"}, headers=ann)
    assert r.status_code == 200 and r.json()["reason"] == "broken"
    sk = c.get("/api/skips", headers=ann).json()
    assert sk["broken"] == 1 and sk["skips"][0]["id"] == item and sk["skips"][0]["note"] == "broken: blank"
    assert c.post("/api/next", json={"labeler": "ann"}, headers=ann).json()["item"]["id"] != item
    u = c.post("/api/undo", json={"labeler": "ann", "request_id": "u1"}, headers=ann).json()
    assert u["undone"] == "skip" and u["item"]["id"] == item and u["held"] is True
    assert c.get("/api/skips", headers=ann).json()["broken"] == 0
    assert c.post("/api/undo", json={"labeler": "ann", "request_id": "u2"}, headers=ann).json()["undone"] is None
    # a rejection reversed by a reviewer, not by a labeler; the auto label is current again
    assert c.post("/api/review", json={"ids": ["digits-0020"], "action": "reject"}, headers=rev).status_code == 200
    body = {"ids": ["digits-0020"], "request_id": "k1"}
    assert c.post("/api/unreject", json=body, headers=ann).status_code == 403
    assert c.post("/api/unreject", json=body, headers=rev).json()["events"] == 1
    assert c.post("/api/unreject", json=body, headers=rev).json()["events"] == 0  # a retry adds nothing
    cur = Project(proj).store.current_labels().set_index("id")
    assert cur.at["digits-0020", "source"] == "auto" and cur.at["digits-0020", "label"] == "0"
    ev = Project(proj).store.events()
    assert ev["source"].tolist().count("withdraw") == 2 and ev["source"].tolist().count("skip") == 1
