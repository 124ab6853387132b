"""The map page's API: a 2-D projection of the pool with current labels, and nearest neighbours."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Query

from labelsieve.app.routers.common import AppState, get_state
from labelsieve.store import queries as Q

router = APIRouter()


def nearest(Z: np.ndarray, p: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``Z`` nearest to row ``p`` (Euclidean, ``p`` itself excluded) and their distances.

    >>> nearest(np.array([[0.0], [3.0], [1.0], [-2.0]]), 0, 2)
    (array([2, 3]), array([1., 2.]))
    """
    d = np.einsum("ij,ij->i", Z - Z[p], Z - Z[p])
    d[p] = np.inf
    k = min(k, len(d) - 1)
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    near = np.argpartition(d, k - 1)[:k] if k < len(d) else np.arange(len(d))
    near = near[np.argsort(d[near], kind="stable")]
    return near, np.sqrt(d[near])


@router.get("/api/map")
def map_points(limit: int = Query(3000, ge=1, le=20_000), offset: int = Query(0, ge=0),
               state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    xy = state.projection()
    pts = Q.map_points(state.project, xy, state.ids, limit=limit, offset=offset)
    return {"n_items": len(xy), "shown": len(pts), "method": "PCA", "points": pts}


@router.get("/api/similar")
def similar(id: str = Query(..., max_length=500), k: int = Query(8, ge=1, le=100),
            state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    near, dist = nearest(state.standardized(), state.pos(id), k)
    return {"id": id, "items": [{**state.item_json(int(q)), "distance": float(d)}
                                for q, d in zip(near.tolist(), dist.tolist(), strict=True)]}
