"""The web app (FastAPI + static HTML/JS): labeling, review queue, dashboard, embeddings map.

Handlers are thin: they parse, call :mod:`labelsieve.store` and return JSON. Pages are static
files that render everything with ``textContent`` (user text is never parsed as HTML).
"""

from __future__ import annotations

import errno
import io
import logging
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from labelsieve.errors import InputError, LabelsieveError, MissingDependencyError
from labelsieve.store import schema as S
from labelsieve.store.core import UnknownLabelerError
from labelsieve.store.labeling import ConflictError, LabelingSession, labeler_accuracy
from labelsieve.store.project import Project
from labelsieve.store.runs import run_history

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
PAGES = {"/": "index.html", "/label": "label.html", "/review": "review.html", "/dashboard": "dashboard.html",
         "/map": "map.html", "/boxes": "boxes.html"}
MAX_PAGE = 500
THUMB_PX = 128


class ImageDecodeError(InputError):
    """An item's image file cannot be decoded."""


def _import_fastapi() -> Any:
    try:
        import fastapi
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("the web app needs FastAPI and uvicorn: pip install fastapi uvicorn") from exc
    return fastapi


class AppState:
    """Everything the handlers share: the project, the live labeling session, cached projections."""

    def __init__(self, project: Project, session: LabelingSession) -> None:
        self.project, self.session = project, session
        self._map: np.ndarray | None = None
        self._z: np.ndarray | None = None
        self._lock = threading.Lock()
        self.items = project.store.items()
        self.pos_of = dict(zip(self.items["id"], self.items["pos"], strict=True))

    def pos(self, item_id: str) -> int:
        p = self.pos_of.get(item_id)
        if p is None:
            raise InputError(f"unknown item id {item_id[:200]!r}")
        return int(p)

    def projection(self) -> np.ndarray:
        """2-D coordinates of every item: UMAP if installed and the pool is small, else PCA."""
        with self._lock:
            if self._map is None:
                X = np.asarray(self.project.features(), dtype=np.float64)
                from sklearn.decomposition import PCA

                rng = np.random.default_rng(0)
                fit = X if len(X) <= 20_000 else X[rng.choice(len(X), 20_000, replace=False)]
                self._map = PCA(n_components=2, random_state=0).fit(fit).transform(X).astype(np.float32)
            return self._map

    def standardized(self) -> np.ndarray:
        with self._lock:
            if self._z is None:
                X = np.asarray(self.project.features(), dtype=np.float32)
                sd = X.std(axis=0)
                self._z = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
            return self._z


def open_item_image(project: Project, kind: str, source: str, item_id: str) -> Any:
    """The PIL image of an image item (RGB for files; the stored array for embedded sets)."""
    from PIL import Image, UnidentifiedImageError

    if kind != "image":
        raise InputError(f"item {item_id[:200]!r} is not an image")
    if source.startswith("raw.npy#"):
        return Image.fromarray(np.ascontiguousarray(project.raw_array(int(source.split("#", 1)[1]))))
    try:
        with Image.open(source) as src:
            src.load()
            return src.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"the image of item {item_id[:200]!r} ({source}) cannot be decoded: "
                               f"{type(exc).__name__}") from None


