"""Dirichlet calibration (Kull et al., 2019, "Beyond temperature scaling: Obtaining well-calibrated
multi-class probabilities with Dirichlet calibration").

Calibrated probabilities ``q = softmax(W ln p + b)`` (Sec. 3, matrix-scaling form of Eq. 5) with
the ODIR penalty (Sec. 4, "Off-Diagonal and Intercept Regularisation")::

    lambda / (k (k - 1)) * sum_{i != j} W_ij^2  +  mu / k * sum_j b_j^2

fitted by L-BFGS with an analytic gradient. ``parametrization="scalar"`` constrains ``W = w I`` and
``b = 0``; because ``ln p = z - logsumexp(z)`` differs from the logits by a per-row constant, this
is exactly temperature scaling with ``T = 1 / w``.

A class absent from the calibration labels (documented fallback): the fit proceeds, the ODIR
intercept penalty keeps ``b`` finite and that class is only pushed down, not to zero; a warning
is logged. With ``mu = 0`` the intercept of an absent class would diverge, so ``mu = 0`` together
with a missing class raises :class:`~labelsieve.errors.InputError`.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from threadpoolctl import threadpool_limits

from labelsieve._validation import check_interval, check_option, check_positive_int
from labelsieve.confidence.base import register_confidence
from labelsieve.confidence.temperature import check_calibration_data, check_scores
from labelsieve.errors import InputError, NotFittedError
from labelsieve.models.base import Scores

logger = logging.getLogger(__name__)

__all__ = ["DirichletCalibration", "dirichlet_objective", "fit_dirichlet", "odir_penalty"]

#: log-probabilities are clipped here so that L-BFGS sees bounded features (p < 1e-30 is "zero").
LOG_P_FLOOR = -70.0


def odir_penalty(W: np.ndarray, b: np.ndarray, lam: float, mu: float) -> float:
    """ODIR penalty of Kull et al. (2019), Sec. 4.

    >>> odir_penalty(np.array([[1., 2.], [3., 1.]]), np.array([1., 1.]), lam=2.0, mu=1.0)
    14.0
    """
    k = W.shape[0]
    off = W - np.diag(np.diag(W))
    return float(lam / (k * (k - 1)) * np.sum(off**2) + mu / k * np.sum(b**2))


def dirichlet_objective(
    theta: np.ndarray, lp: np.ndarray, onehot: np.ndarray, lam: float, mu: float
) -> tuple[float, np.ndarray]:
    """Mean NLL of ``softmax(lp W^T + b)`` plus the ODIR penalty, and its gradient.

    ``theta`` packs ``W`` (k*k, row-major) then ``b`` (k).
    """
    n, k = lp.shape
    W = theta[: k * k].reshape(k, k)
    b = theta[k * k :]
    out = lp @ W.T
    out += b
    out -= out.max(axis=1, keepdims=True)
    q = np.exp(out)
    norm = q.sum(axis=1)
    nll = float(np.log(norm).sum() - np.sum(out * onehot)) / n
    q /= norm[:, None]
    G = (q - onehot) / n  # d nll / d out
    off = W - np.diag(np.diag(W))
    gW = G.T @ lp + 2.0 * lam / (k * (k - 1)) * off
    gb = G.sum(axis=0) + 2.0 * mu / k * b
    return nll + odir_penalty(W, b, lam, mu), np.concatenate([gW.ravel(), gb])


def fit_dirichlet(
    lp: np.ndarray, y: np.ndarray, *, lam: float = 1e-2, mu: float = 1e-2, max_iter: int = 500,
    tol: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray]:
    """``(W (k, k), b (k,))`` minimising :func:`dirichlet_objective`, starting from ``W = I, b = 0``.

    ``tol`` is L-BFGS's relative objective tolerance (the NLL is flat near its optimum; 1e-8 stops
    within ~1e-6 of the converged NLL at a fraction of the iterations).
    """
    n, k = lp.shape
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0
    theta0 = np.concatenate([np.eye(k).ravel(), np.zeros(k)])
    # (n, k) @ (k, k) products are far too small for threaded BLAS; threads only add contention
    with threadpool_limits(1, user_api="blas"):
        res = minimize(
            dirichlet_objective,
            theta0,
            args=(lp, onehot, lam, mu),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "ftol": tol},
        )
    return res.x[: k * k].reshape(k, k), res.x[k * k :]


def _scalar_objective(w: np.ndarray, lp: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    out = w[0] * lp
    lq = log_softmax(out, axis=1)
    rows = np.arange(lp.shape[0])
    nll = -float(np.mean(lq[rows, y]))
    g = float(np.mean(np.einsum("ij,ij->i", np.exp(lq), lp) - lp[rows, y]))
    return nll, np.array([g])


@register_confidence("dirichlet")
class DirichletCalibration:
    """Dirichlet calibration with ODIR regularisation.

    Parameters
    ----------
    reg_lambda : float >= 0, default 0.01
        Weight on the off-diagonal entries of ``W``.
    reg_mu : float >= 0, default 0.01
        Weight on the intercept ``b``.
    parametrization : {"full", "scalar"}, default "full"
        ``"scalar"``: ``W = w I``, ``b = 0`` (temperature scaling).
    max_iter : int, default 500

    Attributes
    ----------
    coef_ : array (k, k)
    intercept_ : array (k,)

    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(500, 3)) * 4
    >>> dc = DirichletCalibration().fit(Scores(z), np.argmax(z, 1))
    >>> dc.predict_proba(Scores(z)).shape
    (500, 3)
    """

    requires_fit: bool = True

    def __init__(
        self,
        *,
        reg_lambda: float = 1e-2,
        reg_mu: float = 1e-2,
        parametrization: str = "full",
        max_iter: int = 500,
    ) -> None:
        self.reg_lambda = reg_lambda
        self.reg_mu = reg_mu
        self.parametrization = parametrization
        self.max_iter = max_iter

    def fit(self, scores: Scores, y: np.ndarray) -> DirichletCalibration:
        owner = "DirichletCalibration"
        check_interval("reg_lambda", self.reg_lambda, owner=owner, low=0, high=np.inf, closed="left")
        check_interval("reg_mu", self.reg_mu, owner=owner, low=0, high=np.inf, closed="left")
        check_option("parametrization", self.parametrization, owner=owner, options=("full", "scalar"))
        check_positive_int("max_iter", self.max_iter, owner=owner)
        z, y_arr = check_calibration_data(scores, y, owner=owner, min_samples=2)
        k = z.shape[1]
        lp = np.maximum(log_softmax(z, axis=1), LOG_P_FLOOR)
        missing = np.setdiff1d(np.arange(k), y_arr)
        if self.parametrization == "scalar":
            res = minimize(
                _scalar_objective, np.array([1.0]), args=(lp, y_arr), jac=True, method="L-BFGS-B",
                bounds=[(1e-3, 1e3)], options={"maxiter": self.max_iter},
            )
            self.coef_, self.intercept_ = float(res.x[0]) * np.eye(k), np.zeros(k)
        else:
            if missing.size:
                if self.reg_mu == 0:
                    raise InputError(
                        f"DirichletCalibration.fit: classes {missing.tolist()} never occur in the calibration "
                        "labels and reg_mu=0 leaves their intercepts unbounded; use reg_mu > 0 or more data."
                    )
                logger.warning(
                    "DirichletCalibration: classes %s absent from calibration labels; their intercepts are "
                    "held finite only by reg_mu=%g",
                    missing.tolist(),
                    self.reg_mu,
                )
            self.coef_, self.intercept_ = fit_dirichlet(
                lp, y_arr, lam=self.reg_lambda, mu=self.reg_mu, max_iter=self.max_iter
            )
        self.n_classes_ = k
        return self

    def predict_proba(self, scores: Scores) -> np.ndarray:
        """``softmax(W ln p + b)``, shape (n, C)."""
        if not hasattr(self, "coef_"):
            raise NotFittedError("DirichletCalibration is not fitted yet; call fit(scores, y) first.")
        z = check_scores(scores)
        if z.shape[1] != self.n_classes_:
            raise InputError(
                f"scores have {z.shape[1]} classes; DirichletCalibration was fitted on {self.n_classes_}."
            )
        lp = np.maximum(log_softmax(z, axis=1), LOG_P_FLOOR)
        return softmax(lp @ self.coef_.T + self.intercept_, axis=1)

    def confidence(self, scores: Scores) -> tuple[np.ndarray, np.ndarray]:
        """(``scores.predicted``, calibrated probability *of the classifier's predicted class*).

        The calibrated matrix may have a different arg-max; TBAL labels with the classifier's
        prediction, so the confidence is the calibrated probability of that class.
        """
        q = self.predict_proba(scores)
        pred = np.argmax(np.asarray(scores.logits), axis=1)
        return pred, q[np.arange(q.shape[0]), pred]
