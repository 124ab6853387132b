"""Soft voting (SV): a labeler gives its accuracy to the label it chose and the rest to the other
label(s) (GTX paper §3.1; for K > 2 classes, ``(1 - alpha) / (K - 1)`` to each other class)."""

from __future__ import annotations

import numpy as np

from labelsieve.crowd._base import AdditiveAggregator, normalize_rows, register_aggregator, vote_scores


def soft_vote_terms(acc: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(weight to the chosen class, weight to each other class) per label."""
    acc = np.asarray(acc, dtype=float)
    return acc, (1.0 - acc) / max(n_classes - 1, 1)


def soft_vote_proba(
    task: np.ndarray, label: np.ndarray, acc: np.ndarray, n_tasks: int, n_classes: int
) -> np.ndarray:
    """Soft-vote shares per task, shape (n_tasks, n_classes).

    >>> soft_vote_proba(np.array([0, 0]), np.array([0, 1]), np.array([0.9, 0.6]), 1, 2)
    array([[0.65, 0.35]])
    """
    same, other = soft_vote_terms(acc, n_classes)
    return normalize_rows(vote_scores(task, label, same, other, n_tasks, n_classes))


@register_aggregator("sv")
class SoftVote(AdditiveAggregator):
    """Soft voting with labeler accuracies; confidence = weight of the chosen class / number of labels.

    Parameters are those of :class:`WeightedMajorityVote`.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"task": [0, 0], "worker": ["a", "b"], "label": [0, 1]})
    >>> SoftVote(accuracies={"a": 0.9, "b": 0.6}).fit_predict_proba(df).round(2).to_numpy().tolist()
    [[0.65, 0.35]]
    """

    _owner = "SoftVote"

    def label_terms(self, acc: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        return soft_vote_terms(acc, n_classes)