def thumbnail_png(project: Project, kind: str, source: str, item_id: str) -> bytes:
    """PNG thumbnail of an image item (8x8 digits are scaled up with nearest-neighbour)."""
    from PIL import Image

    im = open_item_image(project, kind, source, item_id)
    if source.startswith("raw.npy#"):
        scale = max(1, THUMB_PX // max(im.size))
        im = im.resize((im.size[0] * scale, im.size[1] * scale), Image.Resampling.NEAREST)
    else:
        im.thumbnail((THUMB_PX * 2, THUMB_PX * 2))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def create_app(project_dir: str | Path, *, strategy: str = "threshold", tau: float = 0.95, kappa: int = 3,
               lease_seconds: float = 300.0) -> Any:
    """The FastAPI application for one project."""
    fastapi = _import_fastapi()
    from fastapi import Body, FastAPI, Query, Request
    from fastapi.responses import FileResponse, JSONResponse, Response

    project = Project(project_dir)
    state = AppState(project, LabelingSession(project, strategy=strategy, tau=tau, kappa=kappa,
                                              lease_seconds=lease_seconds))
    app = FastAPI(title=f"labelsieve: {project.name}", docs_url=None, redoc_url=None)
    app.state.labelsieve = state
    classes = list(project.classes)

    @app.exception_handler(LabelsieveError)
    async def _error(_req: Request, exc: LabelsieveError) -> JSONResponse:
        code = 403 if isinstance(exc, UnknownLabelerError) else 409 if isinstance(exc, ConflictError) \
            else 422 if isinstance(exc, ImageDecodeError) else 400
        return JSONResponse({"detail": str(exc)}, status_code=code)

    for route, page in PAGES.items():
        def _page(page: str = page) -> FileResponse:
            return FileResponse(STATIC / page, media_type="text/html")
        app.add_api_route(route, _page, methods=["GET"], include_in_schema=False)

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        path = (STATIC / name).resolve()
        if path.parent != STATIC.resolve() or not path.is_file():
            raise fastapi.HTTPException(404, "no such file")
        return FileResponse(path)

    def item_json(p: int) -> dict[str, Any]:
        row = state.items.iloc[p]
        out = {"id": row["id"], "pos": p, "kind": row["kind"],
               "text": row["source"] if row["kind"] == "text" else None,
               "thumb": f"/api/thumb?id={row['id']}" if row["kind"] == "image" else None}
        return out

    @app.get("/api/project")
    def project_info() -> dict[str, Any]:
        return {"name": project.name, "classes": classes, "n_items": len(state.items), "strategy": strategy,
                "tau": tau, "kappa": kappa}

    @app.get("/api/thumb")
    def thumb(id: str = Query(..., max_length=500)) -> Response:
        p = state.pos(id)
        row = state.items.iloc[p]
        return Response(thumbnail_png(project, row["kind"], row["source"], id), media_type="image/png")

    @app.get("/api/next")
    def next_item(labeler: str = Query(..., max_length=200)) -> dict[str, Any]:
        got = state.session.next_item(labeler)
        if got is None:
            return {"done": True, "item": None}
        return {"done": False, "item": {**item_json(got["pos"]), "posterior": got["posterior"],
                                         "n_labels": got["n_labels"]}, "request_id": uuid.uuid4().hex}

    @app.post("/api/label")
    def label(body: dict = Body(...)) -> dict[str, Any]:  # noqa: B008
        labeler, item_id = str(body.get("labeler", "")), str(body.get("id", ""))
        project.store.require_labeler(labeler)
        got = state.session.answer(labeler, state.pos(item_id), str(body.get("label", "")),
                                   str(body.get("request_id", "")))
        return {"id": item_id, "posterior": got["posterior"], "n_labels": got["n_labels"], "done": got["done"],
                "duplicate": got["duplicate"]}

    @app.get("/api/item")
    def item(id: str = Query(..., max_length=500)) -> dict[str, Any]:
        p = state.pos(id)
        ev = project.store.events(items=[p])
        events = [{"seq": int(r.seq), "label": None if r.code is None or r.code != r.code else classes[int(r.code)],
                   "source": r.source, "action": r.action, "who": r.who,
                   "confidence": None if r.confidence is None or r.confidence != r.confidence else float(r.confidence),
                   "round": None if r.round is None or r.round != r.round else int(r.round)}
                  for r in ev.itertuples()]
        with project.store.read() as c:
            cur = c.execute(sa.select(S.current_label.c.code, S.current_label.c.source)
                            .where(S.current_label.c.item == p)).first()
        label = None if cur is None or cur[0] is None else classes[int(cur[0])]
        return {**item_json(p), "label": label, "source": None if cur is None else cur[1], "events": events}

    @app.get("/api/review")
    def review_queue(cls: str | None = Query(None, alias="class"), round: int | None = None, page: int = 0,
                     page_size: int = Query(50, ge=1, le=MAX_PAGE)) -> dict[str, Any]:
        cl = S.current_label
        cond = [cl.c.source == "auto"]
        if cls:
            if cls not in classes:
                raise InputError(f"class {cls[:100]!r} is not one of {classes}")
            cond.append(cl.c.code == classes.index(cls))
        if round is not None:
            cond.append(cl.c.round == round)
        with project.store.read() as c:
            total = c.execute(sa.select(sa.func.count()).select_from(cl).where(*cond)).scalar()
            rows = c.execute(sa.select(cl.c.item, cl.c.code, cl.c.confidence, cl.c.round).where(*cond)
                             .order_by(cl.c.confidence.asc(), cl.c.item).limit(page_size)
                             .offset(max(page, 0) * page_size)).fetchall()
        return {"total": int(total), "page": page, "page_size": page_size,
                "items": [{**item_json(int(r[0])), "label": classes[int(r[1])], "confidence": r[2], "round": r[3]}
                          for r in rows]}

    @app.post("/api/review")
    def review(body: dict = Body(...)) -> dict[str, Any]:  # noqa: B008
        reviewer = str(body.get("reviewer", ""))
        project.store.require_labeler(reviewer)
        action = body.get("action")
        if action not in ("accept", "reject", "relabel"):
            raise InputError(f"action must be accept, reject or relabel; got {str(action)[:50]!r}")
        ids = body.get("ids") or []
        if not isinstance(ids, list) or not ids or len(ids) > MAX_PAGE:
            raise InputError(f"ids must be a list of 1-{MAX_PAGE} item ids")
        req = str(body.get("request_id") or uuid.uuid4().hex)[:100]
        pos = [state.pos(str(i)) for i in ids]
        with project.store.read() as c:
            cur = {int(r[0]): r[1] for r in c.execute(sa.select(S.current_label.c.item, S.current_label.c.code)
                                                       .where(S.current_label.c.item.in_(pos)))}
        if action == "relabel":
            lab = str(body.get("label", ""))
            if lab not in classes:
                raise InputError(f"label {lab[:100]!r} is not one of the classes {classes}")
            codes = [classes.index(lab)] * len(pos)
        elif action == "accept":
            missing = [i for i, p in zip(ids, pos, strict=True) if cur.get(p) is None]
            if missing:
                raise InputError(f"item {str(missing[0])[:200]!r} has no label to accept")
            codes = [int(cur[p]) for p in pos]
        else:
            codes = [None] * len(pos)
        import pandas as pd

        n = project.store.append_events(pd.DataFrame({
            "item": pos, "code": pd.array(codes, dtype="Int64"), "source": "review", "action": action,
            "who": reviewer, "key": [f"review:{req}:{p}" for p in pos]}))
        return {"events": n, "action": action}

    @app.get("/api/dashboard")
    def dashboard() -> dict[str, Any]:
        st = project.store
        with st.read() as c:
            by_source = {r[0]: int(r[1]) for r in c.execute(
                sa.select(S.current_label.c.source, sa.func.count()).where(S.current_label.c.code.is_not(None))
                .group_by(S.current_label.c.source))}
            by_event = {r[0]: int(r[1]) for r in c.execute(
                sa.select(S.events.c.source, sa.func.count()).group_by(S.events.c.source))}
            rejected = c.execute(sa.select(sa.func.count()).select_from(S.current_label)
                                 .where(S.current_label.c.code.is_(None))).scalar()
        hist = run_history(project)
        rounds: list[dict[str, Any]] = []
        thresholds: dict[str, Any] = {}
        if len(hist):
            last = hist[hist["run_id"] == hist["run_id"].max()]
            for r in last.to_dict("records"):
                rounds.append({k: _clean(r.get(k)) for k in ("run_id", "round", "coverage", "error_bound",
                                                              "human_labels", "n_auto_total", "auto_label_error")})
            thr = last.iloc[-1]["thresholds"]
            thresholds = {classes[k]: t for k, t in enumerate(thr)} if len(thr) == len(classes) else {"all": thr[0]}
        used = state.session.accuracy_table()  # what the aggregate uses: registered, or EM estimate
        gold = labeler_accuracy(project)[["labeler", "n_gold", "n_correct", "posterior_mean", "lower", "upper"]]
        gold = gold.rename(columns={"posterior_mean": "gold_accuracy", "lower": "gold_lower", "upper": "gold_upper"})
        acc = used.merge(gold, on="labeler", how="left")
        labelers = [{k: _clean(v) for k, v in r.items()} for r in acc.to_dict("records")]
        return {
            "n_items": len(state.items), "labeled": int(sum(by_source.values())), "by_source": by_source,
            "rejected": int(rejected), "labels_spent": by_event.get("vote", 0) + by_event.get("human", 0),
            "votes": by_event.get("vote", 0), "reviews": by_event.get("review", 0), "rounds": rounds,
            "thresholds": thresholds, "labelers": labelers, "reliability": _reliability(project),
            "collection": state.session.progress(),
        }

    @app.get("/api/map")
    def map_points(limit: int = Query(3000, ge=1, le=20_000), offset: int = Query(0, ge=0)) -> dict[str, Any]:
        xy = state.projection()
        n = len(xy)
        step = max(1, n // limit)
        idx = np.arange(offset % step, n, step)[:limit]
        with project.store.read() as c:
            cur = {int(r[0]): (r[1], r[2]) for r in c.execute(
                sa.select(S.current_label.c.item, S.current_label.c.code, S.current_label.c.source))}
        pts = []
        for p in idx.tolist():  # one JSON record per shown point
            code, src = cur.get(p, (None, None))
            pts.append([state.items["id"].iat[p], float(xy[p, 0]), float(xy[p, 1]),
                        None if code is None else classes[int(code)], src or "unlabeled"])
        return {"n_items": n, "shown": len(pts), "method": "PCA", "points": pts}

    @app.get("/api/similar")
    def similar(id: str = Query(..., max_length=500), k: int = Query(8, ge=1, le=100)) -> dict[str, Any]:
        p = state.pos(id)
        Z = state.standardized()
        d = np.einsum("ij,ij->i", Z - Z[p], Z - Z[p])
        d[p] = np.inf
        near = np.argpartition(d, min(k, len(d) - 1))[:k]
        near = near[np.argsort(d[near])]
        return {"id": id, "items": [{**item_json(int(q)), "distance": float(np.sqrt(d[q]))} for q in near]}

    from labelsieve.app.boxes import register as register_boxes

    register_boxes(app, state)  # box review: /api/boxes*
    return app


def _clean(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and np.isnan(v):
        return None
    return v


def _reliability(project: Project, n_bins: int = 10) -> dict[str, Any]:
    """Reliability of auto-labels: against review verdicts if any, else against ground truth."""
    from labelsieve.metrics import reliability_curve

    st = project.store
    auto = st.events(source="auto").drop_duplicates("item", keep="last")
    if len(auto) == 0:
        return {"basis": None, "confidence": [], "accuracy": [], "count": []}
    rev = st.events(source="review").drop_duplicates("item", keep="last").set_index("item")
    reviewed = auto[auto["item"].isin(rev.index)]
    if len(reviewed):
        basis = "reviews"
        conf = reviewed["confidence"].to_numpy(dtype=float)
        verdict = rev.loc[reviewed["item"]]
        correct = ((verdict["action"] == "accept") | ((verdict["action"] == "relabel")
                   & (verdict["code"].to_numpy() == reviewed["code"].to_numpy()))).to_numpy(dtype=float)
    else:
        truth = project.truth()
        if truth is None:
            return {"basis": None, "confidence": [], "accuracy": [], "count": []}
        t = truth[auto["item"].to_numpy()]
        keep = t >= 0
        basis = "ground truth"
        conf = auto["confidence"].to_numpy(dtype=float)[keep]
        correct = (auto["code"].to_numpy(dtype=np.int64)[keep] == t[keep]).astype(float)
    rc = reliability_curve(np.clip(conf, 0, 1), correct, n_bins=n_bins)
    return {"basis": basis, "n": len(conf), "confidence": [_clean(v) for v in rc.confidence],
            "accuracy": [_clean(v) for v in rc.accuracy], "count": rc.count.tolist(), "edges": rc.edges.tolist()}


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


def serve(project_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000, **kw: Any) -> None:
    """Run the app with uvicorn on ``host:port`` (loopback by default)."""
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("the web app needs uvicorn: pip install fastapi uvicorn") from exc
    sock = bind_socket(host, port)
    app = create_app(project_dir, **kw)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: the app has no authentication; anyone who can reach this address can label", host)
    print(f"labelsieve: serving {project_dir} on http://{host}:{port}/  (Ctrl-C to stop)")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
