"""Random (optionally stratified) partitions of ``range(n)``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labelsieve._validation import check_open_unit, check_positive_int
from labelsieve.data.dataset import Dataset
from labelsieve.errors import InputError, ParameterError


def _check_fractions(fractions: Sequence[float], owner: str) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64).ravel() if len(fractions) else np.zeros(0)
    if f.size < 1 or not np.all(np.isfinite(f)) or np.any(f <= 0) or abs(f.sum() - 1.0) > 1e-6:
        raise ParameterError(
            f"The 'fractions' parameter of {owner} must be positive numbers summing to 1. "
            f"Got {list(fractions)!r} instead."
        )
    return f / f.sum()


def apportion(total: int, fractions: np.ndarray) -> np.ndarray:
    """Integer sizes summing to ``total``, each ``floor`` or ``ceil`` of ``total * f`` (largest remainder).

    >>> apportion(10, np.array([0.55, 0.45])).tolist()
    [6, 4]
    """
    quota = total * fractions
    sizes = np.floor(quota).astype(np.int64)
    extra = total - int(sizes.sum())
    order = np.argsort(-(quota - sizes), kind="stable")
    sizes[order[:extra]] += 1
    return sizes


def stratified_sizes(class_counts: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Items of each class per part, shape (n_classes, n_parts).

    Each cell is ``floor`` or ``ceil`` of ``count_c * f_p`` (so every class keeps its proportion in
    every part to within one item); the leftover items of each class go to the parts that are
    furthest below their overall target ``n * f_p``, keeping part totals close to ``n * f_p``.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    quota = counts[:, None] * fractions[None, :]
    sizes = np.floor(quota).astype(np.int64)
    target = counts.sum() * fractions
    given = sizes.sum(axis=0).astype(np.float64)
    for c in np.argsort(-counts, kind="stable"):  # loop over classes, not samples
        extra = int(counts[c] - sizes[c].sum())
        if extra:
            deficit = (target - given) + 1e-9 * (quota[c] - sizes[c])  # tie-break by remainder
            pick = np.argsort(-deficit, kind="stable")[:extra]
            sizes[c, pick] += 1
            given[pick] += 1
    return sizes


def split_indices(
    n: int,
    fractions: Sequence[float],
    *,
    stratify: np.ndarray | Sequence[int] | None = None,
    random_state: int | np.random.Generator | None = None,
) -> list[np.ndarray]:
    """Randomly partition ``range(n)`` into ``len(fractions)`` disjoint parts covering everything.

    Parameters
    ----------
    n : int
        Number of items (>= 0).
    fractions : sequence of float
        Positive, summing to 1.
    stratify : int array, shape (n,), optional
        Group labels (e.g. class codes, -1 allowed as its own group); each group is split by
        ``fractions`` separately so every part keeps the group proportions (within one item).
    random_state : int, Generator or None

    Returns
    -------
    parts : list of int64 arrays
        Sorted positions. Without ``stratify`` each part has ``floor``/``ceil`` of ``n * f`` items.

    >>> [p.size for p in split_indices(10, [0.7, 0.3], random_state=0)]
    [7, 3]
    """
    owner = "split_indices"
    n = check_positive_int("n", n, owner=owner, minimum=0)
    f = _check_fractions(fractions, owner)
    rng = np.random.default_rng(random_state)
    if stratify is None:
        perm = rng.permutation(n)
        cuts = np.cumsum(apportion(n, f))[:-1]
        return [np.sort(p) for p in np.split(perm, cuts)]
    groups = np.asarray(stratify)
    if groups.shape != (n,):
        raise InputError(f"split_indices: 'stratify' has shape {groups.shape}; expected ({n},).")
    uniq, inv = np.unique(groups, return_inverse=True)
    inv = inv.ravel()
    sizes = stratified_sizes(np.bincount(inv, minlength=len(uniq)), f)
    # shuffle, then order by group: items of group g occupy one contiguous block
    perm = rng.permutation(n)
    order = perm[np.argsort(inv[perm], kind="stable")]
    # part of the j-th item of each group block: cut each block at cumulative sizes
    starts = np.concatenate([[0], np.cumsum(sizes.sum(axis=1))[:-1]])
    rank_in_group = np.arange(n) - np.repeat(starts, sizes.sum(axis=1))
    group_of = np.repeat(np.arange(len(uniq)), sizes.sum(axis=1))
    bounds = np.cumsum(sizes, axis=1)  # (n_groups, n_parts)
    part_of = (rank_in_group[:, None] >= bounds[group_of]).sum(axis=1)
    return [np.sort(order[part_of == p]) for p in range(f.size)]


def train_test_split_dataset(
    ds: Dataset,
    test_size: float = 0.25,
    *,
    stratify: bool = True,
    random_state: int | np.random.Generator | None = None,
) -> tuple[Dataset, Dataset]:
    """Split a :class:`Dataset` into (train, test), stratified by ``ds.y`` when it exists.

    >>> from labelsieve.data.waveform import make_waveform
    >>> tr, te = train_test_split_dataset(make_waveform(100, random_state=0), 0.2, random_state=0)
    >>> len(tr), len(te)
    (80, 20)
    """
    t = check_open_unit("test_size", test_size, owner="train_test_split_dataset")
    strata = ds.y if (stratify and ds.y is not None) else None
    train, test = split_indices(len(ds), [1.0 - t, t], stratify=strata, random_state=random_state)
    return ds.subset(train), ds.subset(test)
