"""Small data sets that ship with scikit-learn (no download) plus the generated waveform set."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from labelsieve.data.dataset import Dataset, row_ids
from labelsieve.data.waveform import make_waveform


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


#: Embedded data sets by name; each value is a zero-argument-callable loader.
EMBEDDED: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "breast-cancer": load_breast_cancer,
    "waveform": load_waveform,
}


def embedded_key(name: str) -> str | None:
    """The :data:`EMBEDDED` key for ``name`` (case and ``_``/``-`` insensitive), or None."""
    key = str(name).strip().lower().replace("_", "-")
    return key if key in EMBEDDED else None
