"""The box review page's API (see :mod:`labelsieve.app.boxes` for the routes' contract)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response

from labelsieve.app.boxes import MAX_IDS, MAX_PAGE_IMAGES, image_png, mask_png
from labelsieve.app.routers.common import AppState, get_state
from labelsieve.errors import InputError
from labelsieve.store import boxes as B
from labelsieve.store import queries as Q

router = APIRouter()


@router.get("/api/boxes")
def boxes_page(cls: str | None = Query(None, alias="class", max_length=200),
               min: float | None = Query(None, allow_inf_nan=False),
               max: float | None = Query(None, allow_inf_nan=False),
               status: str | None = Query(None, max_length=20), page: int = Query(0, ge=0, le=2**31 - 1),
               page_size: int = Query(12, ge=1, le=MAX_PAGE_IMAGES),
               state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    out = Q.box_page(state.project, cls=cls, score_min=min, score_max=max, status=status, page=page,
                     page_size=page_size)
    for im in out["images"]:
        im["src"] = "/api/boxes/image?id=" + quote(im["id"], safe="")
    return out


@router.get("/api/boxes/image")
def boxes_image(id: str = Query(..., max_length=500), state: AppState = Depends(get_state)) -> Response:  # noqa: B008
    p = state.pos(id)
    return Response(image_png(state, p, id), media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/api/boxes/mask")
def boxes_mask(box: int = Query(..., ge=0, le=2**63 - 1), state: AppState = Depends(get_state)) -> Response:  # noqa: B008
    rle = B.mask_of(state.project, box)
    if rle is None:
        raise InputError(f"box {box} has no mask")
    return Response(mask_png(rle), media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})


@router.post("/api/boxes/review")
def boxes_review(request: Request, body: dict = Body(...),  # noqa: B008
                 state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    labeler = state.actor(request, body.get("labeler"), role="reviewer")
    action = body.get("action")
    if action not in ("accept", "reject", "relabel"):
        raise InputError(f"action must be accept, reject or relabel; got {str(action)[:50]!r}")
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_IDS:
        raise InputError(f"ids must be a list of 1-{MAX_IDS} box ids")
    cls = body.get("class")
    if action == "relabel" and not cls:
        raise InputError("relabel needs 'class', one of the project classes")
    if cls is not None and action != "relabel":
        raise InputError(f"'class' is only taken by relabel (got action {action!r})")
    if cls is not None and str(cls) not in state.classes:
        raise InputError(f"class {str(cls)[:100]!r} is not one of the project classes {state.classes}")
    key = str(body.get("key") or uuid.uuid4().hex)[:100]
    n = B.box_review(state.project, ids, action, who=labeler, code=None if cls is None else str(cls), key=f"web:{key}")
    cur = B.current_boxes(state.project, boxes=[int(i) for i in ids], order="id")
    return {"events": n, "action": action, "boxes": Q.box_records(cur, state.classes)}
