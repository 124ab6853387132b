"""What every router shares: the app state (a dependency), item JSON, image decoding."""

from __future__ import annotations

import io
import threading
from typing import Any
from urllib.parse import quote

import numpy as np
from fastapi import Request

from labelsieve.app.security import ROLE_RANK, ForbiddenError, NotSignedInError, request_secret
from labelsieve.errors import InputError
from labelsieve.store.labeling import PSEUDO_LABELERS, LabelingSession
from labelsieve.store.project import Project

THUMB_PX = 128


class ImageDecodeError(InputError):
    """An item's image file cannot be decoded."""


class AppState:
    """Everything the handlers share: the project, the live labeling session, cached projections."""

    def __init__(self, project: Project, session: LabelingSession, *, accounts_always: bool = False) -> None:
        self.project, self.session = project, session
        self.accounts_always = accounts_always  # serving beyond loopback: accounts whatever the store says
        self.classes = list(project.classes)
        self._map: np.ndarray | None = None
        self._z: np.ndarray | None = None
        self._lock = threading.Lock()
        self.items = project.store.items()
        self.ids = self.items["id"].to_numpy()
        self.pos_of = dict(zip(self.items["id"], self.items["pos"], strict=True))

    def pos(self, item_id: str) -> int:
        p = self.pos_of.get(item_id)
        if p is None:
            raise InputError(f"unknown item id {item_id[:200]!r}")
        return int(p)

    def projection(self) -> np.ndarray:
        """2-D coordinates of every item (PCA, fitted on at most 20,000 items; zero-padded when the
        features have fewer than two directions)."""
        with self._lock:
            if self._map is None:
                X = np.asarray(self.features(), dtype=np.float64)
                from sklearn.decomposition import PCA

                rng = np.random.default_rng(0)
                fit = X if len(X) <= 20_000 else X[rng.choice(len(X), 20_000, replace=False)]
                out = np.zeros((len(X), 2), dtype=np.float32)
                k = min(2, X.shape[1], len(fit))
                if k > 0:
                    out[:, :k] = PCA(n_components=k, random_state=0).fit(fit).transform(X)
                self._map = out
            return self._map

    def features(self) -> np.ndarray:
        """The project's features; a project without any (made before texts were embedded at init)
        is refused with what to do."""
        X = np.asarray(self.project.features())
        if X.ndim != 2 or X.shape[1] == 0:
            raise InputError(f"project '{self.project.name}' has no features (a text pool made before `labelsieve "
                             "init` embedded texts): the map and similar items need them; re-create the project "
                             "with `labelsieve init` (texts are embedded), then import its labels")
        return X

    def standardized(self) -> np.ndarray:
        """Features scaled to zero mean and unit variance per column (constant columns left at 0)."""
        with self._lock:
            if self._z is None:
                X = np.asarray(self.features(), dtype=np.float32)
                sd = X.std(axis=0)
                self._z = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
            return self._z

    def item_json(self, p: int) -> dict[str, Any]:
        """What a page needs to show item ``p``: id, position, kind, its text or thumbnail URL."""
        row = self.items.iloc[p]
        return {"id": row["id"], "pos": p, "kind": row["kind"],
                "text": row["source"] if row["kind"] == "text" else None,
                "thumb": "/api/thumb?id=" + quote(str(row["id"]), safe="") if row["kind"] == "image" else None}


    def accounts_on(self) -> bool:
        """Accounts are required beyond loopback, and everywhere once any labeler has a token."""
        return self.accounts_always or self.project.store.has_credentials()

    def principal(self, headers: dict[str, str]) -> tuple[str, str] | None:
        """``(labeler, role)`` signed in by the request's token or session cookie, else None."""
        secret = request_secret(headers)
        return None if secret is None else self.project.store.authenticate(secret)

    def actor(self, request: Request, claimed: Any, *, role: str = "labeler") -> str:
        """Who does a write: the labeler the request names (``claimed``), checked.

        With accounts on, the request must be signed in (else :class:`NotSignedInError`, 401), name
        no one else (the signed-in labeler is used when it names no one) and hold ``role`` or a
        stronger one (else :class:`ForbiddenError`, 403). The store's pseudo-labelers (``GTX``,
        ``import``) and non-human labelers never vote or review; unknown ids are refused (403).
        """
        claimed = "" if claimed is None else str(claimed)[:300]
        if self.accounts_on():
            me = self.principal({k.lower(): v for k, v in request.headers.items()})
            if me is None:
                raise NotSignedInError("sign in first: open the one-time login link `labelsieve labeler DIR ID "
                                       "--token` printed, or send the labeler's token (Authorization: Bearer TOKEN)")
            who, has = me
            if claimed and claimed != who:
                raise ForbiddenError(f"signed in as {who!r}, not {claimed[:200]!r}")
            if ROLE_RANK.get(has, -1) < ROLE_RANK[role]:
                raise ForbiddenError(f"labeler {who!r} has the role {has!r}; this needs {role!r} "
                                     f"(labelsieve labeler DIR {who} --role {role})")
            claimed = who
        if claimed in PSEUDO_LABELERS:
            raise ForbiddenError(f"{claimed!r} is the store's own labeler id and cannot vote or review")
        self.project.store.require_labeler(claimed, kind="human")
        return claimed


def get_state(request: Request) -> AppState:
    """FastAPI dependency: the :class:`AppState` of the app serving ``request``."""
    return request.app.state.labelsieve


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
