"""The label page's API: the next item for a labeler (leased to them) and their answer."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Body, Depends, Query

from labelsieve.app.routers.common import AppState, get_state

router = APIRouter()


def _next(state: AppState, labeler: str) -> dict[str, Any]:
    got = state.session.next_item(labeler)
    if got is None:
        return {"done": True, "item": None}
    return {"done": False, "item": {**state.item_json(got["pos"]), "posterior": got["posterior"],
                                     "n_labels": got["n_labels"]}, "request_id": uuid.uuid4().hex}


@router.get("/api/next")
def next_item(labeler: str = Query(..., max_length=200),
              state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    return _next(state, labeler)


@router.post("/api/next")
def lease_next(body: dict = Body(...), state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    """The same as ``GET /api/next`` with ``{"labeler": ID}`` as the body (leasing is a write)."""
    return _next(state, str(body.get("labeler", ""))[:200])


@router.post("/api/label")
def label(body: dict = Body(...), state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    labeler, item_id = str(body.get("labeler", "")), str(body.get("id", ""))
    state.project.store.require_labeler(labeler)
    got = state.session.answer(labeler, state.pos(item_id), str(body.get("label", "")),
                               str(body.get("request_id", "")))
    return {"id": item_id, "posterior": got["posterior"], "n_labels": got["n_labels"], "done": got["done"],
            "duplicate": got["duplicate"]}
