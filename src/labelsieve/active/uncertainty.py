"""Uncertainty-based and random query strategies (pure scoring functions + thin classes).

Utilities are "higher = query first". Ties are broken at random through the given Generator.
"""

from __future__ import annotations

import numpy as np
from scipy.special import entr

from labelsieve._validation import check_positive_int
from labelsieve.active.base import QueryState, register_strategy


def margin_utility(probs: np.ndarray) -> np.ndarray:
    """Negative top-1 minus top-2 probability margin, shape (n,) (Scheffer et al. 2001)."""
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return -(top2[:, 1] - top2[:, 0])


def entropy_utility(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy of the predicted distribution, shape (n,)."""
    return entr(probs).sum(axis=1)


def least_confidence_utility(probs: np.ndarray) -> np.ndarray:
    """One minus the max probability, shape (n,)."""
    return 1.0 - probs.max(axis=1)


def top_n(utility: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``n`` largest utilities, ties broken at random."""
    n = min(n, len(utility))
    if n == 0:
        return np.empty(0, dtype=np.int64)
    jitter = rng.random(len(utility))
    order = np.lexsort((jitter, -utility))  # primary: utility desc, secondary: random
    return order[:n].astype(np.int64)


def _probs(state: QueryState) -> np.ndarray:
    if state.pool_scores is not None:
        return state.pool_scores.probs
    if state.model is None:
        raise ValueError("an uncertainty strategy needs a trained model or pool scores")
    return state.model.predict_proba(state.X_pool)


@register_strategy("random")
class RandomQuery:
    """Uniform random sample without replacement."""

    def query(self, state: QueryState, n: int, rng: np.random.Generator) -> np.ndarray:
        check_positive_int("n", n, owner=type(self).__name__, minimum=0)
        m = len(state.X_pool)
        return rng.choice(m, size=min(n, m), replace=False).astype(np.int64)


class _UtilityQuery:
    utility = staticmethod(margin_utility)

    def query(self, state: QueryState, n: int, rng: np.random.Generator) -> np.ndarray:
        check_positive_int("n", n, owner=type(self).__name__, minimum=0)
        return top_n(self.utility(_probs(state)), n, rng)


@register_strategy("margin")
class MarginQuery(_UtilityQuery):
    """Smallest top-1 minus top-2 margin first."""

    utility = staticmethod(margin_utility)


@register_strategy("entropy")
class EntropyQuery(_UtilityQuery):
    """Largest predictive entropy first."""

    utility = staticmethod(entropy_utility)


@register_strategy("least-confidence")
class LeastConfidenceQuery(_UtilityQuery):
    """Smallest max-probability first."""

    utility = staticmethod(least_confidence_utility)


@register_strategy("margin-random")
class MarginRandomQuery:
    """The TBAL authors' default: take the ``oversample * n`` smallest-margin points, sample ``n``.

    Parameters
    ----------
    oversample : int, default 2
    """

    def __init__(self, *, oversample: int = 2) -> None:
        self.oversample = oversample

    def query(self, state: QueryState, n: int, rng: np.random.Generator) -> np.ndarray:
        check_positive_int("oversample", self.oversample, owner="MarginRandomQuery")
        check_positive_int("n", n, owner="MarginRandomQuery", minimum=0)
        cand = top_n(margin_utility(_probs(state)), self.oversample * n, rng)
        return rng.choice(cand, size=min(n, len(cand)), replace=False).astype(np.int64)
