"""Evaluation metrics for auto-labeling runs (pure array functions).

Conventions: label arrays are integer codes; ``-1`` in ``y_true`` means "no ground truth" and such
items are ignored (the functions say so); a metric over zero usable items is ``nan``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from labelsieve._validation import check_option, check_positive_int
from labelsieve.errors import InputError

UNLABELED = -1


def _labels(y_true, y_pred, fn: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim != 1 or t.shape != p.shape:
        raise InputError(f"{fn}: y_true and y_pred must be 1-D of equal length; got {t.shape} and {p.shape}.")
    if t.size and not (np.issubdtype(t.dtype, np.integer) and np.issubdtype(p.dtype, np.integer)):
        raise InputError(f"{fn}: labels must be integer codes; got dtypes {t.dtype} and {p.dtype}.")
    return t.astype(np.int64, copy=False), p.astype(np.int64, copy=False)


def coverage(n_auto_labeled: int, n_pool: int) -> float:
    """Auto-labeling coverage ``P_hat = N_a / N`` (Vishwakarma et al., 2023, Sec. 2).

    ``N_a`` is the number of auto-labeled points and ``N`` the size of the *whole initial*
    unlabeled pool (not the points remaining in the last round).

    >>> coverage(30, 120)
    0.25
    """
    n_pool = check_positive_int("n_pool", n_pool, owner="coverage")
    n_auto = check_positive_int("n_auto_labeled", n_auto_labeled, owner="coverage", minimum=0)
    if n_auto > n_pool:
        raise InputError(f"coverage: n_auto_labeled ({n_auto}) exceeds the pool size n_pool ({n_pool}).")
    return n_auto / n_pool


def auto_labeling_error(y_true, y_auto) -> float:
    """Auto-labeling error: fraction of auto-labeled points whose label is wrong (TBAL, Sec. 2).

    ``E_hat = (1/|A|) * sum_{i in A} 1[y_auto_i != y_true_i]`` over the auto-labeled set ``A``.
    Points with ``y_true == -1`` (truth unknown) are ignored. Returns ``nan`` when no point has
    truth (including empty input).

    >>> auto_labeling_error([0, 1, 1, -1], [0, 0, 1, 1])
    0.3333333333333333
    """
    t, a = _labels(y_true, y_auto, "auto_labeling_error")
    known = t != UNLABELED
    if not known.any():
        return float("nan")
    return float(np.mean(t[known] != a[known]))


def accuracy(y_true, y_pred) -> float:
    """Fraction of correct predictions among items with truth (``y_true != -1``); ``nan`` if none.

    >>> accuracy([0, 1, 2, 2], [0, 1, 1, 2])
    0.75
    """
    t, p = _labels(y_true, y_pred, "accuracy")
    known = t != UNLABELED
    if not known.any():
        return float("nan")
    return float(np.mean(t[known] == p[known]))


def _conf_correct(confidence, correct, fn: str) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(confidence, dtype=np.float64)
    k = np.asarray(correct)
    if c.ndim != 1 or c.shape != k.shape:
        raise InputError(
            f"{fn}: confidence and correct must be 1-D of equal length; got {c.shape} and {k.shape}."
        )
    bad = ~np.isfinite(c) | (c < 0) | (c > 1)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InputError(f"{fn}: confidence must lie in [0, 1]; got {c[r]} at row {r}.")
    kf = k.astype(np.float64)
    if not np.all((kf == 0) | (kf == 1)):
        r = int(np.flatnonzero((kf != 0) & (kf != 1))[0])
        raise InputError(f"{fn}: correct must be boolean (0/1); got {k[r]!r} at row {r}.")
    return c, kf


def bin_edges(confidence: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    """Bin edges, shape (n_bins + 1,): equal-width on [0, 1] or empirical quantiles of ``confidence``."""
    if strategy == "uniform" or confidence.size == 0:
        return np.linspace(0.0, 1.0, n_bins + 1)
    edges = np.quantile(confidence, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0], edges[-1] = 0.0, 1.0
    return edges


def _bin_stats(confidence, correct, n_bins: int, strategy: str, fn: str):
    n_bins = check_positive_int("n_bins", n_bins, owner=fn)
    check_option("strategy", strategy, owner=fn, options=("uniform", "quantile"))
    c, k = _conf_correct(confidence, correct, fn)
    edges = bin_edges(c, n_bins, strategy)
    # right-closed bins ((e_{b}, e_{b+1}]) as in Guo et al.; confidence 0 goes to the first bin
    b = np.searchsorted(edges[1:-1], c, side="left")
    count = np.bincount(b, minlength=n_bins).astype(np.float64)
    sum_conf = np.bincount(b, weights=c, minlength=n_bins)
    sum_acc = np.bincount(b, weights=k, minlength=n_bins)
    return count, sum_conf, sum_acc, edges


class ReliabilityCurve(NamedTuple):
    """Per-bin statistics; empty bins hold ``nan`` confidence/accuracy and count 0."""

    confidence: np.ndarray  #: mean confidence per bin, shape (n_bins,)
    accuracy: np.ndarray  #: accuracy per bin, shape (n_bins,)
    # the public field name shadows tuple.count, which mypy reports as an incompatible override
    count: np.ndarray  # type: ignore[assignment]  #: items per bin (int), shape (n_bins,)
    edges: np.ndarray  #: bin edges, shape (n_bins + 1,)


def reliability_curve(
    confidence, correct, *, n_bins: int = 15, strategy: str = "uniform"
) -> ReliabilityCurve:
    """Reliability diagram data: per-bin mean confidence, accuracy and count (Guo et al., 2017, Sec. 2).

    >>> rc = reliability_curve([0.2, 0.9, 0.8], [0, 1, 0], n_bins=2)
    >>> rc.confidence.round(3).tolist(), rc.accuracy.tolist(), rc.count.tolist()
    ([0.2, 0.85], [0.0, 0.5], [1, 2])
    """
    count, sum_conf, sum_acc, edges = _bin_stats(confidence, correct, n_bins, strategy, "reliability_curve")
    with np.errstate(invalid="ignore", divide="ignore"):
        return ReliabilityCurve(sum_conf / count, sum_acc / count, count.astype(np.int64), edges)


def expected_calibration_error(confidence, correct, *, n_bins: int = 15, strategy: str = "uniform") -> float:
    """Top-label expected calibration error (Naeini et al., 2015; Guo et al., 2017, Eq. 3).

    ``ECE = sum_b (|B_b| / n) * |acc(B_b) - conf(B_b)|`` over right-closed bins of the
    confidence (equal width on [0, 1], or equal mass for ``strategy="quantile"``).
    ``nan`` for empty input.

    Parameters
    ----------
    confidence : float array, shape (n,)
        Top-label confidence in [0, 1].
    correct : bool array, shape (n,)
        Whether the top label is right.
    n_bins : int
    strategy : {"uniform", "quantile"}

    >>> round(expected_calibration_error([0.9, 0.9, 0.6, 0.6], [1, 0, 1, 1], n_bins=4), 6)
    0.4
    """
    count, sum_conf, sum_acc, _ = _bin_stats(
        confidence, correct, n_bins, strategy, "expected_calibration_error"
    )
    n = count.sum()
    if n == 0:
        return float("nan")
    # (|B|/n) * |acc - conf| == |sum_acc - sum_conf| / n  (empty bins contribute 0)
    return float(np.abs(sum_acc - sum_conf).sum() / n)


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts ``C[t, p]``, shape (n_classes, n_classes + 1); the last column counts abstentions
    (``y_pred == -1``). Items with ``y_true == -1`` are ignored.

    >>> confusion_matrix([0, 0, 1], [0, 1, -1], 2).tolist()
    [[1, 1, 0], [0, 0, 1]]
    """
    k = check_positive_int("n_classes", n_classes, owner="confusion_matrix")
    t, p = _labels(y_true, y_pred, "confusion_matrix")
    for name, arr, lo in (("y_true", t, -1), ("y_pred", p, -1)):
        bad = (arr < lo) | (arr >= k)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise InputError(f"confusion_matrix: {name} code {arr[r]} at row {r} is not in -1..{k - 1}.")
    keep = t != UNLABELED
    col = np.where(p[keep] == UNLABELED, k, p[keep])
    return np.bincount(t[keep] * (k + 1) + col, minlength=k * (k + 1)).reshape(k, k + 1)


