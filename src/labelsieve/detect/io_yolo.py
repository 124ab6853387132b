"""YOLO txt import/export.

One ``<image stem>.txt`` per image; one line per box: ``class cx cy w h [score]`` with the centre
and size normalised by the image width/height and ``class`` the 0-based index into the class list
(``classes.txt``, one name per line). Class index ``i`` maps to the ``i``-th smallest category id
of the :class:`~labelsieve.detect.boxes.Detections`, so COCO -> YOLO -> COCO keeps the ids when the
same categories are given back.

YOLO files do not store image sizes: give them as an image table (``images=`` a DataFrame with
``IMAGE_COLUMNS``) or an image folder (sizes read from the image headers with Pillow; an image
that cannot be decoded is an error naming the file).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from labelsieve._atomic import replace_directory
from labelsieve.detect.boxes import DEFAULT_TOLERANCE, Detections
from labelsieve.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def image_table(folder: str | os.PathLike[str], *, verify: bool = True) -> pd.DataFrame:
    """Image table of every image file in ``folder`` (sorted by name; ids 1..N).

    Sizes come from the image headers; ``verify=True`` also checks the file decodes
    (``PIL.Image.verify``). A file that cannot be read raises :class:`InputError` naming it.
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: image folder not found.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    sizes = []
    for p in files:  # one header read per image
        try:
            with Image.open(p) as im:
                sizes.append(im.size)
                if verify:
                    im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"{p}: the image cannot be decoded ({type(exc).__name__}: {exc}).") from exc
    wh = np.array(sizes, dtype=np.int64).reshape(-1, 2)
    return pd.DataFrame({"image_id": np.arange(1, len(files) + 1, dtype=np.int64),
                         "file_name": [p.name for p in files], "width": wh[:, 0], "height": wh[:, 1]})


def _category_map(categories: Mapping[int, str] | Sequence[str]) -> dict[int, str]:
    if isinstance(categories, Mapping):
        return {int(k): str(v) for k, v in categories.items()}
    return {i: str(n) for i, n in enumerate(categories)}


