"""BADGE (Ash et al. 2020): k-means++ seeding on last-layer gradient embeddings.

For a softmax layer on features ``z`` the gradient embedding of a point under its predicted label
``yhat`` is ``g = (p - e_yhat) kron z``. Distances are computed without forming ``g``::

    ||g_i - g_j||^2 = |a_i|^2 |z_i|^2 + |a_j|^2 |z_j|^2 - 2 (a_i . a_j)(z_i . z_j),   a = p - e_yhat
"""

from __future__ import annotations

import numpy as np

from labelsieve._validation import check_finite_2d, check_positive_int
from labelsieve.active.base import QueryState, register_strategy
from labelsieve.active.uncertainty import _probs
from labelsieve.errors import InputError


def gradient_embedding_factors(probs: np.ndarray, Z: np.ndarray, fit_intercept: bool = True):
    """The two factors of ``g = a kron z~``: ``a = p - e_argmax(p)`` (m, C) and ``z~`` (m, h[+1])."""
    a = np.array(probs, dtype=np.float64)
    a[np.arange(len(a)), np.argmax(a, axis=1)] -= 1.0
    Z = np.asarray(Z, dtype=np.float64)
    if fit_intercept:
        Z = np.hstack([Z, np.ones((len(Z), 1))])
    return a, Z


def kmeanspp_seeding(a: np.ndarray, Z: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding on ``g_i = a_i kron Z_i`` (first seed: largest norm); distinct positions.

    >>> a = np.array([[0.5, -0.5], [0.0, 0.0], [-0.4, 0.4]]); Z = np.ones((3, 1))
    >>> kmeanspp_seeding(a, Z, 2, np.random.default_rng(0)).tolist()
    [0, 2]
    """
    m = len(a)
    n = min(n, m)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    sq = np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", Z, Z)
    picks = np.empty(n, dtype=np.int64)
    chosen = np.zeros(m, dtype=bool)
    min_d = np.full(m, np.inf)
    j = int(np.argmax(sq))
    for t in range(n):  # loop over the batch
        picks[t] = j
        chosen[j] = True
        d = sq + sq[j] - 2.0 * (a @ a[j]) * (Z @ Z[j])
        min_d = np.minimum(min_d, np.maximum(d, 0.0))
        if t + 1 == n:
            break
        w = np.where(chosen, 0.0, min_d)
        total = w.sum()
        if total > 0 and np.isfinite(total):
            j = int(rng.choice(m, p=w / total))
        else:  # all remaining points coincide with a seed: uniform among the rest
            j = int(rng.choice(np.flatnonzero(~chosen)))
    return picks


@register_strategy("badge")
class BadgeQuery:
    """BADGE on the logistic-regression (or embedding) layer: uncertainty and diversity in one step.

    Features are ``pool_scores.embeddings`` when the model has them, else the raw pool features.
    """

    def query(self, state: QueryState, n: int, rng: np.random.Generator) -> np.ndarray:
        check_positive_int("n", n, owner="BadgeQuery", minimum=0)
        if min(n, len(state.X_pool)) == 0:
            return np.empty(0, dtype=np.int64)
        probs = _probs(state)
        Z = state.X_pool
        if state.pool_scores is not None and state.pool_scores.embeddings is not None:
            Z = state.pool_scores.embeddings
        Z = check_finite_2d(Z, what="pool")
        if len(probs) != len(Z):
            raise InputError(f"pool scores cover {len(probs)} items but the pool has {len(Z)}.")
        a, Zt = gradient_embedding_factors(probs, Z)
        return kmeanspp_seeding(a, Zt, n, rng)
