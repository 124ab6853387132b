"""Ground Truth Extension (GTX): the one-coin naive-Bayes posterior with known labeler accuracies.

Model (Kumar, Sandler & Varshavskaya, "Fine-tuning Vision Classifiers On A Budget", eq. 1-3):

    P(Y_i = y | L(i))  ∝  pi_y * prod_{j in J(i)} alpha_j^{I[y_ij = y]} * ((1 - alpha_j) / (K - 1))^{I[y_ij != y]}

For K = 2 this is exactly eq. 3; for K > 2 a labeler's errors are spread uniformly over the other
K - 1 classes. Computed in log space and normalised with the max-shift (logsumexp) trick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from labelsieve.crowd._base import AdditiveAggregator, register_aggregator, vote_scores
from labelsieve.errors import ParameterError

#: Tolerance on ``sum(prior) == 1``.
PRIOR_SUM_TOL = 1e-6


def gtx_terms(acc: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood a label adds to the class it names, and to each other class (eq. 1)."""
    acc = np.asarray(acc, dtype=float)
    return np.log(acc), np.log1p(-acc) - np.log(max(n_classes - 1, 1))


def softmax_rows(log_scores: np.ndarray) -> np.ndarray:
    """Normalise log scores of shape (..., K) into probabilities (eq. 2).

    Shift by the row maximum before exponentiating (the logsumexp trick, written out because
    :func:`scipy.special.logsumexp` costs ~100 us per call on the single rows of live collection).
    """
    z = log_scores - log_scores.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def gtx_posterior(
    task: np.ndarray,
    label: np.ndarray,
    acc: np.ndarray,
    log_prior: np.ndarray,
    n_tasks: int,
) -> np.ndarray:
    """One-coin posterior of every task (eq. 3), shape (n_tasks, n_classes).

    Parameters
    ----------
    task, label : int arrays of shape (n_labels,)
    acc : float array of shape (n_labels,)
        Accuracy of the labeler behind each label, in (0, 1).
    log_prior : float array of shape (n_classes,)

    >>> p = gtx_posterior(np.array([0, 0]), np.array([1, 0]), np.array([0.9, 0.6]), np.log([0.5, 0.5]), 1)
    >>> p.round(4).tolist()  # 0.9*0.4 vs 0.1*0.6
    [[0.1429, 0.8571]]
    """
    n_classes = log_prior.size
    same, other = gtx_terms(acc, n_classes)
    return softmax_rows(vote_scores(task, label, same, other, n_tasks, n_classes) + log_prior)


def check_prior(prior: Any, classes: pd.Index, *, owner: str) -> np.ndarray:
    """Class prior as log-probabilities aligned with ``classes``; ``None`` is uniform."""
    k = len(classes)
    if prior is None:
        return np.full(k, -np.log(k))
    if isinstance(prior, (Mapping, pd.Series)):
        p = pd.Series(dict(prior) if isinstance(prior, Mapping) else prior)
        missing = [c for c in classes if c not in p.index]
        extra = [c for c in p.index if c not in set(classes)]
        if missing or extra:
            raise ParameterError(
                f"The 'prior' parameter of {owner} must give a probability for each class "
                f"{list(classes)!r}. Got {dict(p)!r} instead."
            )
        values = p.reindex(classes).to_numpy(dtype=float)
    else:
        values = np.asarray(prior, dtype=float).ravel()
        if values.size != k:
            raise ParameterError(
                f"The 'prior' parameter of {owner} must have one entry per class ({k}). "
                f"Got {list(values)!r} instead."
            )
    if not np.all(np.isfinite(values)) or np.any(values <= 0) or abs(values.sum() - 1.0) > PRIOR_SUM_TOL:
        raise ParameterError(
            f"The 'prior' parameter of {owner} must be positive and sum to 1. Got {list(values)!r} instead."
        )
    return np.log(values)


@register_aggregator("gtx")
class GTX(AdditiveAggregator):
    """Ground Truth Extension: naive-Bayes posterior of the true label from labels of known accuracy.

    Parameters
    ----------
    accuracies : mapping worker -> accuracy, Series, or DataFrame (worker, accuracy)
        Labeler accuracies alpha_j in (0, 1), e.g. the Beta posterior means of
        :func:`~labelsieve.crowd.estimate_accuracies`. ``None``: every worker is unknown.
    prior : None, sequence of shape (n_classes,), or mapping class -> probability
        Class prior pi; ``None`` (default) is uniform, as in the paper.
    classes : sequence, optional
        Declared classes (default: sorted unique labels).
    unknown_worker : {'prior', 'error'}
        Workers absent from ``accuracies`` get ``unknown_accuracy`` ('prior', default) or raise.
    unknown_accuracy : float in (0, 1), optional
        Default 0.5 = mean of the Beta(1, 1) prior, i.e. what we know of a labeler with no gold
        answers. For two classes such a label leaves the posterior unchanged.

    Attributes
    ----------
    probas_ : DataFrame (n_tasks, n_classes)
    labels_, confidence_, n_labels_ : Series indexed by task
    skills_ : Series, the accuracy used for each worker

    Examples
    --------
    >>> df = pd.DataFrame({"task": ["x", "x", "x"], "worker": ["a", "b", "c"], "label": [1, 0, 0]})
    >>> GTX(accuracies={"a": 0.95, "b": 0.7, "c": 0.7}).fit_predict_proba(df).round(3).to_numpy().tolist()
    [[0.223, 0.777]]
    """

    _owner = "GTX"

    def __init__(
        self,
        *,
        accuracies: Any = None,
        prior: Any = None,
        classes: Sequence[Any] | None = None,
        unknown_worker: str = "prior",
        unknown_accuracy: float | None = None,
    ) -> None:
        super().__init__(accuracies=accuracies, classes=classes, unknown_worker=unknown_worker,
                         unknown_accuracy=unknown_accuracy)
        self.prior = prior

    def _check_params(self) -> None:
        super()._check_params()
        if self.prior is not None and self.classes is not None:
            check_prior(self.prior, pd.Index(list(self.classes)), owner=self._owner)

    def label_terms(self, acc: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        return gtx_terms(acc, n_classes)

    def initial_scores(self, classes: pd.Index) -> np.ndarray:
        return check_prior(self.prior, classes, owner=self._owner)

    def proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        return softmax_rows(scores)