class PRF(NamedTuple):
    """Per-class precision/recall/F1 (shape (n_classes,)), support, and their macro averages."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    macro_precision: float
    macro_recall: float
    macro_f1: float


def precision_recall_f1(y_true, y_pred, n_classes: int) -> PRF:
    """Per-class precision ``TP/(TP+FP)``, recall ``TP/(TP+FN)``, ``F1 = 2PR/(P+R)`` and macro means.

    A ratio with a zero denominator is 0. Abstentions (``y_pred == -1``) count as misses for
    recall and as nothing for precision; items with ``y_true == -1`` are ignored. The macro
    average is the unweighted mean over all ``n_classes`` classes.

    >>> r = precision_recall_f1([0, 0, 1, 1], [0, 1, 1, 1], 2)
    >>> r.precision.tolist(), r.recall.tolist(), round(r.macro_f1, 4)
    ([1.0, 0.6666666666666666], [0.5, 1.0], 0.7333)
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm[:, :-1]).astype(np.float64)
    predicted = cm[:, :-1].sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    return PRF(
        precision, recall, f1, support, float(precision.mean()), float(recall.mean()), float(f1.mean())
    )


def mae(p, q) -> float:
    """Mean absolute error ``mean_i |p_i - q_i|`` between two probability vectors (same shape).

    >>> round(mae([0.2, 0.8], [0.5, 0.5]), 6)
    0.3
    """
    a = np.asarray(p, dtype=np.float64)
    b = np.asarray(q, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"mae: p and q must have the same shape; got {a.shape} and {b.shape}.")
    if a.size == 0:
        return float("nan")
    return float(np.mean(np.abs(a - b)))
