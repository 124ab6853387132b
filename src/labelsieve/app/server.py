"""The web app (FastAPI + static HTML/JS): labeling, review queue, dashboard, embeddings map, boxes.

:func:`create_app` only assembles: one router per page (:mod:`labelsieve.app.routers`), the shared
:class:`~labelsieve.app.routers.common.AppState` (given to handlers by a dependency) and the error
handler. Handlers are thin: they parse, call :mod:`labelsieve.store.queries` (or the labeling
session / box store) and return JSON. Pages are static files that render everything with
``textContent`` (user text is never parsed as HTML).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labelsieve.errors import InputError, LabelsieveError, MissingDependencyError
from labelsieve.store.core import UnknownLabelerError
from labelsieve.store.labeling import ConflictError, LabelingSession
from labelsieve.store.project import Project

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"


def _import_fastapi() -> Any:
    try:
        import fastapi
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("the web app needs FastAPI and uvicorn: pip install fastapi uvicorn") from exc
    return fastapi


def create_app(project_dir: str | Path, *, strategy: str = "threshold", tau: float = 0.95, kappa: int = 3,
               lease_seconds: float = 300.0, host: str = "127.0.0.1", allow_hosts: Sequence[str] = (),
               max_body: int | None = None) -> Any:
    """The FastAPI application for one project, to be served on ``host``.

    ``host`` decides the guard (:mod:`labelsieve.app.security`): the Host names requests may carry
    (plus ``allow_hosts``) and, beyond loopback, accounts for every page and read. ``max_body``:
    the largest request body in bytes (default :data:`~labelsieve.app.security.MAX_BODY`).
    """
    _import_fastapi()
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from labelsieve.app import security
    from labelsieve.app.routers import auth, boxes, dashboard, items, label, pages, review, thresholds
    from labelsieve.app.routers import map as map_
    from labelsieve.app.routers.common import AppState, ImageDecodeError

    project = Project(project_dir)
    loopback = security.is_loopback(host)
    state = AppState(project, LabelingSession(project, strategy=strategy, tau=tau, kappa=kappa,
                                              lease_seconds=lease_seconds), accounts_always=not loopback)
    app = FastAPI(title=f"labelsieve: {project.name}", docs_url=None, redoc_url=None)
    app.state.labelsieve = state

    @app.exception_handler(LabelsieveError)
    async def _error(_req: Request, exc: LabelsieveError) -> JSONResponse:
        code = 401 if isinstance(exc, security.NotSignedInError) else \
            403 if isinstance(exc, (UnknownLabelerError, security.ForbiddenError)) else \
            409 if isinstance(exc, ConflictError) else 422 if isinstance(exc, ImageDecodeError) else 400
        return JSONResponse({"detail": str(exc)}, status_code=code)

    def reads_need_account(headers: dict[str, str]) -> str | None:
        if state.principal(headers) is not None:
            return None
        return ("this labelsieve app is served beyond loopback: sign in with your one-time login link "
                "(labelsieve labeler DIR ID --token prints it) or send your token (Authorization: Bearer TOKEN)")

    for module in (pages, auth, items, label, review, dashboard, map_, boxes, thresholds):
        app.include_router(module.router)
    from labelsieve.app.routers import agreement, gallery
    app.include_router(gallery.router)
    app.include_router(agreement.router)
    app.add_middleware(security.Guard, hosts=security.allowed_hosts(host, allow_hosts),
                       max_body=security.MAX_BODY if max_body is None else max_body,
                       reads_need_account=None if loopback else reads_need_account)
    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket first, so that a busy port is a clear error and not a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # Linux: still one listener per port
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} on {host} is already in use (is another `labelsieve serve` running?); "
                             f"stop it or choose another --port") from None
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def serve(project_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000, allow_hosts: Sequence[str] = (),
          **kw: Any) -> None:
    """Run the app with uvicorn on ``host:port`` (loopback by default).

    Beyond loopback the app needs accounts, so it refuses to start before any labeler has a token.
    """
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("the web app needs uvicorn: pip install fastapi uvicorn") from exc
    from labelsieve.app.security import is_loopback

    if not is_loopback(host) and not Project(project_dir).store.has_credentials():
        raise InputError(f"serving on {host} exposes the project to the network, which needs accounts: give each "
                         f"labeler a token first (labelsieve labeler {project_dir} ID --token), then serve again")
    sock = bind_socket(host, port)
    app = create_app(project_dir, host=host, allow_hosts=allow_hosts, **kw)
    print(f"labelsieve: serving {project_dir} on http://{host}:{port}/  (Ctrl-C to stop)")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
