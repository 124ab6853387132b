"""The review page's API: the queue of auto-labels (least confident first) and review decisions."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request

from labelsieve.app.routers.common import AppState, get_state
from labelsieve.errors import InputError
from labelsieve.store import queries as Q
from labelsieve.store import review_queries as RQ

MAX_PAGE = Q.MAX_REVIEW_IDS
MAX_INT = 2**31 - 1  # what an integer column holds in every database
router = APIRouter()


@router.get("/api/review")
def review_queue(cls: str | None = Query(None, alias="class", max_length=200),
                 round: int | None = Query(None, ge=-MAX_INT, le=MAX_INT),
                 source: str = Query("auto", max_length=20),
                 min_conf: float | None = Query(None, ge=0.0, le=1.0),
                 max_conf: float | None = Query(None, ge=0.0, le=1.0),
                 who: str | None = Query(None, max_length=200),
                 voter: str | None = Query(None, max_length=200),
                 disagreement: bool = Query(False),
                 page: int = Query(0, le=MAX_INT), page_size: int = Query(50, ge=1, le=MAX_PAGE),
                 state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    """The review queue, least confident first: ``source`` (default auto; ``any``), ``class``,
    ``round``, confidence range ``min_conf``..``max_conf``, ``who`` made the label, ``voter`` (items
    that labeler has a live vote on), ``disagreement`` (items whose live votes disagree)."""
    total, rows = RQ.review_queue(state.project, cls=cls, round=round, source=source, min_conf=min_conf,
                                  max_conf=max_conf, who=who, voter=voter, disagreement=disagreement, page=page,
                                  page_size=page_size)
    items = [{**state.item_json(int(p)), "label": lab, "confidence": Q.clean(conf), "round": Q.clean(rnd),
              "source": src, "who": w}
             for p, lab, conf, rnd, src, w in zip(rows["pos"], rows["label"], rows["confidence"], rows["round"],
                                                  rows["source"], rows["who"], strict=True)]
    return {"total": total, "page": page, "page_size": page_size, "items": items}


@router.post("/api/review")
def review(request: Request, body: dict = Body(...),  # noqa: B008
           state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    reviewer = state.actor(request, body.get("reviewer"), role="reviewer")
    action = body.get("action")
    if action not in Q.REVIEW_ACTIONS:
        raise InputError(f"action must be accept, reject or relabel; got {str(action)[:50]!r}")
    ids = body.get("ids") or []
    if not isinstance(ids, list) or not ids or len(ids) > MAX_PAGE:
        raise InputError(f"ids must be a list of 1-{MAX_PAGE} item ids")
    req = str(body.get("request_id") or uuid.uuid4().hex)[:100]
    n = Q.review_items(state.project, [state.pos(str(i)) for i in ids], action, who=reviewer,
                       label=None if action != "relabel" else str(body.get("label", "")), key=req)
    return {"events": n, "action": action}
