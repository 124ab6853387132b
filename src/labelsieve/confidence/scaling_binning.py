"""Scaling-binning calibrator (Kumar, Liang & Ma, 2019, "Verified Uncertainty Calibration", Sec. 4,
top-label version).

1. Fit a scaling function ``g`` (Platt scaling on the logit of the max-softmax score, Platt 1999)
   on the first part of the calibration data.
2. On the second part, cut ``g``'s outputs into equal-mass bins.
3. A point's calibrated confidence is the *mean of ``g``'s outputs* in its bin (not the mean
   label, which is plain histogram binning): the variance of a mean of smooth scores is lower,
   which is the paper's point (Sec. 4, Thm. 4.1).

Too few points for the requested bins: the number of bins drops to ``n_bin_part // min_per_bin``;
with fewer than ``min_per_bin`` points in the bin part
:class:`~labelsieve.errors.NotEnoughDataError` is raised.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_softmax, softmax

from labelsieve._validation import check_interval, check_option, check_positive_int
from labelsieve.confidence.base import register_confidence, seeded_rng, top_label_matrix
from labelsieve.confidence.histogram import TIE_BREAK, equal_mass_edges
from labelsieve.confidence.temperature import check_calibration_data, check_scores
from labelsieve.errors import InputError, NotEnoughDataError, NotFittedError
from labelsieve.models.base import Scores

__all__ = ["ScalingBinning", "fit_platt", "platt_nll", "top_label_logit"]


def top_label_logit(logits: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` of the max softmax probability ``p``, computed stably, shape (n,).

    ``log p_max - log(sum_{k != max} p_k)``.
    """
    lp = log_softmax(np.asarray(logits, dtype=np.float64), axis=1)
    top = lp.max(axis=1)
    lp_sorted = np.sort(lp, axis=1)[:, :-1]  # drop the max
    rest = np.log(np.exp(lp_sorted - top[:, None]).sum(axis=1)) + top
    return top - rest


def platt_nll(w: np.ndarray, u: np.ndarray, t: np.ndarray, reg: float) -> tuple[float, np.ndarray]:
    """Mean logistic NLL of ``sigmoid(a u + b)`` against 0/1 targets ``t`` (+ ``reg * a^2 / 2``),
    and its gradient in ``(a, b)``. Platt (1999)."""
    a, b = w
    f = a * u + b
    # -[t log s + (1-t) log(1-s)] = log(1 + e^f) - t f
    nll = float(np.mean(np.logaddexp(0.0, f) - t * f)) + 0.5 * reg * a * a
    r = expit(f) - t
    return nll, np.array([np.mean(r * u) + reg * a, np.mean(r)])


def fit_platt(u: np.ndarray, correct: np.ndarray, *, reg: float = 1e-4) -> tuple[float, float]:
    """``(a, b)`` of Platt scaling ``P(correct | u) = sigmoid(a u + b)`` (L-BFGS).

    >>> rng = np.random.default_rng(1)
    >>> u = rng.normal(size=20000)
    >>> t = (rng.random(20000) < expit(2 * u - 1)).astype(float)
    >>> a, b = fit_platt(u, t)
    >>> round(a, 1), round(b, 1)
    (2.0, -1.0)
    """
    u = np.asarray(u, dtype=np.float64)
    t = np.asarray(correct, dtype=np.float64)
    res = minimize(platt_nll, np.array([1.0, 0.0]), args=(u, t, reg), jac=True, method="L-BFGS-B")
    return float(res.x[0]), float(res.x[1])


