"""The internal form of boxes and masks: :class:`Detections`.

One table of boxes (one row per box) plus the images they belong to and the category names:

* ``boxes``: ``image_id`` (int64), ``x1, y1, x2, y2`` (float64, pixels, xyxy, x2 > x1),
  ``category_id`` (int64), ``score`` (float64; NaN for ground truth), and optionally ``mask``
  (a COCO RLE dict ``{"size": [h, w], "counts": str}`` or None).
* ``images``: ``image_id`` (int64, unique), ``file_name`` (str), ``width``, ``height`` (int64).
* ``categories``: ``{category_id: name}``.

Ground truth and predictions share the form; predictions have finite scores. Every importer
(COCO JSON, YOLO txt, a detector) builds this form and calls :func:`validate_detections`, which
names the first bad box (source, row, image, category, value).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labelsieve._atomic import replace_directory
from labelsieve._validation import check_option
from labelsieve.errors import InputError

BOX_COLUMNS = ("image_id", "x1", "y1", "x2", "y2", "category_id", "score")
IMAGE_COLUMNS = ("image_id", "file_name", "width", "height")
#: Boxes may poke out of the image by this many pixels (rounding in exported files) before it is an error.
DEFAULT_TOLERANCE = 1.0


def empty_boxes(with_mask: bool = False) -> pd.DataFrame:
    """An empty box table with the right dtypes."""
    df = pd.DataFrame(
        {
            "image_id": np.zeros(0, np.int64),
            "x1": np.zeros(0),
            "y1": np.zeros(0),
            "x2": np.zeros(0),
            "y2": np.zeros(0),
            "category_id": np.zeros(0, np.int64),
            "score": np.zeros(0),
        }
    )
    if with_mask:
        df["mask"] = pd.Series([], dtype=object)
    return df


def xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    """COCO ``[x, y, w, h]`` -> ``[x1, y1, x2, y2]``, shape (n, 4).

    >>> xywh_to_xyxy(np.array([[10.0, 20.0, 5.0, 4.0]])).tolist()
    [[10.0, 20.0, 15.0, 24.0]]
    """
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_xywh(b: np.ndarray) -> np.ndarray:
    """``[x1, y1, x2, y2]`` -> COCO ``[x, y, w, h]``, shape (n, 4)."""
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def _describe(boxes: pd.DataFrame, images: pd.DataFrame | None, r: int, source: str) -> str:
    row = boxes.iloc[r]
    img = int(row["image_id"])
    name = ""
    if images is not None and len(images):
        hit = images.index[images["image_id"].to_numpy() == img]
        if len(hit):
            name = f" '{images.loc[hit[0], 'file_name']}'"
    return f"{source}: box at row {r} (image {img}{name}, category {int(row['category_id'])})"


def validate_detections(
    boxes: pd.DataFrame,
    images: pd.DataFrame,
    categories: Mapping[int, str],
    *,
    source: str = "<memory>",
    tolerance: float = DEFAULT_TOLERANCE,
    outside: str = "error",
) -> pd.DataFrame:
    """Check a box table against its images and categories; return a clean copy.

    Raises :class:`InputError` naming the first bad box: a missing column, a non-finite
    coordinate, a negative or zero size (``x2 <= x1``), a box outside its image by more than
    ``tolerance`` pixels (``outside="clip"`` clips instead), an unknown image or category id, a
    non-finite score, or a mask whose size is not its image's. The caller's frame is not modified.
    """
    check_option("outside", outside, owner="validate_detections", options=("error", "clip"))
    missing = [c for c in BOX_COLUMNS if c not in boxes.columns]
    if missing:
        raise InputError(f"{source}: box table lacks column(s) {missing}; has {list(boxes.columns)}.")
    missing = [c for c in IMAGE_COLUMNS if c not in images.columns]
    if missing:
        raise InputError(f"{source}: image table lacks column(s) {missing}; has {list(images.columns)}.")
    images = images.reset_index(drop=True).copy()
    images["image_id"] = images["image_id"].astype(np.int64)
    images["width"] = images["width"].astype(np.int64)
    images["height"] = images["height"].astype(np.int64)
    images["file_name"] = images["file_name"].astype(str)
    dup = images["image_id"].duplicated()
    if dup.any():
        r = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(f"{source}: image id {images['image_id'].iloc[r]} is listed twice (row {r}).")
    bad = (images["width"].to_numpy() <= 0) | (images["height"].to_numpy() <= 0)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{source}: image {images['image_id'].iloc[r]} '{images['file_name'].iloc[r]}' has size "
            f"{images['width'].iloc[r]}x{images['height'].iloc[r]}; width and height must be > 0."
        )
    out = boxes.reset_index(drop=True).copy()
    out["image_id"] = out["image_id"].astype(np.int64)
    out["category_id"] = out["category_id"].astype(np.int64)
    for c in ("x1", "y1", "x2", "y2", "score"):
        out[c] = out[c].astype(np.float64)
    xyxy = out[["x1", "y1", "x2", "y2"]].to_numpy()

    def fail(mask: np.ndarray, what: str | Callable[[int], str]) -> None:
        if mask.any():
            r = int(np.flatnonzero(mask)[0])
            raise InputError(f"{_describe(out, images, r, source)}: {what(r) if callable(what) else what}.")

    fail(~np.isfinite(xyxy).all(axis=1), lambda r: f"coordinates {xyxy[r].tolist()} are not all finite")
    fail(
        (xyxy[:, 2] <= xyxy[:, 0]) | (xyxy[:, 3] <= xyxy[:, 1]),
        lambda r: f"has a negative or zero size: width {xyxy[r, 2] - xyxy[r, 0]:g}, "
        f"height {xyxy[r, 3] - xyxy[r, 1]:g} (xyxy {xyxy[r].tolist()})",
    )
    src = pd.Index(images["image_id"].to_numpy()).get_indexer(out["image_id"].to_numpy())
    found = src >= 0
    fail(~found, lambda r: f"image id {out['image_id'].iloc[r]} is not in the image list")
    cat_ids = np.array(sorted(int(k) for k in categories), dtype=np.int64)
    fail(
        ~np.isin(out["category_id"].to_numpy(), cat_ids),
        lambda r: f"category id {out['category_id'].iloc[r]} is unknown (known ids: {cat_ids.tolist()[:20]})",
    )
    score = out["score"].to_numpy()
    fail(np.isinf(score), lambda r: f"score {score[r]} is not finite")
    if len(out):
        W = images["width"].to_numpy()[src].astype(np.float64)
        H = images["height"].to_numpy()[src].astype(np.float64)
        if outside == "clip":
            xyxy = np.stack(
                [np.clip(xyxy[:, 0], 0, W), np.clip(xyxy[:, 1], 0, H), np.clip(xyxy[:, 2], 0, W),
                 np.clip(xyxy[:, 3], 0, H)], axis=1)
            out[["x1", "y1", "x2", "y2"]] = xyxy
            fail(
                (xyxy[:, 2] <= xyxy[:, 0]) | (xyxy[:, 3] <= xyxy[:, 1]),
                lambda r: "lies entirely outside its image",
            )
        else:
            t = tolerance
            off = (xyxy[:, 0] < -t) | (xyxy[:, 1] < -t) | (xyxy[:, 2] > W + t) | (xyxy[:, 3] > H + t)
            fail(
                off,
                lambda r: f"xyxy {np.round(xyxy[r], 2).tolist()} lies outside the image "
                f"(width {int(W[r])}, height {int(H[r])})",
            )
        if "mask" in out.columns:
            has = out["mask"].notna().to_numpy()
            if has.any():
                idx = np.flatnonzero(has)
                sizes = np.array([_mask_size(out["mask"].iat[i], out, images, int(i), source) for i in idx])
                wrong = (sizes[:, 0] != H[idx]) | (sizes[:, 1] != W[idx])
                if wrong.any():
                    j = int(np.flatnonzero(wrong)[0])
                    r = int(idx[j])
                    raise InputError(
                        f"{_describe(out, images, r, source)}: mask size {sizes[j, 0]}x{sizes[j, 1]} (h x w) "
                        f"does not match the image ({int(H[r])}x{int(W[r])})."
                    )
    return out


def _mask_size(m: Any, out: pd.DataFrame, images: pd.DataFrame, r: int, source: str) -> tuple[int, int]:
    if not isinstance(m, Mapping) or "size" not in m or "counts" not in m:
        raise InputError(
            f"{_describe(out, images, r, source)}: mask must be a COCO RLE dict with 'size' and 'counts'; "
            f"got {type(m).__name__}."
        )
    h, w = m["size"]
    return int(h), int(w)


@dataclass(eq=False)
class Detections:
    """Boxes (ground truth or predictions) over a set of images.

    Parameters
    ----------
    boxes : DataFrame — one row per box, columns ``BOX_COLUMNS`` (+ optional ``mask``).
    images : DataFrame — columns ``IMAGE_COLUMNS``.
    categories : dict int -> str
    source : str — where it came from (used in error messages).

    >>> imgs = pd.DataFrame({"image_id": [1], "file_name": ["a.png"], "width": [10], "height": [10]})
    >>> b = pd.DataFrame({"image_id": [1], "x1": [1.0], "y1": [1.0], "x2": [4.0], "y2": [5.0],
    ...                   "category_id": [3], "score": [0.9]})
    >>> d = Detections(b, imgs, {3: "cat"})
    >>> d.xyxy.tolist(), d.is_prediction
    ([[1.0, 1.0, 4.0, 5.0]], True)
    """

    boxes: pd.DataFrame
    images: pd.DataFrame
    categories: dict[int, str]
    source: str = "<memory>"
    meta: dict[str, Any] = field(default_factory=dict)
    validate: bool = True
    tolerance: float = DEFAULT_TOLERANCE
    outside: str = "error"

    def __post_init__(self) -> None:
        self.categories = {int(k): str(v) for k, v in dict(self.categories).items()}
        if self.validate:
            self.boxes = validate_detections(
                self.boxes, self.images, self.categories, source=self.source,
                tolerance=self.tolerance, outside=self.outside,
            )
            self.images = self.images.reset_index(drop=True).astype(
                {"image_id": np.int64, "width": np.int64, "height": np.int64, "file_name": str}
            )

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def xyxy(self) -> np.ndarray:
        """Box corners, float64 array of shape (n, 4)."""
        return self.boxes[["x1", "y1", "x2", "y2"]].to_numpy(dtype=np.float64)

    @property
    def scores(self) -> np.ndarray:
        return self.boxes["score"].to_numpy(dtype=np.float64)

    @property
    def is_prediction(self) -> bool:
        """True when every box has a score (predictions); ground truth has none."""
        return len(self.boxes) > 0 and bool(np.isfinite(self.scores).all())

    @property
    def has_masks(self) -> bool:
        return "mask" in self.boxes.columns and bool(self.boxes["mask"].notna().any())

    @property
    def category_ids(self) -> np.ndarray:
        return np.array(sorted(self.categories), dtype=np.int64)

    def select(self, keep: np.ndarray) -> Detections:
        """The same images and categories with only the boxes where ``keep`` is True."""
        return Detections(self.boxes[np.asarray(keep, bool)].reset_index(drop=True), self.images,
                          self.categories, source=self.source, meta=dict(self.meta), validate=False)

    def with_boxes(self, boxes: pd.DataFrame) -> Detections:
        return Detections(boxes, self.images, self.categories, source=self.source, meta=dict(self.meta))

    def subset_images(self, image_ids: np.ndarray) -> Detections:
        """Only these images and their boxes."""
        ids = np.asarray(image_ids, dtype=np.int64)
        return Detections(
            self.boxes[self.boxes["image_id"].isin(ids)].reset_index(drop=True),
            self.images[self.images["image_id"].isin(ids)].reset_index(drop=True),
            self.categories, source=self.source, meta=dict(self.meta), validate=False,
        )

    # ------------------------------------------------------------------ storage
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a directory with ``boxes.parquet``, ``images.parquet``, ``categories.json``.

        Written into a temporary sibling directory, then moved into place (an existing directory
        is replaced only once the new one is complete).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
        try:
            b = self.boxes.copy()
            if "mask" in b.columns:
                b["mask"] = [None if m is None or (isinstance(m, float) and np.isnan(m)) else json.dumps(_jsonable(m))
                             for m in b["mask"]]
            b.to_parquet(tmp / "boxes.parquet", index=False)
            self.images.to_parquet(tmp / "images.parquet", index=False)
            (tmp / "categories.json").write_text(
                json.dumps({"categories": {str(k): v for k, v in self.categories.items()}, "source": self.source})
            )
            replace_directory(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Detections:
        """Read a directory written by :meth:`save`."""
        path = Path(path)
        for f in ("boxes.parquet", "images.parquet", "categories.json"):
            if not (path / f).is_file():
                raise InputError(f"{path}: not a labelsieve detections directory (missing {f}).")
        b = pd.read_parquet(path / "boxes.parquet")
        if "mask" in b.columns:
            b["mask"] = [None if m is None else json.loads(m) for m in b["mask"]]
        meta = json.loads((path / "categories.json").read_text())
        cats = {int(k): v for k, v in meta["categories"].items()}
        return cls(b, pd.read_parquet(path / "images.parquet"), cats, source=str(path))


def _jsonable(m: Mapping[str, Any]) -> dict[str, Any]:
    counts = m["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": [int(s) for s in m["size"]], "counts": counts}
