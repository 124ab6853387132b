"""The threshold page's API: the latest run's coverage–bound curve per class (or global) and
applying its certified threshold (reviewers and admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import FileResponse

from labelsieve.app.routers.common import AppState, get_state
from labelsieve.app.routers.pages import STATIC
from labelsieve.runs import thresholds as T

router = APIRouter()


@router.get("/thresholds", include_in_schema=False)
def page_thresholds() -> FileResponse:
    return FileResponse(STATIC / "thresholds.html", media_type="text/html")


@router.get("/api/thresholds")
def thresholds(cls: str | None = Query(None, alias="class", max_length=200),
               state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    return T.threshold_curve(state.project, cls)


@router.post("/api/thresholds/apply")
def apply(request: Request, body: dict = Body(...),  # noqa: B008
          state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    """Record auto-label events at the latest run's certified thresholds as a new run."""
    who = state.actor(request, body.get("reviewer"), role="reviewer")
    return T.apply_certified(state.project, who=who)
