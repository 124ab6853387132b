"""Top-label histogram binning (Gupta & Ramdas, 2022, "Top-label calibration and multiclass-to-binary
reductions", Alg. 2 with equal-mass bins) and the top-label expected calibration error.

For every predicted class ``c`` the max-softmax scores of the calibration points predicted ``c``
are cut into equal-mass bins; a point's calibrated confidence is the fraction of correct
predictions in its bin.

Fallback when data are scarce (documented, tested): a class needs ``min_per_bin`` points per bin;
with fewer points it gets ``floor(n_c / min_per_bin)`` bins, and a class with fewer than
``min_per_bin`` points (or none) uses one class-pooled histogram built the same way from all
points. If even the pooled data have fewer than ``min_per_bin`` points,
:class:`~labelsieve.errors.NotEnoughDataError` is raised.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.special import softmax

from labelsieve._validation import check_option, check_positive_int
from labelsieve.confidence.base import register_confidence, top_label_matrix
from labelsieve.confidence.temperature import check_calibration_data, check_scores
from labelsieve.errors import InputError, NotEnoughDataError, NotFittedError
from labelsieve.models.base import Scores

logger = logging.getLogger(__name__)

#: Weight of the raw score mixed into a binned confidence by ``tie_break`` (also used by scaling-binning).
TIE_BREAK = 1e-6

__all__ = ["HistogramBinning", "apply_bins", "equal_mass_edges", "fit_bins", "top_label_ece"]


def equal_mass_edges(s: np.ndarray, n_bins: int) -> np.ndarray:
    """Interior edges (ascending, length <= n_bins - 1) cutting ``s`` into equal-mass bins.

    Duplicate quantiles are dropped, so heavily tied scores may give fewer bins.

    >>> equal_mass_edges(np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), 3).tolist()
    [0.25, 0.45]
    """
    s = np.sort(np.asarray(s, dtype=np.float64))
    n = s.size
    if n_bins <= 1 or n == 0:
        return np.empty(0)
    # edge between rank floor(j n / B) - 1 and floor(j n / B): midpoint keeps the split exact
    cut = (np.arange(1, n_bins) * n) // n_bins
    edges = 0.5 * (s[cut - 1] + s[cut])
    return np.unique(edges)


def fit_bins(s: np.ndarray, correct: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-mass histogram of ``correct`` (0/1) against score ``s``.

    Returns ``(edges, values)``: interior edges, and the mean of ``correct`` in each of the
    ``len(edges) + 1`` bins (Gupta & Ramdas, Alg. 2). Bin ``j`` holds ``edges[j-1] < s <= edges[j]``.

    >>> e, v = fit_bins(np.array([.1, .2, .3, .4]), np.array([0, 0, 1, 1]), 2)
    >>> e.tolist(), v.tolist()
    ([0.25], [0.0, 1.0])
    """
    s = np.asarray(s, dtype=np.float64)
    edges = equal_mass_edges(s, n_bins)
    idx = np.searchsorted(edges, s, side="left")
    counts = np.bincount(idx, minlength=edges.size + 1)
    hits = np.bincount(idx, weights=np.asarray(correct, dtype=np.float64), minlength=edges.size + 1)
    values = hits / np.maximum(counts, 1)
    return edges, values


