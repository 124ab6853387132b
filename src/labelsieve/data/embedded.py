"""Small data sets that ship with scikit-learn (no download) plus the generated waveform set."""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from labelsieve.data.dataset import Dataset, row_ids
from labelsieve.data.waveform import make_waveform
from labelsieve.errors import InputError, MissingDependencyError


def load_digits() -> Dataset:
    """The UCI optical digits (1797 images of 8x8 pixels, intensities 0..16) from scikit-learn.

    ``X`` holds the 64 pixel intensities (float32, 0..16); ``raw`` holds each image as an 8x8
    ``uint8`` array rescaled to 0..255 for display. Classes are ``"0"``..``"9"``.

    >>> ds = load_digits()
    >>> len(ds), ds.X.shape[1], ds.classes[:3], ds.ids[0], ds.raw[0].shape
    (1797, 64, ('0', '1', '2'), 'digits-0000', (8, 8))
    """
    from sklearn import datasets

    bunch = datasets.load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    n = len(bunch.target)
    return Dataset(
        ids=row_ids(n, "digits-", 4),
        X=bunch.data.astype(np.float32),
        classes=tuple(str(c) for c in bunch.target_names),
        y=bunch.target.astype(np.int64),
        raw=list(images),
        name="digits",
        source="embedded:digits (scikit-learn)",
        meta={"image_shape": (8, 8)},
    )


def load_breast_cancer() -> Dataset:
    """Wisconsin diagnostic breast cancer (569 x 30) from scikit-learn.

    Classes follow scikit-learn's ``target_names``: ``("malignant", "benign")``; ``raw`` is None.

    >>> ds = load_breast_cancer()
    >>> ds.X.shape, ds.classes
    ((569, 30), ('malignant', 'benign'))
    """
    from sklearn import datasets

    bunch = datasets.load_breast_cancer()
    n = len(bunch.target)
    return Dataset(
        ids=row_ids(n, "bc-", 3),
        X=bunch.data.astype(np.float32),
        classes=tuple(str(c) for c in bunch.target_names),
        y=bunch.target.astype(np.int64),
        raw=None,
        name="breast-cancer",
        source="embedded:breast-cancer (scikit-learn)",
        meta={"feature_names": [str(f) for f in bunch.feature_names]},
    )


def load_waveform(n_samples: int = 5000, *, random_state: int | np.random.Generator | None = 0) -> Dataset:
    """Breiman's waveform (see :func:`make_waveform`) with a fixed default seed (0)."""
    return make_waveform(n_samples, noise=True, random_state=random_state)


#: Where Debian's ``dataset-fashion-mnist`` package puts the IDX files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes: images (n, rows, cols) or labels (n,)."""
    p = Path(path)
    try:
        with (gzip.open(p) if p.suffix == ".gz" else open(p, "rb")) as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise InputError(f"{p}: cannot read IDX file ({exc})") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise InputError(f"{p}: not an IDX file of unsigned bytes (magic {data[:4]!r})")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise InputError(f"{p}: header says {dims} but holds {body.size} bytes")
    return body.reshape(dims)


def load_fashion_mnist(
    split: str = "test", *, n: int | None = None, directory: str | os.PathLike[str] = FASHION_MNIST_DIR,
    random_state: int = 0,
) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017; 60k train / 10k test, 28x28 grey, 10 classes; MIT).

    Read from Debian's ``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist``),
    nothing downloaded. ``X`` = the 784 pixel intensities scaled to [0, 1]; ``raw`` = the 28x28
    uint8 images (for display and image labelers). ``n`` takes a seeded random subset.
    """
    if split not in ("train", "test"):
        raise InputError(f"Fashion-MNIST split must be 'train' or 'test'; got {split!r}.")
    stem = "train" if split == "train" else "t10k"
    d = Path(directory)
    img, lab = d / f"{stem}-images-idx3-ubyte.gz", d / f"{stem}-labels-idx1-ubyte.gz"
    if not img.exists() or not lab.exists():
        raise MissingDependencyError(
            f"Fashion-MNIST files not found in {d}: install them with `apt-get install dataset-fashion-mnist`."
        )
    images, labels = read_idx(img), read_idx(lab)
    if len(images) != len(labels):
        raise InputError(f"{img}: {len(images)} images but {lab.name} has {len(labels)} labels")
    idx = np.arange(len(labels))
    if n is not None and n < len(idx):
        idx = np.sort(np.random.default_rng(random_state).choice(len(idx), n, replace=False))
    images, labels = images[idx], labels[idx]
    return Dataset(
        ids=np.array([f"fmnist-{split}-{i:05d}" for i in idx]),
        X=(images.reshape(len(idx), -1) / np.float32(255.0)).astype(np.float32),
        classes=FASHION_MNIST_CLASSES,
        y=labels.astype(np.int64),
        raw=list(images),
        name="fashion-mnist",
        source=f"{d} ({split})",
        meta={"image_shape": (28, 28)},
    )


#: Embedded data sets by name; each value is a zero-argument-callable loader.
EMBEDDED: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "breast-cancer": load_breast_cancer,
    "waveform": load_waveform,
    "fashion-mnist": load_fashion_mnist,
}


def embedded_key(name: str) -> str | None:
    """The :data:`EMBEDDED` key for ``name`` (case and ``_``/``-`` insensitive), or None."""
    key = str(name).strip().lower().replace("_", "-")
    return key if key in EMBEDDED else None
