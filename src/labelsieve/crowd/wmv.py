"""Weighted majority vote (WMV): each vote weighs the labeler's accuracy (GTX paper §3.1)."""

from __future__ import annotations

import numpy as np

from labelsieve.crowd._base import AdditiveAggregator, normalize_rows, register_aggregator, vote_scores


def weighted_vote_proba(
    task: np.ndarray, label: np.ndarray, weight: np.ndarray, n_tasks: int, n_classes: int
) -> np.ndarray:
    """Weight share per task, shape (n_tasks, n_classes): ``sum_j w_j I[l_j = k] / sum_j w_j``.

    >>> weighted_vote_proba(np.array([0, 0]), np.array([0, 1]), np.array([0.9, 0.6]), 1, 2)
    array([[0.6, 0.4]])
    """
    w = np.asarray(weight, dtype=float)
    return normalize_rows(vote_scores(task, label, w, np.zeros_like(w), n_tasks, n_classes))


@register_aggregator("wmv")
class WeightedMajorityVote(AdditiveAggregator):
    """Weighted majority vote with labeler accuracies as weights.

    Confidence is the weight behind the chosen label over the total weight.

    Parameters
    ----------
    accuracies : mapping worker -> accuracy, Series, or DataFrame (worker, accuracy)
        Values in (0, 1). ``None`` treats every worker as unknown.
    classes : sequence, optional
    unknown_worker : {'prior', 'error'}
        A worker without accuracy gets ``unknown_accuracy`` ('prior') or raises ('error').
    unknown_accuracy : float in (0, 1), optional
        Default 0.5, the Beta(1, 1) prior mean (see :mod:`labelsieve.crowd.accuracy`).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"task": [0, 0, 0], "worker": ["a", "b", "c"], "label": [1, 0, 0]})
    >>> WeightedMajorityVote(accuracies={"a": 0.95, "b": 0.6, "c": 0.3}).fit_predict(df).tolist()
    [1]
    """

    _owner = "WeightedMajorityVote"

    def label_terms(self, acc: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        acc = np.asarray(acc, dtype=float)
        return acc, np.zeros_like(acc)
