"""The :class:`Dataset` every capability shares: ids, features, raw items, classes, optional truth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labelsieve.errors import InputError

#: Code used in ``Dataset.y`` for "no ground truth for this item".
UNLABELED = -1


@dataclass(frozen=True, eq=False)
class Dataset:
    """A pool of items.

    Parameters
    ----------
    ids : array of str, shape (n,)
        Unique item identifiers.
    X : float array, shape (n, d)
        Features (finite). float32 for pools.
    classes : tuple of str
        Class names; labels are integer codes into this tuple.
    y : int array, shape (n,), optional
        Ground-truth codes, ``UNLABELED`` (-1) where unknown. ``None`` when no truth at all.
    raw : sequence, optional
        What to show a human for each item: text, an image array, or a path.
    name : str
        Short name used in run directories and reports.
    source : str
        Where the data came from (file path or embedded name), used in error messages.
    """

    ids: np.ndarray
    X: np.ndarray
    classes: tuple[str, ...]
    y: np.ndarray | None = None
    raw: Sequence[Any] | None = None
    name: str = "dataset"
    source: str = "<memory>"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids).astype(str).astype(object)
        X = np.asarray(self.X)
        where = f"dataset '{self.name}' ({self.source})"
        if X.ndim != 2:
            raise InputError(f"{where}: features must be 2-D; got shape {X.shape}.")
        if len(ids) != X.shape[0]:
            raise InputError(f"{where}: {len(ids)} ids but {X.shape[0]} feature rows.")
        if not np.issubdtype(X.dtype, np.number):
            raise InputError(f"{where}: features must be numeric; got dtype {X.dtype}.")
        bad = ~np.isfinite(X)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise InputError(
                f"{where}: feature value {X[r, c]} (NaN or inf) at row {r} (id {ids[r]!r}), column {c}."
            )
        uniq, counts = np.unique(ids, return_counts=True)
        if len(uniq) != len(ids):
            dup = uniq[counts > 1][:5].tolist()
            raise InputError(f"{where}: duplicate ids {dup} ({int((counts > 1).sum())} ids repeated).")
        if len(self.classes) < 2:
            raise InputError(f"{where}: need at least 2 classes; got {list(self.classes)}.")
        if len(set(self.classes)) != len(self.classes):
            raise InputError(f"{where}: class names repeat: {list(self.classes)}.")
        y = None
        if self.y is not None:
            y = np.asarray(self.y)
            if y.shape != (len(ids),):
                raise InputError(f"{where}: labels have shape {y.shape}; expected ({len(ids)},).")
            if not np.issubdtype(y.dtype, np.integer):
                raise InputError(f"{where}: labels must be integer codes; got dtype {y.dtype}.")
            out = (y < UNLABELED) | (y >= len(self.classes))
            if out.any():
                r = int(np.flatnonzero(out)[0])
                raise InputError(f"{where}: label code {y[r]} at row {r} is not a class index.")
            y = y.astype(np.int64)
        if self.raw is not None and len(self.raw) != len(ids):
            raise InputError(f"{where}: {len(self.raw)} raw items but {len(ids)} ids.")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "X", X.astype(np.float32, copy=False))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "y", y)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def has_truth(self) -> bool:
        return self.y is not None and bool((self.y != UNLABELED).any())

    def subset(self, index: np.ndarray | Sequence[int]) -> Dataset:
        """Rows ``index`` (integer positions or a boolean mask) as a new Dataset."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        raw = None if self.raw is None else [self.raw[i] for i in idx]
        return Dataset(
            ids=self.ids[idx],
            X=self.X[idx],
            classes=self.classes,
            y=None if self.y is None else self.y[idx],
            raw=raw,
            name=self.name,
            source=self.source,
            meta=dict(self.meta),
        )

    def encode_labels(self, labels: Sequence[Any], *, where: str = "labels") -> np.ndarray:
        """Map class names (or their codes as strings/ints) to codes; unknown names raise InputError."""
        lookup = {c: i for i, c in enumerate(self.classes)}
        return encode_labels(labels, lookup, where=where)


def encode_labels(labels: Sequence[Any], lookup: dict[str, int], *, where: str = "labels") -> np.ndarray:
    """Codes for ``labels`` under ``lookup`` (class name -> code); names the first unknown label."""
    arr = np.asarray(labels).astype(str)
    uniq, inv = np.unique(arr, return_inverse=True)
    codes = np.array([lookup.get(u, -2) for u in uniq], dtype=np.int64)
    if (codes == -2).any():
        bad = uniq[codes == -2]
        row = int(np.flatnonzero(np.isin(arr, bad))[0])
        raise InputError(
            f"{where}: unknown class {arr[row]!r} at row {row}; known classes: {sorted(lookup)}."
        )
    return codes[inv]


def row_ids(n: int, prefix: str = "row-", width: int = 0) -> np.ndarray:
    """Ids ``prefix + zero-padded row number`` (vectorized).

    >>> row_ids(3).tolist(), row_ids(2, "wf-", 5).tolist()
    (['row-0', 'row-1', 'row-2'], ['wf-00000', 'wf-00001'])
    """
    digits = np.char.zfill(np.arange(n).astype(str), width)
    return np.char.add(prefix, digits).astype(object)
