"""COCO JSON import/export: ground truth (images, categories, annotations) and results lists.

Boxes become :class:`~labelsieve.detect.boxes.Detections` (xyxy pixels); masks (polygons,
uncompressed or compressed RLE) become compressed COCO RLE dicts with a text ``counts``. RLE is
encoded/decoded with ``pycocotools`` (``pip install pycocotools``), imported only when masks are
present. Crowd annotations (``iscrowd=1``) are not supported: they are dropped with a warning.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labelsieve._atomic import atomic_write_text
from labelsieve.detect.boxes import (
    DEFAULT_TOLERANCE,
    Detections,
    xywh_to_xyxy,
    xyxy_to_xywh,
)
from labelsieve.errors import InputError, MissingDependencyError

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ RLE
def _mask_api() -> Any:
    try:
        from pycocotools import mask as mask_api
    except ImportError as exc:  # pragma: no cover - exercised only without pycocotools
        raise MissingDependencyError(
            "masks need pycocotools for COCO RLE: pip install pycocotools"
        ) from exc
    return mask_api


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Binary mask (h, w) -> compressed COCO RLE ``{"size": [h, w], "counts": str}``.

    >>> m = np.zeros((4, 5), bool); m[1:3, 2:4] = True
    >>> rle = encode_mask(m); rle["size"], bool((decode_mask(rle) == m).all())
    ([4, 5], True)
    """
    api = _mask_api()
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InputError(f"a mask must be 2-D (h, w); got shape {m.shape}.")
    rle = api.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """Stack of binary masks (n, h, w) -> list of RLE dicts (one pycocotools call)."""
    api = _mask_api()
    m = np.asarray(masks)
    if m.ndim != 3:
        raise InputError(f"masks must be 3-D (n, h, w); got shape {m.shape}.")
    if len(m) == 0:
        return []
    rles = api.encode(np.asfortranarray(np.transpose(m.astype(np.uint8), (1, 2, 0))))
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def decode_mask(rle: Mapping[str, Any]) -> np.ndarray:
    """Compressed or uncompressed COCO RLE -> bool array (h, w)."""
    api = _mask_api()
    return api.decode(_to_compressed(rle)).astype(bool)


def mask_area(rles: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Pixel count of each RLE mask."""
    if not len(rles):
        return np.zeros(0)
    return np.asarray(_mask_api().area([_to_compressed(r) for r in rles]), dtype=np.float64)


def mask_boxes(rles: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Tight xyxy box of each RLE mask, shape (n, 4)."""
    if not len(rles):
        return np.zeros((0, 4))
    return xywh_to_xyxy(_mask_api().toBbox([_to_compressed(r) for r in rles]))


def _to_compressed(rle: Mapping[str, Any]) -> dict[str, Any]:
    h, w = (int(s) for s in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE
        return _mask_api().frPyObjects({"size": [h, w], "counts": counts}, h, w)
    return {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def _segmentation_to_rle(seg: Any, h: int, w: int, where: str) -> dict[str, Any]:
    api = _mask_api()
    if isinstance(seg, list):  # polygons
        if not seg or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg):
            raise InputError(f"{where}: segmentation polygons must be lists of >= 3 (x, y) pairs.")
        r = api.merge(api.frPyObjects(seg, h, w))
        return {"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")}
    if isinstance(seg, Mapping) and "counts" in seg and "size" in seg:
        r = _to_compressed(seg)
        c = r["counts"]
        return {"size": [int(s) for s in r["size"]], "counts": c.decode("ascii") if isinstance(c, bytes) else c}
    raise InputError(f"{where}: segmentation is neither polygons nor an RLE dict ({type(seg).__name__}).")


# ---------------------------------------------------------------------------------- reading
def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"{path}: file not found.")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}).") from exc


