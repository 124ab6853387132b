"""Shared plumbing of the browser tests: Debian's Chromium through Playwright, a served app.

Tests ask for the ``browser`` fixture (skipped with the reason when chromium or playwright is
missing), start the app with ``serve_project(project_dir, **create_app_kw)`` (a context manager
yielding the base URL) and save screenshots with ``screenshot(page, name)``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Screenshots go to tests/browser/out/; those the docs show (DOC_SHOTS) to docs/screenshots/ with
#: LABELSIEVE_UPDATE_SCREENSHOTS=1.
OUT = Path(__file__).resolve().parent / "out"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DOC_SHOTS = frozenset({"label", "review", "gallery", "thresholds", "dashboard", "map", "boxes"})
UPDATE_DOCS = os.environ.get("LABELSIEVE_UPDATE_SCREENSHOTS") == "1"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium, or a skip naming what to install."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download needed)")
    pytest.importorskip("uvicorn", reason="pip install uvicorn fastapi")
    with api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def _serve(project_dir: Path, **app_kw: Any) -> Iterator[str]:
    import uvicorn

    from labelsieve.app.server import bind_socket, create_app

    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(project_dir, **app_kw), log_level="error"))
    th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        th.join(10)


@pytest.fixture(scope="session")
def serve_project() -> Any:
    """``serve_project(dir, **kw)``: the app on a free loopback port in a thread; yields its URL."""
    return _serve


def _shot(page: Any, name: str) -> None:
    where = DOCS if UPDATE_DOCS and name in DOC_SHOTS else OUT
    where.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(where / f"{name}.png"))


@pytest.fixture(scope="session")
def screenshot() -> Any:
    """``screenshot(page, name)`` saves ``name``.png under tests/browser/out (or docs/screenshots)."""
    return _shot


def _live_votes(d: Path) -> list[tuple[str, str, int]]:
    from labelsieve.store import labeling as L
    from labelsieve.store.project import Project

    p = Project(d)
    try:
        v = L.live_events(p.store, ("vote",))
        ids = p.store.items(("pos", "id")).set_index("pos")["id"]
        return [(str(w), str(ids[int(i)]), int(c)) for w, i, c in zip(v["who"], v["item"], v["code"], strict=True)]
    finally:
        p.close()


@pytest.fixture(scope="session")
def live_votes() -> Any:
    """``live_votes(project_dir)``: the store's votes that still count, as ``(labeler, item id, code)``."""
    return _live_votes
