"""Routes every page uses: the project's description, an item's thumbnail and its history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from labelsieve.app.routers.common import AppState, get_state, thumbnail_png
from labelsieve.store import queries as Q

router = APIRouter()


@router.get("/api/project")
def project_info(state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    s = state.session
    return {"name": state.project.name, "classes": state.classes, "n_items": len(state.items),
            "strategy": s.strategy, "tau": s.tau, "kappa": s.kappa}


@router.get("/api/thumb")
def thumb(id: str = Query(..., max_length=500), state: AppState = Depends(get_state)) -> Response:  # noqa: B008
    p = state.pos(id)
    row = state.items.iloc[p]
    return Response(thumbnail_png(state.project, row["kind"], row["source"], id), media_type="image/png")


@router.get("/api/item")
def item(id: str = Query(..., max_length=500), state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    p = state.pos(id)
    return {**state.item_json(p), **Q.item_detail(state.project, p)}
