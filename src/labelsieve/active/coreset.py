"""CoreSet (Sener & Savarese 2018): greedy k-center over the pool, starting from the labeled set."""

from __future__ import annotations

import numpy as np

from labelsieve._validation import check_finite_2d, check_positive_int
from labelsieve.active.base import QueryState, register_strategy
from labelsieve.errors import InputError


def _sq_dist_to(A: np.ndarray, a_sq: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared distances of rows of A (m, h) to rows of B (k, h); shape (m, k), clipped at 0."""
    d = a_sq[:, None] - 2.0 * A @ B.T + np.einsum("ij,ij->i", B, B)[None, :]
    return np.maximum(d, 0.0)


def k_center_greedy(
    Z_pool: np.ndarray, Z_centers: np.ndarray | None, n: int, rng: np.random.Generator, *, block: int = 2048
) -> np.ndarray:
    """Greedy 2-approximation of k-center: repeatedly take the pool point farthest from all centers.

    Parameters
    ----------
    Z_pool : array (m, h); Z_centers : array (k, h) or None (then the first pick is random)
    n : int, number of picks (clipped to m)

    Returns
    -------
    positions : int array (min(n, m),), distinct.

    >>> Z = np.array([[0.0], [1.0], [10.0], [14.0]])
    >>> k_center_greedy(Z, np.array([[0.0]]), 2, np.random.default_rng(0)).tolist()
    [3, 2]
    """
    Z = np.asarray(Z_pool, dtype=np.float64)
    m = len(Z)
    n = min(n, m)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    z_sq = np.einsum("ij,ij->i", Z, Z)
    min_d = np.full(m, np.inf)
    if Z_centers is not None and len(Z_centers):
        C = np.asarray(Z_centers, dtype=np.float64)
        for s in range(0, len(C), block):  # blocks of centers bound memory at m x block
            min_d = np.minimum(min_d, _sq_dist_to(Z, z_sq, C[s:s + block]).min(axis=1))
    picks = np.empty(n, dtype=np.int64)
    for t in range(n):  # loop over the batch, not over samples
        if np.isinf(min_d).all():
            j = int(rng.integers(m))
        else:
            top = np.flatnonzero(min_d == min_d.max())
            j = int(rng.choice(top))
        picks[t] = j
        min_d = np.minimum(min_d, _sq_dist_to(Z, z_sq, Z[j:j + 1])[:, 0])
        min_d[j] = -1.0  # never picked twice
    return picks


@register_strategy("coreset")
class CoreSetQuery:
    """Greedy k-center on the model's embeddings (``pool_scores.embeddings``) or on the raw features.

    >>> from labelsieve.active.base import QueryState
    >>> s = QueryState(None, np.array([[0.0], [5.0], [9.0]]), X_labeled=np.array([[0.0]]))
    >>> CoreSetQuery().query(s, 1, np.random.default_rng(0)).tolist()
    [2]
    """

    def query(self, state: QueryState, n: int, rng: np.random.Generator) -> np.ndarray:
        check_positive_int("n", n, owner="CoreSetQuery", minimum=0)
        model = state.model
        if state.pool_scores is not None and state.pool_scores.embeddings is not None:
            Z_pool = state.pool_scores.embeddings
            Z_lab = None
            if state.X_labeled is not None and model is not None:
                Z_lab = model.scores(state.X_labeled).embeddings
        else:
            Z_pool, Z_lab = state.X_pool, state.X_labeled
        Z_pool = check_finite_2d(Z_pool, what="pool")
        if Z_lab is not None:
            Z_lab = check_finite_2d(Z_lab, what="labeled set")
            if Z_lab.shape[1] != Z_pool.shape[1]:
                raise InputError(f"pool has {Z_pool.shape[1]} features; the labeled set has {Z_lab.shape[1]}.")
        return k_center_greedy(Z_pool, Z_lab, n, rng)