def _annotation_frame(anns: list[dict[str, Any]], path: Path, what: str, need_score: bool) -> pd.DataFrame:
    need = ["image_id", "category_id", "bbox"] + (["score"] if need_score else [])
    df = pd.DataFrame.from_records(anns) if anns else pd.DataFrame(columns=need)
    for c in need:
        if c not in df.columns or df[c].isna().any():
            r = 0 if c not in df.columns else int(np.flatnonzero(df[c].isna().to_numpy())[0])
            raise InputError(f"{path}: {what} {r} has no '{c}'.")
    bbox_ok = np.array([isinstance(b, (list, tuple)) and len(b) == 4 for b in df["bbox"]], bool)
    if not bbox_ok.all():
        r = int(np.flatnonzero(~bbox_ok)[0])
        raise InputError(f"{path}: {what} {r} (image {df['image_id'].iloc[r]}): bbox {df['bbox'].iloc[r]!r} "
                         "is not [x, y, width, height].")
    try:
        xywh = np.array(df["bbox"].tolist(), dtype=np.float64).reshape(-1, 4)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: a bbox holds a non-number ({exc}).") from exc
    neg = (xywh[:, 2] <= 0) | (xywh[:, 3] <= 0)
    if neg.any():
        r = int(np.flatnonzero(neg)[0])
        raise InputError(
            f"{path}: {what} {r} (image {df['image_id'].iloc[r]}, category {df['category_id'].iloc[r]}): "
            f"bbox {xywh[r].tolist()} has a negative or zero width/height."
        )
    xyxy = xywh_to_xyxy(xywh)
    for c, kind in (("image_id", "integer"), ("category_id", "integer"), ("score", "number")):
        if c in df.columns:
            num = pd.to_numeric(df[c], errors="coerce")
            bad = num.isna().to_numpy() | ((num % 1 != 0).to_numpy() if kind == "integer" else False)
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise InputError(f"{path}: {what} {r}: {c} {df[c].iloc[r]!r} is not an {kind}."
                                 if kind == "integer" else f"{path}: {what} {r}: {c} {df[c].iloc[r]!r} is not a number.")
    out = pd.DataFrame(
        {
            "image_id": df["image_id"].astype(np.int64).to_numpy(),
            "x1": xyxy[:, 0], "y1": xyxy[:, 1], "x2": xyxy[:, 2], "y2": xyxy[:, 3],
            "category_id": df["category_id"].astype(np.int64).to_numpy(),
            "score": df["score"].astype(np.float64).to_numpy() if "score" in df.columns else np.nan,
        }
    )
    if "iscrowd" in df.columns:
        crowd = df["iscrowd"].fillna(0).astype(int).to_numpy() == 1
        if crowd.any():
            logger.warning("%s: dropping %d crowd annotation(s) (iscrowd=1 is not supported)", path, crowd.sum())
            out["_drop"] = crowd
    if "segmentation" in df.columns:
        out["_seg"] = df["segmentation"].to_numpy()
    return out


def _attach_masks(boxes: pd.DataFrame, images: pd.DataFrame, path: Path, what: str) -> pd.DataFrame:
    if "_drop" in boxes.columns:
        boxes = boxes[~boxes["_drop"].to_numpy()].drop(columns="_drop").reset_index(drop=True)
    if "_seg" not in boxes.columns:
        return boxes
    seg = boxes.pop("_seg").to_numpy()
    has = np.array([s is not None and not (isinstance(s, float) and np.isnan(s)) and s != [] for s in seg], bool)
    if not has.any():
        return boxes
    size = images.set_index("image_id")[["height", "width"]]
    pos = size.index.get_indexer(boxes["image_id"].to_numpy())
    hw = size.to_numpy()
    masks: list[Any] = [None] * len(boxes)
    for r in np.flatnonzero(has):  # one pycocotools call per mask (polygons differ per box)
        if pos[r] < 0:
            raise InputError(f"{path}: {what} {r}: image id {boxes['image_id'].iat[r]} is not in the image list.")
        h, w = int(hw[pos[r], 0]), int(hw[pos[r], 1])
        masks[r] = _segmentation_to_rle(seg[r], h, w, f"{path}: {what} {r} (image {boxes['image_id'].iat[r]})")
    boxes["mask"] = pd.Series(masks, dtype=object)
    return boxes


def _images_frame(imgs: list[dict[str, Any]], path: Path) -> pd.DataFrame:
    df = pd.DataFrame.from_records(imgs) if imgs else pd.DataFrame(columns=["id", "file_name", "width", "height"])
    for c in ("id", "width", "height"):
        if c not in df.columns or df[c].isna().any():
            r = 0 if c not in df.columns else int(np.flatnonzero(df[c].isna().to_numpy())[0])
            raise InputError(f"{path}: image entry {r} has no '{c}'.")
    names = df["file_name"].astype(str) if "file_name" in df.columns else df["id"].astype(str)
    return pd.DataFrame(
        {"image_id": df["id"].astype(np.int64).to_numpy(), "file_name": names.to_numpy(),
         "width": df["width"].astype(np.int64).to_numpy(), "height": df["height"].astype(np.int64).to_numpy()}
    )