@register_confidence("scaling-binning")
class ScalingBinning:
    """Top-label scaling-binning calibrator (Kumar et al. 2019).

    Parameters
    ----------
    n_bins : int, default 10
    min_per_bin : int, default 10
    scaling_fraction : float in (0, 1), default 0.5
        Share of the calibration data used to fit the Platt scaler; the rest builds the bins.
    tie_break : bool, default True
        Mix ``1e-6`` of the scaled score into the binned value so points in one bin keep their order (see
        :class:`~labelsieve.confidence.histogram.HistogramBinning`).
    random_state : int or Generator, optional
        Seeds the split.

    Attributes
    ----------
    platt_ : (a, b)
    edges_, values_ : arrays
        Interior bin edges on the scaled score and each bin's mean scaled score.

    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(1000, 3)) * 3
    >>> sb = ScalingBinning(n_bins=5, random_state=0).fit(Scores(z), rng.integers(0, 3, 1000))
    >>> len(np.unique(np.round(sb.confidence(Scores(z))[1], 4)))
    5
    """

    requires_fit: bool = True

    def __init__(
        self,
        *,
        n_bins: int = 10,
        min_per_bin: int = 10,
        scaling_fraction: float = 0.5,
        tie_break: bool = True,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.n_bins = n_bins
        self.min_per_bin = min_per_bin
        self.scaling_fraction = scaling_fraction
        self.tie_break = tie_break
        self.random_state = random_state

    def fit(self, scores: Scores, y: np.ndarray) -> ScalingBinning:
        owner = "ScalingBinning"
        check_positive_int("n_bins", self.n_bins, owner=owner)
        check_positive_int("min_per_bin", self.min_per_bin, owner=owner)
        check_interval("scaling_fraction", self.scaling_fraction, owner=owner, low=0, high=1, closed="neither")
        check_option("tie_break", self.tie_break, owner=owner, options=(True, False))
        z, y_arr = check_calibration_data(scores, y, owner=owner, min_samples=2)
        n = z.shape[0]
        rng = seeded_rng(self.random_state, owner=owner)
        perm = rng.permutation(n)
        n_scale = int(np.clip(round(self.scaling_fraction * n), 1, n - 1))
        i_scale, i_bin = perm[:n_scale], perm[n_scale:]
        if i_bin.size < self.min_per_bin:
            raise NotEnoughDataError(
                f"ScalingBinning needs at least min_per_bin={self.min_per_bin} points in its binning part "
                f"({1 - self.scaling_fraction:.2f} of the calibration data); got {i_bin.size} of {n}."
            )
        u = top_label_logit(z)
        correct = (np.argmax(z, axis=1) == y_arr).astype(np.float64)
        self.platt_ = fit_platt(u[i_scale], correct[i_scale])  # step 1
        g = self._scale(u[i_bin])
        n_bins = min(self.n_bins, i_bin.size // self.min_per_bin)
        self.edges_ = equal_mass_edges(g, n_bins)  # step 2
        idx = np.searchsorted(self.edges_, g, side="left")
        counts = np.bincount(idx, minlength=self.edges_.size + 1)
        self.values_ = np.bincount(idx, weights=g, minlength=self.edges_.size + 1) / np.maximum(counts, 1)  # 3
        self.n_classes_ = z.shape[1]
        return self

    def _scale(self, u: np.ndarray) -> np.ndarray:
        a, b = self.platt_
        return expit(a * u + b)

    def _top(self, scores: Scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not hasattr(self, "values_"):
            raise NotFittedError("ScalingBinning is not fitted yet; call fit(scores, y) first.")
        z = check_scores(scores)
        if z.shape[1] != self.n_classes_:
            raise InputError(f"scores have {z.shape[1]} classes; ScalingBinning was fitted on {self.n_classes_}.")
        g = self._scale(top_label_logit(z))
        conf = self.values_[np.searchsorted(self.edges_, g, side="left")]
        if self.tie_break:  # a convex mix keeps confidences in [0, 1]
            conf = (1.0 - TIE_BREAK) * conf + TIE_BREAK * g
        return z, np.argmax(z, axis=1), conf

    def confidence(self, scores: Scores) -> tuple[np.ndarray, np.ndarray]:
        """(``scores.predicted``, scaled-then-binned top-label confidence)."""
        _, pred, conf = self._top(scores)
        return pred, conf

    def predict_proba(self, scores: Scores) -> np.ndarray:
        """Predicted class gets the calibrated value; the rest is shared in softmax proportion."""
        z, pred, conf = self._top(scores)
        return top_label_matrix(softmax(z, axis=1), pred, conf)
