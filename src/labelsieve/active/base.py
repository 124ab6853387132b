"""The query-strategy interface: which pool items to send to humans next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from labelsieve.models.base import Classifier, Scores


@dataclass(frozen=True)
class QueryState:
    """What a strategy may look at.

    Attributes
    ----------
    model : trained classifier (or None before the first round)
    X_pool : features of the unlabeled candidates, shape (m, d)
    pool_scores : the model's scores on ``X_pool`` (computed once per round by the loop), or None
    X_labeled, y_labeled : the human-labeled training set so far
    """

    model: Classifier | None
    X_pool: np.ndarray
    pool_scores: Scores | None = None
    X_labeled: np.ndarray | None = None
    y_labeled: np.ndarray | None = None


@runtime_checkable
class QueryStrategy(Protocol):
    def query(self, state: QueryState, n: int, rng: np.random.Generator) -> np.ndarray:
        """Return ``min(n, m)`` distinct positions into ``state.X_pool``."""
        ...