def read_classes_file(path: str | os.PathLike[str]) -> list[str]:
    """Class names, one per line (``classes.txt``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: classes file not found.")
    names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not names:
        raise InputError(f"{path}: no class names.")
    return names


def _bad_line(path: Path, predicate_msg: str, ordinal: int) -> str:
    """Line number (1-based) of the ``ordinal``-th non-blank line of ``path`` (error path only)."""
    k = -1
    for no, ln in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if ln.strip():
            k += 1
            if k == ordinal:
                return f"{path} line {no}: {predicate_msg} ({ln.strip()!r})"
    return f"{path}: {predicate_msg}"


def read_yolo(
    labels_dir: str | os.PathLike[str],
    *,
    images: pd.DataFrame | str | os.PathLike[str],
    categories: Mapping[int, str] | Sequence[str] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    outside: str = "error",
) -> Detections:
    """Read YOLO txt labels (or predictions, when lines carry a 6th score column).

    Parameters
    ----------
    labels_dir : folder of ``<stem>.txt`` files.
    images : image table (DataFrame) or image folder; every txt file must name one of its images.
    categories : names by id, or a list (ids 0..K-1); default ``labels_dir/classes.txt``.
    """
    labels_dir = Path(labels_dir)
    if not labels_dir.is_dir():
        raise InputError(f"{labels_dir}: labels folder not found.")
    img = image_table(images) if not isinstance(images, pd.DataFrame) else images.reset_index(drop=True)
    if categories is None:
        categories = read_classes_file(labels_dir / "classes.txt")
    cats = _category_map(categories)
    cat_ids = np.array(sorted(cats), dtype=np.int64)
    stems = pd.Index([Path(f).stem for f in img["file_name"].astype(str)])
    if stems.has_duplicates:
        raise InputError(f"image table: two images share the file stem {stems[stems.duplicated()][0]!r}; "
                         "YOLO names label files by stem.")
    files = sorted(p for p in labels_dir.glob("*.txt") if p.name != "classes.txt")
    pos = stems.get_indexer([p.stem for p in files])
    if (pos < 0).any():
        f = files[int(np.flatnonzero(pos < 0)[0])]
        raise InputError(f"{f}: no image named {f.stem}.* in the image list.")
    chunks = []
    for k, p in enumerate(files):  # one regex pass per file: prefix every non-blank line with its file
        chunks.append(re.sub(r"(?m)^[ \t]*(?=\S)", f"{k} ", p.read_text(encoding="utf-8")))
        if chunks[-1] and not chunks[-1].endswith("\n"):
            chunks[-1] += "\n"
    text = "".join(chunks)
    cols = ["file", "cls", "cx", "cy", "w", "h", "score", "extra"]
    if text.strip():
        try:
            df = pd.read_csv(io.StringIO(text), sep=r"\s+", header=None, names=cols, dtype=np.float64,
                             engine="c")
        except (ValueError, pd.errors.ParserError):
            df = _locate_parse_error(files)
    else:
        df = pd.DataFrame({c: np.zeros(0) for c in cols})
    fidx = df["file"].to_numpy().astype(np.int64)
    ordinal = np.arange(len(df)) - np.searchsorted(fidx, fidx)  # k-th line within its file
    a = df[["cls", "cx", "cy", "w", "h"]].to_numpy()

    def fail(mask: np.ndarray, msg: str) -> None:
        if mask.any():
            r = int(np.flatnonzero(mask)[0])
            raise InputError(_bad_line(files[fidx[r]], msg, int(ordinal[r])))

    fail(np.isnan(a).any(axis=1), "a line needs 5 numbers: class cx cy w h [score]")
    fail(df["extra"].notna().to_numpy(), "too many numbers on the line (at most 6)")
    cls = a[:, 0]
    fail((cls != np.round(cls)) | (cls < 0) | (cls >= len(cat_ids)),
         f"unknown class index (classes are 0..{len(cat_ids) - 1})")
    fail((a[:, 3] <= 0) | (a[:, 4] <= 0), "negative or zero box width/height")
    ipos = pos[fidx]
    W = img["width"].to_numpy(np.float64)[ipos]
    H = img["height"].to_numpy(np.float64)[ipos]
    x1, x2 = (a[:, 1] - a[:, 3] / 2) * W, (a[:, 1] + a[:, 3] / 2) * W
    y1, y2 = (a[:, 2] - a[:, 4] / 2) * H, (a[:, 2] + a[:, 4] / 2) * H
    if outside == "error":
        t = tolerance
        fail((x1 < -t) | (y1 < -t) | (x2 > W + t) | (y2 > H + t),
             "box outside the image (normalised coordinates must stay within [0, 1])")
    boxes = pd.DataFrame({"image_id": img["image_id"].to_numpy()[ipos].astype(np.int64), "x1": x1, "y1": y1,
                          "x2": x2, "y2": y2, "category_id": cat_ids[cls.astype(np.int64)],
                          "score": df["score"].to_numpy()})
    return Detections(boxes, img, cats, source=str(labels_dir), tolerance=tolerance, outside=outside)


def _locate_parse_error(files: list[Path]) -> pd.DataFrame:
    for p in files:  # error path only: find the first line that is not numbers
        for no, ln in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                [float(x) for x in ln.split()]
            except ValueError:
                raise InputError(f"{p} line {no}: not a number in {ln.strip()!r}.") from None
    raise InputError(f"{files[0].parent}: YOLO label files could not be parsed.")


def write_yolo(dets: Detections, out_dir: str | os.PathLike[str], *, scores: bool | None = None,
               overwrite: bool = False) -> Path:
    """Write YOLO txt files (one per image, empty when it has no box) and ``classes.txt``.

    All files are written to a temporary sibling folder which is then moved to ``out_dir``, so a
    failure leaves nothing half-written. ``scores``: add the score column (default: when the
    boxes are predictions).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise InputError(f"{out_dir}: already exists (pass overwrite=True / --overwrite to replace it).")
    img = dets.images
    stems = pd.Index([Path(f).stem for f in img["file_name"].astype(str)])
    if stems.has_duplicates:
        raise InputError(f"{dets.source}: two images share the file stem {stems[stems.duplicated()][0]!r}.")
    with_score = dets.is_prediction if scores is None else scores
    cat_ids = dets.category_ids
    b = dets.boxes
    ipos = pd.Index(img["image_id"].to_numpy()).get_indexer(b["image_id"].to_numpy())
    W = img["width"].to_numpy(np.float64)[ipos]
    H = img["height"].to_numpy(np.float64)[ipos]
    xyxy = dets.xyxy
    table = pd.DataFrame({
        "cls": np.searchsorted(cat_ids, b["category_id"].to_numpy()),
        "cx": (xyxy[:, 0] + xyxy[:, 2]) / 2 / W, "cy": (xyxy[:, 1] + xyxy[:, 3]) / 2 / H,
        "w": (xyxy[:, 2] - xyxy[:, 0]) / W, "h": (xyxy[:, 3] - xyxy[:, 1]) / H,
    })
    if with_score:
        table["score"] = b["score"].to_numpy()
    order = np.argsort(ipos, kind="stable")
    text = table.iloc[order].to_csv(sep=" ", header=False, index=False, float_format="%.8g")
    lines = np.array(text.splitlines(), dtype=object)
    cuts = np.searchsorted(ipos[order], np.arange(len(img) + 1))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        for i, stem in enumerate(stems):  # one file per image
            body = "\n".join(lines[cuts[i]:cuts[i + 1]])
            (tmp / f"{stem}.txt").write_text(body + ("\n" if body else ""), encoding="utf-8")
        (tmp / "classes.txt").write_text("\n".join(dets.categories[int(c)] for c in cat_ids) + "\n",
                                         encoding="utf-8")
        replace_directory(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
