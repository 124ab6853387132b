"""Load a folder of images as a pool: class sub-folders give ground truth, loose files do not.

Layout::

    root/cat/a.png, root/dog/b.jpg   -> classes ("cat", "dog"), y known
    root/x.png, root/y.png           -> no truth (pass classes=)
    root/cat/a.png + root/x.png      -> x.png is an unlabeled item (y = -1)

Features are the resized pixel intensities scaled to [0, 1] and flattened (row-major,
channel-last), optionally followed by a normalised histogram (gray: intensity; RGB: H, S, V).
``raw`` holds the file paths (strings); ids are the paths relative to the root (POSIX style).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labelsieve._validation import check_option, check_positive_int
from labelsieve.data.dataset import UNLABELED, Dataset
from labelsieve.errors import InputError

#: File suffixes read as images (other files are ignored).
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def pixel_histogram(pixels: np.ndarray, *, bins: int = 8) -> np.ndarray:
    """Per-channel normalised histograms of values in [0, 1].

    Parameters
    ----------
    pixels : float array, shape (n, h, w, c)
    bins : int

    Returns
    -------
    hist : float array, shape (n, c * bins); each channel's block sums to 1.

    >>> pixel_histogram(np.array([0.0, 0.2, 0.9, 1.0]).reshape(1, 2, 2, 1), bins=2).tolist()
    [[0.5, 0.5]]
    """
    n, h, w, c = pixels.shape
    b = np.minimum((pixels * bins).astype(np.int64), bins - 1)  # bin of each value
    flat = b.reshape(n, h * w, c) + bins * np.arange(c)  # offset per channel
    flat = flat + (c * bins) * np.arange(n)[:, None, None]  # offset per image
    counts = np.bincount(flat.ravel(), minlength=n * c * bins).reshape(n, c * bins)
    return counts / float(h * w)


def load_image_folder(
    path: str | os.PathLike[str],
    *,
    size: tuple[int, int] = (16, 16),
    classes: Sequence[str] | None = None,
    color: str = "gray",
    histogram: bool = False,
    hist_bins: int = 8,
) -> Dataset:
    """Read every image under ``path`` into a :class:`Dataset`.

    Parameters
    ----------
    path : directory
    size : (width, height)
        Every image is resized (bilinear) to this size.
    classes : sequence of str, optional
        Class names in code order; default: sorted sub-folder names. Required for a flat folder.
    color : {"gray", "rgb"}
        Convert to 8-bit grayscale (1 channel) or RGB (3 channels).
    histogram : bool
        Append ``hist_bins``-bin histograms (gray intensity, or HSV channels for RGB).
    hist_bins : int

    Returns
    -------
    Dataset
        ``X`` float32, shape (n, width*height*channels [+ channels*hist_bins]), ``raw`` = paths.
    """
    from PIL import Image, UnidentifiedImageError

    owner = "load_image_folder"
    check_option("color", color, owner=owner, options=("gray", "rgb"))
    if not (isinstance(size, (tuple, list)) and len(size) == 2):
        raise InputError(
            f"The 'size' parameter of {owner} must be a (width, height) pair. Got {size!r} instead."
        )
    width = check_positive_int("size[0]", size[0], owner=owner)
    height = check_positive_int("size[1]", size[1], owner=owner)
    bins = check_positive_int("hist_bins", hist_bins, owner=owner)
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory.")

    loose = sorted(p for p in root.iterdir() if _is_image(p))
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    grouped = [(d.name, sorted(p for p in d.rglob("*") if _is_image(p))) for d in folders]
    grouped = [(name, files) for name, files in grouped if files]
    files = loose + [p for _, fs in grouped for p in fs]
    if not files:
        raise InputError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")

    if classes is None:
        cls = tuple(name for name, _ in grouped)
        if len(cls) < 2:
            raise InputError(
                f"{root}: found {len(cls)} class sub-folder(s) {list(cls)}; "
                "pass classes= to name the classes (a flat folder has no truth)."
            )
    else:
        cls = tuple(str(c) for c in classes)
        unknown = [name for name, _ in grouped if name not in cls]
        if unknown:
            raise InputError(f"{root}: sub-folder(s) {unknown} are not among classes {list(cls)}.")
    lookup = {c: i for i, c in enumerate(cls)}
    codes = [UNLABELED] * len(loose) + [lookup[name] for name, fs in grouped for _ in fs]
    y = np.asarray(codes, dtype=np.int64) if grouped else None

    mode = "L" if color == "gray" else "RGB"
    channels = 1 if mode == "L" else 3
    pixels = np.empty((len(files), height, width, channels), dtype=np.uint8)
    hsv = np.empty_like(pixels) if histogram and channels == 3 else None
    for k, p in enumerate(files):  # file I/O: one image at a time
        try:
            with Image.open(p) as im:
                im.load()
                small = im.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise InputError(f"{p}: cannot read image ({type(exc).__name__}: {exc}).") from exc
        pixels[k] = np.asarray(small).reshape(height, width, channels)
        if hsv is not None:
            hsv[k] = np.asarray(small.convert("HSV")).reshape(height, width, 3)

    scaled = pixels.astype(np.float32) / 255.0
    parts = [scaled.reshape(len(files), -1)]
    if histogram:
        src = scaled if hsv is None else hsv.astype(np.float32) / 255.0
        parts.append(pixel_histogram(src, bins=bins).astype(np.float32))
    X = np.concatenate(parts, axis=1)
    return Dataset(
        ids=np.array([p.relative_to(root).as_posix() for p in files], dtype=object),
        X=X,
        classes=cls,
        y=y,
        raw=[str(p) for p in files],
        name=root.name or "images",
        source=str(root),
        meta={"image_size": (width, height), "color": color, "histogram": bool(histogram)},
    )
