"""Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks", Sec. 4.2).

One scalar ``T > 0`` divides every logit; it is fitted by minimising the negative log-likelihood
of held-out labels. ``T`` does not change the arg-max, only how peaked the softmax is.

This module also holds the input checks every post-hoc calibrator in :mod:`labelsieve.confidence`
shares (:func:`check_calibration_data`, :func:`check_scores`).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, logsumexp, softmax

from labelsieve._validation import check_positive_int
from labelsieve.confidence.base import register_confidence
from labelsieve.errors import InputError, NotFittedError
from labelsieve.models.base import Scores

logger = logging.getLogger(__name__)

__all__ = [
    "TemperatureScaling",
    "check_calibration_data",
    "check_scores",
    "fit_temperature",
    "temperature_nll",
    "top_label_from_probs",
]


# ----------------------------------------------------------------------------------------------
# shared input checks
# ----------------------------------------------------------------------------------------------
def check_scores(scores: Scores, *, what: str = "scores") -> np.ndarray:
    """Return ``scores.logits`` as a float64 (n, C) array; raise :class:`InputError` on NaN/inf.

    The message names the first bad row and column.
    """
    if not isinstance(scores, Scores):
        raise InputError(f"{what} must be a labelsieve.models.base.Scores; got {type(scores).__name__}.")
    z = np.asarray(scores.logits)
    if z.ndim != 2 or z.shape[1] < 2:
        raise InputError(f"{what}.logits must have shape (n, n_classes >= 2); got {z.shape}.")
    if not np.issubdtype(z.dtype, np.number):
        raise InputError(f"{what}.logits must be numeric; got dtype {z.dtype}.")
    bad = ~np.isfinite(z)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(f"{what}.logits has a non-finite value ({z[r, c]}) at row {r}, column {c}.")
    if scores.embeddings is not None:
        e = np.asarray(scores.embeddings)
        if e.ndim != 2 or e.shape[0] != z.shape[0]:
            raise InputError(f"{what}.embeddings must have shape ({z.shape[0]}, h); got {e.shape}.")
        bad = ~np.isfinite(e)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise InputError(f"{what}.embeddings has a non-finite value ({e[r, c]}) at row {r}, column {c}.")
    return z.astype(np.float64, copy=False)


def check_calibration_data(
    scores: Scores, y: np.ndarray, *, owner: str, min_samples: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Validate calibration ``(scores, y)`` and return ``(logits float64 (n, C), y int64 (n,))``.

    Raises :class:`InputError` for non-finite logits, a length mismatch, non-integer labels or a
    label code outside ``[0, C)`` (e.g. the unlabeled code -1), naming the first bad row; and
    :class:`~labelsieve.errors.NotEnoughDataError` for fewer than ``min_samples`` points.
    A class absent from ``y`` is *not* an error here: each calibrator documents what it does.
    """
    from labelsieve.errors import NotEnoughDataError

    z = check_scores(scores, what=f"{owner}.fit scores")
    y_arr = np.asarray(y)
    if y_arr.ndim != 1 or y_arr.shape[0] != z.shape[0]:
        raise InputError(f"{owner}.fit: y has shape {y_arr.shape}; expected ({z.shape[0]},) to match scores.")
    if y_arr.size and not np.issubdtype(y_arr.dtype, np.integer):
        raise InputError(f"{owner}.fit: y must be integer class codes; got dtype {y_arr.dtype}.")
    bad = (y_arr < 0) | (y_arr >= z.shape[1])
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{owner}.fit: label code {y_arr[r]} at row {r} is not a class index in [0, {z.shape[1]})."
        )
    if z.shape[0] < min_samples:
        raise NotEnoughDataError(
            f"{owner}.fit needs at least {min_samples} calibration points; got {z.shape[0]}."
        )
    return z, y_arr.astype(np.int64)


