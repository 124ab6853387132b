"""BatchBALD (Kirsch et al. 2019) with a **Laplace** posterior over the logistic regression.

Posterior: ``W ~ N(W_hat, (N H)^{-1})`` where ``H`` is the Hessian of the normalised objective of
:mod:`labelsieve.active.influence` (so ``N H`` is the Hessian of the negative log posterior with a
Gaussian prior of precision ``1/C`` on the weights; the flat intercept shift direction is closed
as in that module and does not change predictions). Dense Cholesky up to
:data:`~labelsieve.active.influence.DENSE_MAX_PARAMS` parameters, a diagonal Laplace beyond.

Greedy batch selection maximises ``H(y_1..y_n) - sum_i E_w H(y_i | w)``. The joint entropy is
exact while the number of label configurations is at most ``n_configs``; after that ``n_configs``
configurations are sampled from the current joint and extended by sampling (importance form).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy.special import softmax, xlogy

from labelsieve._validation import check_interval, check_positive_int
from labelsieve.active.base import QueryState, register_strategy
from labelsieve.active.influence import DENSE_MAX_PARAMS, _small_blas, augment, hessian
from labelsieve.active.surrogate import softmax_view


def laplace_samples(
    Xa_train: np.ndarray, W: np.ndarray, l2: float, n_samples: int, rng: np.random.Generator,
    *, fit_intercept: bool = True
) -> np.ndarray:
    """Draws from the Laplace posterior, shape (n_samples, d + 1, C)."""
    D1, Cn = W.shape
    N = Xa_train.shape[0]
    P = softmax(Xa_train @ W, axis=1)
    z = rng.standard_normal((n_samples, D1 * Cn))
    if D1 * Cn <= DENSE_MAX_PARAMS:
        with _small_blas():
            H = hessian(Xa_train, P, l2, fit_intercept=fit_intercept) * N
            if fit_intercept:
                u = np.zeros((D1, Cn))
                u[-1] = 1.0 / np.sqrt(Cn)
                H += np.outer(u.ravel(), u.ravel()) * float(np.mean(np.diag(H)))
            L = linalg.cholesky(H, lower=True)
            eps = linalg.solve_triangular(L, z.T, lower=True, trans="T").T  # cov = (L L^T)^{-1}
    else:
        diag = np.einsum("ij,ic->jc", Xa_train**2, P * (1 - P)) + l2 * N
        if fit_intercept:
            diag[-1] += 1e-6
        eps = z / np.sqrt(diag.ravel())
    return W[None] + eps.reshape(n_samples, D1, Cn)


def conditional_entropy(probs_k: np.ndarray) -> np.ndarray:
    """``E_w H(y | x, w)`` from posterior probabilities (K, m, C); shape (m,)."""
    return -xlogy(probs_k, probs_k).sum(axis=2).mean(axis=0)


def batchbald_select(probs_k: np.ndarray, n: int, rng: np.random.Generator, *, n_configs: int = 512) -> np.ndarray:
    """Greedy BatchBALD on posterior probabilities ``probs_k`` (K, m, C); distinct positions.

    >>> p = np.array([[[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]], [[0.1, 0.9], [0.5, 0.5], [0.9, 0.1]]])
    >>> batchbald_select(p, 1, np.random.default_rng(0)).tolist() in ([0], [2])   # disagreement wins
    True
    """
    K, m, Cn = probs_k.shape
    n = min(n, m)
    picks = np.empty(n, dtype=np.int64)
    if n == 0:
        return picks
    cond = conditional_entropy(probs_k)
    Pb = np.ones((K, 1))  # per posterior draw, probability of each tracked configuration
    omega = np.ones(1)  # entropy weights: 1 (exact enumeration) or 1/(S p(config)) (sampled)
    exact = True
    available = np.ones(m, dtype=bool)
    Pk2 = probs_k.reshape(K, m * Cn)
    for t in range(n):  # loop over the batch
        joint = (Pb.T @ Pk2 / K).reshape(-1, m, Cn)  # p(config s, y_new = c) for all candidates
        h = -(omega[:, None, None] * xlogy(joint, joint)).sum(axis=(0, 2))
        score = np.where(available, h - cond, -np.inf)
        best = np.flatnonzero(score >= score[available].max() - 1e-12 * max(1.0, abs(score[available].max())))
        j = int(rng.choice(best))
        picks[t] = j
        available[j] = False
        Pj = probs_k[:, j, :]  # (K, C)
        if exact and Pb.shape[1] * Cn <= n_configs:
            Pb = (Pb[:, :, None] * Pj[:, None, :]).reshape(K, -1)
            omega = np.ones(Pb.shape[1])
        elif exact:  # switch to sampling: draw configurations from the exact joint
            full = (Pb[:, :, None] * Pj[:, None, :]).reshape(K, -1)
            p = full.mean(axis=0)
            idx = rng.choice(len(p), size=n_configs, p=p / p.sum())
            Pb = full[:, idx]
            exact = False
        else:  # extend each sampled configuration by a label drawn from its conditional
            cond_p = np.einsum("ks,kc->sc", Pb, Pj)
            cond_p /= cond_p.sum(axis=1, keepdims=True)
            u = rng.random((Pb.shape[1], 1))
            new = np.minimum((u > np.cumsum(cond_p, axis=1)).sum(axis=1), Cn - 1)
            Pb = Pb * Pj[:, new]
        if not exact:
            omega = 1.0 / (Pb.shape[1] * Pb.mean(axis=0))
    return picks


@register_strategy("batchbald")
class BatchBALDQuery:
    """BatchBALD with a Laplace posterior of the logistic regression (see module docstring).

    Parameters
    ----------
    n_posterior : int, default 50
        Posterior draws.
    n_configs : int, default 256
        Label configurations tracked for the joint entropy.
    C : float, default 1.0
        Regularisation of the logistic regression fit when the state's model is not one.
    """

    def __init__(self, *, n_posterior: int = 50, n_configs: int = 512, C: float = 1.0) -> None:
        self.n_posterior = n_posterior
        self.n_configs = n_configs
        self.C = C

    def query(self, state: QueryState, n: int, rng: np.random.Generator) -> np.ndarray:
        owner = type(self).__name__
        check_positive_int("n", n, owner=owner, minimum=0)
        check_positive_int("n_posterior", self.n_posterior, owner=owner, minimum=2)
        check_positive_int("n_configs", self.n_configs, owner=owner, minimum=2)
        check_interval("C", self.C, owner=owner, low=0.0, high=np.inf, closed="neither")
        if min(n, len(state.X_pool)) == 0:
            return np.empty(0, dtype=np.int64)
        view = softmax_view(state, C=self.C)
        m = view.model
        Xa = augment(view.Z_train, m.fit_intercept)
        l2 = 1.0 / (m.C * len(Xa))
        Ws = laplace_samples(Xa, m.W_, l2, self.n_posterior, rng, fit_intercept=m.fit_intercept)
        Zp = augment(m._check_X(view.Z_pool), m.fit_intercept)
        probs_k = softmax(np.einsum("mj,kjc->kmc", Zp, Ws), axis=2)
        return batchbald_select(probs_k, n, rng, n_configs=self.n_configs)
