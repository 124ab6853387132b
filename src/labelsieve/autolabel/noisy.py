"""Error guarantees when the validation labels are noisy (crowd labels).

The math is pure and lives in :mod:`labelsieve.guarantees.noisy` (Poisson-binomial evidence, the
noise-aware certifier); this module keeps the names callers imported from here, plus
:func:`conservative_label_confidence`, which needs the crowd models' GTX terms.
Derivation: ``docs/noisy-guarantee.md``.
"""

from __future__ import annotations

import numpy as np

from labelsieve.guarantees.noisy import (
    CERTAIN_TOL,
    DEFAULT_LABEL_SHARE,
    DEFAULT_MIN_ERRORS,
    PB_METHODS,
    NoiseAwareCertifier,
    PoissonBinomialEvidence,
    WrongLabelSummary,
    accuracy_limits,
    certify_thresholds_noisy,
    error_probabilities,
    expected_wrong_labels,
    noisy_upper_bound,
    poisson_binomial_pmf,
    poisson_binomial_quantile,
    prefix_quantiles,
    split_delta,
)

__all__ = [
    "CERTAIN_TOL",
    "DEFAULT_LABEL_SHARE",
    "DEFAULT_MIN_ERRORS",
    "PB_METHODS",
    "NoiseAwareCertifier",
    "PoissonBinomialEvidence",
    "WrongLabelSummary",
    "accuracy_limits",
    "certify_thresholds_noisy",
    "conservative_label_confidence",
    "error_probabilities",
    "expected_wrong_labels",
    "noisy_upper_bound",
    "poisson_binomial_pmf",
    "poisson_binomial_quantile",
    "prefix_quantiles",
    "split_delta",
]


def conservative_label_confidence(
    task: np.ndarray,
    label: np.ndarray,
    worker: np.ndarray,
    given: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    log_prior: np.ndarray,
) -> np.ndarray:
    """Smallest one-coin posterior P(y_i = given_i | labels) over accuracies within their limits.

    In the one-coin model (GTX eq. 3 with errors spread uniformly over the other classes) the
    posterior of class l increases in the accuracy of every labeler who voted l and decreases in
    the accuracy of every other labeler, so the minimum is at a corner: voters for l at their
    lower limit, the rest at their upper limit (limits clipped into [1e-6, 1 - 1e-6]).

    Parameters
    ----------
    task, label, worker : int arrays (n_labels,) — item position, class code, labeler code.
    given : int array (n_items,) — the label whose posterior is wanted.
    lower, upper : float arrays (n_workers,)
    log_prior : float array (n_classes,)

    Returns
    -------
    float array (n_items,)

    >>> q = conservative_label_confidence(np.array([0, 0]), np.array([1, 1]), np.array([0, 1]),
    ...     np.array([1]), np.array([0.7, 0.8]), np.array([0.9, 0.95]), np.log([0.5, 0.5]))
    >>> round(float(q[0]), 4)  # 0.7 * 0.8 / (0.7 * 0.8 + 0.3 * 0.2)
    0.9032
    """
    from labelsieve.crowd._base import vote_scores
    from labelsieve.crowd.gtx import gtx_terms, softmax_rows

    k = len(log_prior)
    n_items = len(given)
    agrees = label == given[task]
    acc = np.clip(np.where(agrees, lower[worker], upper[worker]), 1e-6, 1 - 1e-6)
    same, other = gtx_terms(acc, k)
    post = softmax_rows(vote_scores(task, label, same, other, n_items, k) + log_prior)
    return post[np.arange(n_items), given]
