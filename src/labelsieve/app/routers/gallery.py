"""The gallery page and its API: every item with its current label and provenance, searchable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse

from labelsieve.app.routers.common import AppState, get_state
from labelsieve.store import review_queries as RQ

STATIC = Path(__file__).resolve().parent.parent / "static"
MAX_INT = 2**31 - 1
MAX_PAGE = 200
router = APIRouter()


@router.get("/gallery", include_in_schema=False)
def page_gallery() -> FileResponse:
    return FileResponse(STATIC / "gallery.html", media_type="text/html")


@router.get("/api/gallery")
def gallery(q: str | None = Query(None, max_length=200), cls: str | None = Query(None, alias="class", max_length=200),
            source: str | None = Query(None, max_length=20), page: int = Query(0, ge=0, le=MAX_INT),
            page_size: int = Query(48, ge=1, le=MAX_PAGE),
            state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    """Items in position order: ``q`` (substring of id or text), ``class``, ``source`` (a current
    source, ``unlabeled`` or ``rejected``), paged. Each with label, source, confidence, who, round."""
    total, rows = RQ.gallery(state.project, q=q, cls=cls, source=source, page=page, page_size=page_size)
    items = [{**state.item_json(r["pos"]), **{k: v for k, v in r.items() if k not in ("text", "kind", "id")}}
             for r in rows]
    return {"total": total, "page": page, "page_size": page_size, "items": items}
