"""Box review in the web app: images with their proposed boxes and masks, decisions as box events.

Routes (added to the app by :func:`register`):

* ``GET /api/boxes?class=&min=&max=&status=&page=&page_size=`` -- images holding boxes that match
  the filters, ordered by their lowest-scoring *pending* matching box (then lowest score of any
  matching box; :func:`labelsieve.store.boxes.image_queue`), each with those boxes;
* ``GET /api/boxes/image?id=ITEM`` -- the image as PNG (longest side at most :data:`MAX_IMAGE_PX`);
* ``GET /api/boxes/mask?box=ID`` -- a box's mask decoded to a grey PNG (white = mask) at the size
  of its image, used by the page as an SVG luminance mask;
* ``POST /api/boxes/review {ids, action, class?, labeler, key?}`` -- one event per box
  (:func:`labelsieve.store.boxes.box_review`); returns the boxes' new state.

Drawing a missing box is not offered: export COCO (``labelsieve detect export-project``) and draw
it in CVAT or Label Studio.
"""

from __future__ import annotations

import io
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from labelsieve.errors import InputError
from labelsieve.store import boxes as B

if TYPE_CHECKING:
    from labelsieve.app.server import AppState

MAX_IMAGE_PX = 1600
MAX_PAGE_IMAGES = 100
MAX_IDS = 2000


def image_png(state: AppState, pos: int, item_id: str) -> bytes:
    """The full image of an item as PNG (downscaled only when larger than :data:`MAX_IMAGE_PX`)."""
    from labelsieve.app.server import open_item_image

    row = state.items.iloc[pos]
    im = open_item_image(state.project, str(row["kind"]), str(row["source"]), item_id)
    if max(im.size) > MAX_IMAGE_PX:
        im.thumbnail((MAX_IMAGE_PX, MAX_IMAGE_PX))
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def mask_png(rle: dict[str, Any]) -> bytes:
    """A COCO RLE mask as a grey PNG: 255 inside the mask, 0 outside."""
    from PIL import Image

    from labelsieve.detect.io_coco import decode_mask

    m = decode_mask(rle)
    buf = io.BytesIO()
    Image.fromarray((m * 255).astype(np.uint8), mode="L").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _float(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


def box_json(df: pd.DataFrame, classes: list[str]) -> list[dict[str, Any]]:
    """JSON records of :func:`~labelsieve.store.boxes.current_boxes` rows."""
    names = np.asarray(classes, dtype=object)
    out = []
    cols = zip(df["box"], df["item"], df["x1"], df["y1"], df["x2"], df["y2"], names[df["code"].to_numpy()],
               names[df["proposed"].to_numpy()], df["score"], df["status"], df["has_mask"], df["who"],
               df["decided_by"], strict=True)
    for b, it, x1, y1, x2, y2, cl, pr, sc, stt, hm, who, dec in cols:  # one JSON record per box
        out.append({"id": int(b), "item": int(it), "x1": float(x1), "y1": float(y1), "x2": float(x2),
                    "y2": float(y2), "class": cl, "proposed": pr, "score": _float(sc), "status": stt,
                    "mask": bool(hm), "who": who, "decided_by": dec})
    return out


def register(app: Any, state: AppState) -> None:
    """Add the box review routes to ``app`` (the FastAPI app of :func:`labelsieve.app.server.create_app`)."""
    from fastapi import Body, Query
    from fastapi.responses import Response

    project = state.project
    classes = list(project.classes)

    @app.get("/api/boxes")
    def boxes_page(cls: str | None = Query(None, alias="class", max_length=200),
                   min: float | None = Query(None, allow_inf_nan=False),
                   max: float | None = Query(None, allow_inf_nan=False),
                   status: str | None = Query(None, max_length=20), page: int = Query(0, ge=0),
                   page_size: int = Query(12, ge=1, le=MAX_PAGE_IMAGES)) -> dict[str, Any]:
        if cls and cls not in classes:
            raise InputError(f"class {cls[:100]!r} is not one of the project classes {classes}")
        if status and status not in B.STATUSES:
            raise InputError(f"status {status[:20]!r} is not one of {list(B.STATUSES)}")
        if min is not None and max is not None and min > max:
            raise InputError(f"the score range is empty: min {min:g} > max {max:g}")
        filt = {"cls": cls or None, "score_min": min, "score_max": max, "status": status or None}
        order, counts = B.image_queue(project, **filt)
        shown = order.iloc[page * page_size:(page + 1) * page_size]
        sizes = B.box_images(project, shown["item"].tolist()).set_index("item")
        sel = B.current_boxes(project, items=shown["item"].tolist(), **filt)
        per = {int(k): v for k, v in sel.groupby("item", sort=False)}
        images = []
        cols = zip(shown["item"], shown["image"], shown["lowest_pending"], shown["lowest"], strict=True)
        for it, name, pend, low in cols:  # one record per image
            w, h = (int(sizes.at[it, "width"]), int(sizes.at[it, "height"])) if it in sizes.index else (0, 0)
            images.append({"id": name, "pos": int(it), "width": w, "height": h, "src": "/api/boxes/image?id=" + quote(name, safe=""),
                           "lowest_pending": _float(pend), "lowest": _float(low),
                           "boxes": box_json(per[int(it)], classes)})
        return {"total_images": len(order), "total_boxes": int(order["n"].sum()), "page": page,
                "page_size": page_size, "counts": counts, "classes": classes, "images": images}

    @app.get("/api/boxes/image")
    def boxes_image(id: str = Query(..., max_length=500)) -> Response:
        p = state.pos(id)
        return Response(image_png(state, p, id), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/boxes/mask")
    def boxes_mask(box: int = Query(..., ge=0)) -> Response:
        rle = B.mask_of(project, box)
        if rle is None:
            raise InputError(f"box {box} has no mask")
        return Response(mask_png(rle), media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})

    @app.post("/api/boxes/review")
    def boxes_review(body: dict = Body(...)) -> dict[str, Any]:  # noqa: B008
        labeler = str(body.get("labeler", ""))[:300]
        project.store.require_labeler(labeler)
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
        if cls is not None and str(cls) not in classes:
            raise InputError(f"class {str(cls)[:100]!r} is not one of the project classes {classes}")
        key = str(body.get("key") or uuid.uuid4().hex)[:100]
        n = B.box_review(project, ids, action, who=labeler, code=None if cls is None else str(cls),
                         key=f"web:{key}")
        cur = B.current_boxes(project, boxes=[int(i) for i in ids], order="id")
        return {"events": n, "action": action, "boxes": box_json(cur, classes)}