def apply_bins(s: np.ndarray, edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Map scores to their bin's value (see :func:`fit_bins`)."""
    return values[np.searchsorted(edges, np.asarray(s, dtype=np.float64), side="left")]


def top_label_ece(conf: np.ndarray, correct: np.ndarray, *, n_bins: int = 15) -> float:
    """Top-label expected calibration error with equal-width bins on [0, 1] (Guo et al. 2017, Eq. 3).

    ``ECE = sum_b |B_b|/n * |acc(B_b) - conf(B_b)|``.

    >>> top_label_ece(np.array([0.9, 0.9, 0.6, 0.6]), np.array([1, 1, 1, 0]), n_bins=10)
    0.1
    """
    conf = np.asarray(conf, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    idx = np.clip((conf * n_bins).astype(np.int64), 0, n_bins - 1)
    gap = np.bincount(idx, weights=correct - conf, minlength=n_bins)
    return float(round(np.abs(gap).sum() / max(conf.size, 1), 12))


@register_confidence("histogram")
class HistogramBinning:
    """Top-label histogram binning with equal-mass bins per predicted class.

    Parameters
    ----------
    n_bins : int, default 10
        Bins per predicted class (fewer when data are scarce; see the module notes).
    min_per_bin : int, default 10
        Minimum calibration points per bin.
    tie_break : bool, default True
        Mix ``TIE_BREAK = 1e-6`` of the raw max-softmax score into the binned value,
        ``(1 - 1e-6) * value + 1e-6 * score`` (which stays in [0, 1]), so that points of one bin
        keep their raw order (a bin-constant score makes TBAL thresholds all-or-nothing per bin).
        The added term is below the resolution of any validation-based estimate.

    Attributes
    ----------
    edges_ : list of arrays, per class
    values_ : list of arrays, per class
    pooled_ : bool array, shape (C,)
        True where the class uses the pooled histogram (fallback).

    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(2000, 2)) * 2
    >>> y = np.argmax(z, 1)  # always correct
    >>> hb = HistogramBinning(n_bins=4).fit(Scores(z), y)
    >>> np.round(hb.confidence(Scores(z[:3]))[1], 3).tolist()
    [1.0, 1.0, 1.0]
    """

    requires_fit: bool = True

    def __init__(self, *, n_bins: int = 10, min_per_bin: int = 10, tie_break: bool = True) -> None:
        self.n_bins = n_bins
        self.min_per_bin = min_per_bin
        self.tie_break = tie_break

    def fit(self, scores: Scores, y: np.ndarray) -> HistogramBinning:
        check_positive_int("n_bins", self.n_bins, owner="HistogramBinning")
        check_positive_int("min_per_bin", self.min_per_bin, owner="HistogramBinning")
        check_option("tie_break", self.tie_break, owner="HistogramBinning", options=(True, False))
        z, y_arr = check_calibration_data(scores, y, owner="HistogramBinning", min_samples=1)
        n, k = z.shape
        if n < self.min_per_bin:
            raise NotEnoughDataError(
                f"HistogramBinning needs at least min_per_bin={self.min_per_bin} calibration points "
                f"for one bin; got {n}."
            )
        p = softmax(z, axis=1)
        pred = np.argmax(z, axis=1)
        s = p[np.arange(n), pred]
        correct = (pred == y_arr).astype(np.float64)
        pooled = fit_bins(s, correct, min(self.n_bins, n // self.min_per_bin))
        self.edges_, self.values_ = [], []
        self.pooled_ = np.zeros(k, dtype=bool)
        for c in range(k):  # loop over classes, not samples
            m = pred == c
            b = min(self.n_bins, int(m.sum()) // self.min_per_bin)
            if b == 0:
                self.pooled_[c] = True
                e, v = pooled
            else:
                e, v = fit_bins(s[m], correct[m], b)
            self.edges_.append(e)
            self.values_.append(v)
        if self.pooled_.any():
            logger.info(
                "HistogramBinning: classes %s have < %d calibration points predicted; using pooled bins",
                np.flatnonzero(self.pooled_).tolist(),
                self.min_per_bin,
            )
        self.n_classes_ = k
        return self

    def _top(self, scores: Scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not hasattr(self, "values_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(scores, y) first.")
        z = check_scores(scores)
        if z.shape[1] != self.n_classes_:
            raise InputError(f"scores have {z.shape[1]} classes; the calibrator was fitted on {self.n_classes_}.")
        p = softmax(z, axis=1)
        pred = np.argmax(z, axis=1)
        s = p[np.arange(z.shape[0]), pred]
        out = np.empty_like(s)
        for c in np.unique(pred):  # loop over classes
            m = pred == c
            out[m] = apply_bins(s[m], self.edges_[c], self.values_[c])
        if self.tie_break:  # a convex mix keeps confidences in [0, 1]
            out = (1.0 - TIE_BREAK) * out + TIE_BREAK * s
        return p, pred, out

    def confidence(self, scores: Scores) -> tuple[np.ndarray, np.ndarray]:
        """(``scores.predicted``, binned top-label confidence)."""
        _, pred, conf = self._top(scores)
        return pred, conf

    def predict_proba(self, scores: Scores) -> np.ndarray:
        """Top-label calibrated matrix: the predicted class gets the binned value (clipped to [0, 1]);
        the other classes share the rest in proportion to their softmax probabilities."""
        p, pred, conf = self._top(scores)
        return top_label_matrix(p, pred, conf)
