"""Agreement metrics (shown on the dashboard): labelers' gold accuracy with Wilson intervals,
pairwise agreement, Krippendorff's alpha; live votes only (withdrawn votes do not count)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from labelsieve.app.routers.common import AppState, get_state
from labelsieve.store import review_queries as RQ

router = APIRouter()


@router.get("/api/agreement")
def agreement(state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    return RQ.agreement(state.project)
