"""Box review in the web app: images with their proposed boxes and masks, decisions as box events.

This module holds what the box routes (:mod:`labelsieve.app.routers.boxes`) return: image and
mask PNGs (the box records and the page query are
:func:`labelsieve.store.queries.box_page` and :func:`~labelsieve.store.queries.box_records`). Routes:

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
from typing import Any

import numpy as np

from labelsieve.app.routers.common import AppState, open_item_image

MAX_IMAGE_PX = 1600
MAX_PAGE_IMAGES = 100
MAX_IDS = 2000


def image_png(state: AppState, pos: int, item_id: str) -> bytes:
    """The full image of an item as PNG (downscaled only when larger than :data:`MAX_IMAGE_PX`)."""
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
