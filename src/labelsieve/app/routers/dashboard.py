"""The dashboard page's API: counts, the latest run's rounds, labelers' accuracies, reliability."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from labelsieve.app.routers.common import AppState, get_state
from labelsieve.store import queries as Q

router = APIRouter()


@router.get("/api/dashboard")
def dashboard(state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    return Q.dashboard(state.project, state.session)