def read_coco_gt(
    path: str | os.PathLike[str], *, tolerance: float = DEFAULT_TOLERANCE, outside: str = "error"
) -> Detections:
    """Read a COCO ground-truth JSON (``images``, ``categories``, ``annotations``)."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= set(data):
        raise InputError(f"{path}: a COCO ground-truth file needs 'images', 'annotations' and 'categories' keys.")
    images = _images_frame(data["images"], path)
    cats = _categories(data["categories"], path)
    boxes = _annotation_frame(data["annotations"], path, "annotation", need_score=False)
    boxes["score"] = np.nan
    boxes = _attach_masks(boxes, images, path, "annotation")
    return Detections(boxes, images, cats, source=str(path), tolerance=tolerance, outside=outside)


def _categories(cats: list[dict[str, Any]], path: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or "id" not in c:
            raise InputError(f"{path}: category entry {i} has no 'id'.")
        if int(c["id"]) in out:
            raise InputError(f"{path}: category id {c['id']} is listed twice.")
        out[int(c["id"])] = str(c.get("name", c["id"]))
    return out


def read_coco_results(
    path: str | os.PathLike[str],
    reference: Detections,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    outside: str = "error",
) -> Detections:
    """Read a COCO results JSON (a list of ``{image_id, category_id, bbox, score[, segmentation]}``).

    ``reference`` supplies the images (sizes) and categories, usually the ground truth of the
    verified images or a COCO file listing the images that were run.
    """
    path = Path(path)
    data = _load_json(path)
    if isinstance(data, dict) and "annotations" in data:
        data = data["annotations"]
    if not isinstance(data, list):
        raise InputError(f"{path}: a COCO results file is a JSON list of detections.")
    boxes = _annotation_frame(data, path, "detection", need_score=True)
    boxes = _attach_masks(boxes, reference.images, path, "detection")
    return Detections(boxes, reference.images, reference.categories, source=str(path),
                      tolerance=tolerance, outside=outside)


def read_coco(path: str | os.PathLike[str], reference: Detections | None = None, **kw: Any) -> Detections:
    """Ground truth or results, by the file's shape (a results list needs ``reference``)."""
    path = Path(path)
    data = _load_json(path)
    if isinstance(data, dict) and "images" in data:
        return read_coco_gt(path, **kw)
    if reference is None:
        raise InputError(f"{path}: a COCO results list needs the images and categories from a ground-truth "
                         "COCO file (--images GT.json).")
    return read_coco_results(path, reference, **kw)


# ---------------------------------------------------------------------------------- writing
def _annotations(dets: Detections, with_score: bool) -> list[dict[str, Any]]:
    b = dets.boxes
    xywh = xyxy_to_xywh(dets.xyxy)
    masks: list[Any] = b["mask"].tolist() if "mask" in b.columns else [None] * len(b)
    masks = [None if m is None or (isinstance(m, float) and np.isnan(m)) else m for m in masks]
    has = np.array([m is not None for m in masks], bool)
    area = xywh[:, 2] * xywh[:, 3]
    if has.any():
        area[has] = mask_area([masks[i] for i in np.flatnonzero(has)])
    img = b["image_id"].to_numpy().tolist()
    cat = b["category_id"].to_numpy().tolist()
    score = b["score"].to_numpy().tolist()
    boxes = xywh.tolist()
    areas = area.tolist()
    out = []
    for i in range(len(b)):  # building JSON objects is inherently per box
        a: dict[str, Any] = {"image_id": img[i], "category_id": cat[i], "bbox": boxes[i]}
        if with_score:
            a["score"] = score[i]
        else:
            a.update(id=i + 1, area=areas[i], iscrowd=0)
        if masks[i] is not None:
            a["segmentation"] = {"size": list(masks[i]["size"]), "counts": _counts_str(masks[i]["counts"])}
        out.append(a)
    return out


def _counts_str(c: Any) -> Any:
    if isinstance(c, bytes):
        return c.decode("ascii")
    return c


def write_coco_gt(dets: Detections, path: str | os.PathLike[str]) -> Path:
    """Write a COCO ground-truth JSON (atomically). Scores, if any, are dropped."""
    im = dets.images
    data = {
        "images": [
            {"id": int(i), "file_name": str(f), "width": int(w), "height": int(h)}
            for i, f, w, h in zip(im["image_id"], im["file_name"], im["width"], im["height"], strict=True)
        ],
        "categories": [{"id": k, "name": v} for k, v in sorted(dets.categories.items())],
        "annotations": _annotations(dets, with_score=False),
    }
    return atomic_write_text(path, json.dumps(data))


def write_coco_results(dets: Detections, path: str | os.PathLike[str]) -> Path:
    """Write a COCO results JSON list (atomically); every box needs a finite score."""
    s = dets.scores
    if len(s) and not np.isfinite(s).all():
        r = int(np.flatnonzero(~np.isfinite(s))[0])
        raise InputError(f"{dets.source}: box at row {r} has no score; a COCO results file needs scores "
                         "(write ground truth with write_coco_gt).")
    return atomic_write_text(path, json.dumps(_annotations(dets, with_score=True)))
