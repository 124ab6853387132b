"""Majority vote (MV): every label is one vote; confidence is the share of votes (GTX paper §3.1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from labelsieve.crowd._base import (
    AdditiveAggregator,
    Aggregator,
    normalize_rows,
    register_aggregator,
    vote_scores,
)


def majority_vote_proba(task: np.ndarray, label: np.ndarray, n_tasks: int, n_classes: int) -> np.ndarray:
    """Vote shares per task, shape (n_tasks, n_classes): ``count(task, class) / count(task)``.

    >>> majority_vote_proba(np.array([0, 0, 0, 1]), np.array([1, 1, 0, 0]), 2, 2)
    array([[0.33333333, 0.66666667],
           [1.        , 0.        ]])
    """
    ones = np.ones(task.size)
    return normalize_rows(vote_scores(task, label, ones, np.zeros(task.size), n_tasks, n_classes))


@register_aggregator("mv")
class MajorityVote(AdditiveAggregator):
    """Majority vote over a ``task, worker, label`` table.

    ``probas_`` holds the vote shares; hard-label ties go to the lowest class code.

    Parameters
    ----------
    classes : sequence, optional
        Declared classes (default: sorted unique labels).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"task": [1, 1, 1, 2], "worker": ["a", "b", "c", "a"], "label": ["y", "y", "n", "n"]})
    >>> MajorityVote().fit_predict(df).tolist()
    ['y', 'n']
    """

    _owner = "MajorityVote"
    uses_accuracies = False

    def __init__(self, *, classes: Sequence[Any] | None = None) -> None:
        Aggregator.__init__(self, classes=classes)  # no accuracies: only its own parameter is stored

    def _check_params(self) -> None:
        pass

    def label_terms(self, acc: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        return np.ones_like(acc, dtype=float), np.zeros_like(acc, dtype=float)


__all__ = ["MajorityVote", "majority_vote_proba"]