def top_label_from_probs(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(arg-max codes, max probability) of a probability matrix of shape (n, C)."""
    pred = np.argmax(probs, axis=1)
    return pred, probs[np.arange(probs.shape[0]), pred]


# ----------------------------------------------------------------------------------------------
# pure functions
# ----------------------------------------------------------------------------------------------
def temperature_nll(log_t: float | np.ndarray, logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean NLL of ``softmax(logits / T)`` at ``T = exp(log_t)`` and its derivative in ``log_t``.

    Guo et al. (2017), Sec. 4.2: ``q_i = max_k softmax(z_i / T)_k``, ``T`` minimises the NLL.
    With ``a = 1/T``: ``NLL = mean(logsumexp(a z_i) - a z_{i,y_i})`` and
    ``dNLL/dlog T = -a * mean(E_{softmax(a z_i)}[z_i] - z_{i,y_i})``.

    Parameters
    ----------
    log_t : float
    logits : array, shape (n, C)
    y : int array, shape (n,)

    Returns
    -------
    (nll, grad) : (float, float)
    """
    a = float(np.exp(-np.ravel(log_t)[0]))
    az = a * logits
    lse = logsumexp(az, axis=1)
    z_true = logits[np.arange(logits.shape[0]), y]
    nll = float(np.mean(lse - a * z_true))
    p = np.exp(az - lse[:, None])
    expected_z = np.einsum("ij,ij->i", p, logits)
    grad = -a * float(np.mean(expected_z - z_true))
    return nll, grad


def fit_temperature(logits: np.ndarray, y: np.ndarray, *, max_iter: int = 100) -> float:
    """Temperature ``T`` minimising :func:`temperature_nll` (L-BFGS-B on ``log T`` in [-7, 7]).

    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(4000, 3)) * 3.0
    >>> y = (rng.random(4000)[:, None] > np.cumsum(softmax(z / 2.0, axis=1), axis=1)).sum(1)
    >>> abs(fit_temperature(z, y) - 2.0) < 0.2
    True
    """
    z = np.asarray(logits, dtype=np.float64)
    res = minimize(
        temperature_nll,
        x0=np.array([0.0]),
        args=(z, np.asarray(y)),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-7.0, 7.0)],
        options={"maxiter": max_iter},
    )
    return float(np.exp(res.x[0]))


# ----------------------------------------------------------------------------------------------
# estimator
# ----------------------------------------------------------------------------------------------
@register_confidence("temperature")
class TemperatureScaling:
    """Post-hoc temperature scaling; confidence = max softmax of ``logits / T``.

    Parameters
    ----------
    max_iter : int, default 100
        L-BFGS iterations.

    Attributes
    ----------
    temperature_ : float
    n_classes_ : int

    Notes
    -----
    A class missing from the calibration labels is allowed: ``T`` is one shared scalar.

    >>> z = np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]])
    >>> ts = TemperatureScaling().fit(Scores(z), np.array([0, 1, 1, 0]))  # half wrong: flatten
    >>> bool(ts.temperature_ > 10)
    True
    """

    requires_fit: bool = True

    def __init__(self, *, max_iter: int = 100) -> None:
        self.max_iter = max_iter

    def fit(self, scores: Scores, y: np.ndarray) -> TemperatureScaling:
        check_positive_int("max_iter", self.max_iter, owner="TemperatureScaling")
        z, y_arr = check_calibration_data(scores, y, owner="TemperatureScaling", min_samples=1)
        self.n_classes_ = z.shape[1]
        self.temperature_ = fit_temperature(z, y_arr, max_iter=self.max_iter)
        logger.debug("TemperatureScaling: T = %.4f on %d points", self.temperature_, len(y_arr))
        return self

    def _check_fitted_scores(self, scores: Scores) -> np.ndarray:
        if not hasattr(self, "temperature_"):
            raise NotFittedError("TemperatureScaling is not fitted yet; call fit(scores, y) first.")
        z = check_scores(scores)
        if z.shape[1] != self.n_classes_:
            raise InputError(f"scores have {z.shape[1]} classes; TemperatureScaling was fitted on {self.n_classes_}.")
        return z

    def predict_proba(self, scores: Scores) -> np.ndarray:
        """Calibrated probabilities ``softmax(logits / T)``, shape (n, C)."""
        return softmax(self._check_fitted_scores(scores) / self.temperature_, axis=1)

    def confidence(self, scores: Scores) -> tuple[np.ndarray, np.ndarray]:
        """(``scores.predicted``, calibrated max probability)."""
        z = self._check_fitted_scores(scores)
        lp = log_softmax(z / self.temperature_, axis=1)
        pred = np.argmax(z, axis=1)
        return pred, np.exp(lp[np.arange(z.shape[0]), pred])
