"""The HTML pages and their static files (nothing in them is generated: pages fetch the API)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
PAGES = {"/": "index.html", "/label": "label.html", "/review": "review.html", "/dashboard": "dashboard.html",
         "/map": "map.html", "/boxes": "boxes.html"}

router = APIRouter()


def _page_route(route: str, page: str) -> None:
    def _page() -> FileResponse:
        return FileResponse(STATIC / page, media_type="text/html")

    _page.__name__ = f"page_{Path(page).stem}"
    router.add_api_route(route, _page, methods=["GET"], include_in_schema=False)


for route, page in PAGES.items():
    _page_route(route, page)


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> FileResponse:
    try:
        path = (STATIC / name).resolve()
        found = path.parent == STATIC and path.is_file()
    except (OSError, ValueError):  # a NUL byte, a name too long for the file system
        found = False
    if not found:
        raise HTTPException(404, "no such file")
    return FileResponse(path)
