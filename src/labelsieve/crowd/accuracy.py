"""Labeler accuracy from a gold (assessment) set: the MLE of GTX eq. 4 and a Beta posterior.

With ``c`` correct answers out of ``n`` gold tasks and a Beta(a, b) prior, the posterior of the
accuracy is Beta(a + c, b + n - c). Its mean ``(a + c) / (a + b + n)`` shrinks labelers with few
gold answers towards the prior mean, so they are not over-trusted, and it is always strictly
inside (0, 1), so it can be plugged into :class:`~labelsieve.crowd.GTX` (a raw MLE of 0 or 1 cannot).
The interval is the equal-tailed credible interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from labelsieve._validation import check_open_unit
from labelsieve.crowd._table import DEFAULT_ACCURACY_PRIOR, encode_table
from labelsieve.errors import InputError, ParameterError


def accuracy_mle(n_correct: np.ndarray, n_gold: np.ndarray) -> np.ndarray:
    """Share of gold tasks answered correctly (eq. 4); NaN for labelers with no gold task."""
    n_correct = np.asarray(n_correct, dtype=float)
    n_gold = np.asarray(n_gold, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_gold > 0, n_correct / n_gold, np.nan)


def beta_posterior(
    n_correct: np.ndarray, n_gold: np.ndarray, a: float = 1.0, b: float = 1.0, interval: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior mean and equal-tailed credible interval of Beta(a + c, b + n - c).

    >>> m, lo, hi = beta_posterior(np.array([9]), np.array([10]))
    >>> round(float(m[0]), 4), bool(lo[0] < 0.9 < hi[0])
    (0.8333, True)
    """
    c = np.asarray(n_correct, dtype=float)
    n = np.asarray(n_gold, dtype=float)
    pa, pb = a + c, b + n - c
    tail = (1.0 - interval) / 2.0
    return pa / (pa + pb), stats.beta.ppf(tail, pa, pb), stats.beta.ppf(1.0 - tail, pa, pb)


def _gold_series(gold: pd.DataFrame, *, source: str, line_offset: int | None) -> pd.Series:
    if not isinstance(gold, pd.DataFrame):
        raise InputError(f"{source}: expected a DataFrame with columns task, label; got {type(gold).__name__}.")
    missing = [c for c in ("task", "label") if c not in gold.columns]
    if missing:
        raise InputError(f"{source}: missing required column(s) {', '.join(missing)}; "
                         f"found {', '.join(map(str, gold.columns)) or 'none'}.")

    def where(pos: int) -> str:
        return f"{source}, line {pos + line_offset}" if line_offset is not None else f"{source}, row {gold.index[pos]!r}"

    for col in ("task", "label"):
        isna = gold[col].isna().to_numpy()
        if isna.any():
            raise InputError(f"{where(int(np.flatnonzero(isna)[0]))}: missing value in column '{col}'.")
    dup = gold["task"].duplicated().to_numpy()
    if dup.any():
        pos = int(np.flatnonzero(dup)[0])
        raise InputError(f"{where(pos)}: task {gold['task'].iloc[pos]!r} has a second gold label; one per task.")
    return pd.Series(gold["label"].to_numpy(), index=gold["task"].to_numpy())


def estimate_accuracies(
    labels: pd.DataFrame,
    gold: pd.DataFrame,
    *,
    prior: tuple[float, float] = DEFAULT_ACCURACY_PRIOR,
    interval: float = 0.95,
    classes: Sequence[Any] | None = None,
    source: tuple[str, str] = ("labels", "gold"),
    line_offset: int | None = None,
) -> pd.DataFrame:
    """Accuracy of every labeler in ``labels`` against the gold tasks.

    Parameters
    ----------
    labels : DataFrame with columns task, worker, label
    gold : DataFrame with columns task, label (one row per gold task)
    prior : (a, b), both > 0
        Beta prior of each accuracy; default Beta(1, 1) (uniform).
    interval : float in (0, 1)
        Credible level of ``lower``/``upper``.
    classes : sequence, optional
        Declared classes; gold labels must be among them (or among the observed labels).

    Returns
    -------
    DataFrame with one row per worker (order of first appearance) and columns
    ``worker, n_gold, n_correct, mle, posterior_mean, lower, upper``. Workers who labeled no gold
    task keep n_gold = 0, mle = NaN and the prior's mean and interval.

    Examples
    --------
    >>> labels = pd.DataFrame({"task": [1, 2, 3, 1], "worker": ["a", "a", "a", "b"], "label": [0, 1, 1, 1]})
    >>> gold = pd.DataFrame({"task": [1, 2, 3], "label": [0, 1, 0]})
    >>> est = estimate_accuracies(labels, gold)
    >>> est[["worker", "n_gold", "n_correct", "mle", "posterior_mean"]].round(3).to_numpy().tolist()
    [['a', 3, 2, 0.667, 0.6], ['b', 1, 0, 0.0, 0.333]]
    """
    if (not isinstance(prior, (tuple, list)) or len(prior) != 2
            or not all(isinstance(v, (int, float)) and np.isfinite(v) and v > 0 for v in prior)):
        raise ParameterError(
            f"The 'prior' parameter of estimate_accuracies must be a pair (a, b) of positive numbers. "
            f"Got {prior!r} instead."
        )
    check_open_unit("interval", interval, owner="estimate_accuracies")
    table = encode_table(labels, classes=classes, source=source[0], line_offset=line_offset)
    gold_by_task = _gold_series(gold, source=source[1], line_offset=line_offset)
    gold_codes = table.classes.get_indexer(gold_by_task.to_numpy())
    if (gold_codes < 0).any():
        pos = int(np.flatnonzero(gold_codes < 0)[0])
        raise InputError(
            f"{source[1]}: gold label {gold_by_task.iloc[pos]!r} of task {gold_by_task.index[pos]!r} is not "
            f"one of the classes {list(table.classes)!r}."
        )
    # gold class code of every coded task, -1 when the task has no gold label
    task_gold = np.full(table.n_tasks, -1, dtype=np.int64)
    pos = gold_by_task.index.get_indexer(table.tasks)
    has = pos >= 0
    task_gold[has] = gold_codes[pos[has]]
    row_gold = task_gold[table.task]
    on_gold = row_gold >= 0
    n_gold = np.bincount(table.worker[on_gold], minlength=table.n_workers)
    n_correct = np.bincount(table.worker[on_gold & (row_gold == table.label)], minlength=table.n_workers)
    mean, lower, upper = beta_posterior(n_correct, n_gold, float(prior[0]), float(prior[1]), interval)
    return pd.DataFrame({
        "worker": table.workers.to_numpy(),
        "n_gold": n_gold,
        "n_correct": n_correct,
        "mle": accuracy_mle(n_correct, n_gold),
        "posterior_mean": mean,
        "lower": lower,
        "upper": upper,
    })


def accuracies_from_estimate(estimate: pd.DataFrame, column: str = "posterior_mean") -> pd.Series:
    """Series worker -> accuracy from :func:`estimate_accuracies`, ready for ``GTX(accuracies=...)``."""
    if column not in estimate.columns:
        raise ParameterError(f"The 'column' parameter of accuracies_from_estimate must be a column of the "
                             f"estimate. Got {column!r} instead.")
    return pd.Series(estimate[column].to_numpy(dtype=float), index=estimate["worker"].to_numpy(), name="accuracy")


#: Beta prior of an unregistered labeler's accuracy in :func:`one_coin_em`: mean 0.8, worth five
#: answers. Its mean is above 1/K for every K >= 2, so a vote from a labeler we know nothing about
#: always moves the posterior towards the class it names (a mean of 1/K, or 0.5 for K = 2, would
#: make the vote carry no information, and unanimous votes would leave an item at the class prior).
EM_ACCURACY_PRIOR = (4.0, 1.0)


def one_coin_em(
    task: np.ndarray,
    worker: np.ndarray,
    label: np.ndarray,
    n_tasks: int,
    n_workers: int,
    n_classes: int,
    *,
    gold: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
    prior: tuple[float, float] = EM_ACCURACY_PRIOR,
    max_iter: int = 200,
    tol: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labeler accuracies of the one-coin model by EM with a Beta(a, b) prior (MAP-style point estimate).

    E-step: the GTX posterior of every task (eq. 1-3 of the GTX paper) under the current accuracies;
    tasks with a gold label (``gold[t] >= 0``) keep a one-hot posterior on it. M-step: the Beta
    posterior mean ``(a + c_j) / (a + b + n_j)`` where ``c_j = sum_i P(Y_i = y_ij)`` is worker j's
    expected number of correct answers and ``n_j`` their number of answers (eq. 4 with soft counts).
    Workers with ``fixed[j]`` finite (a registered accuracy) are not re-estimated.

    Parameters
    ----------
    task, worker, label : int arrays of shape (n_labels,)
    gold : int array of shape (n_tasks,), -1 where the task has no gold label
    fixed : float array of shape (n_workers,), NaN where the accuracy is to be estimated

    Returns
    -------
    accuracy, expected_correct, n_answers : arrays of shape (n_workers,)
    posterior : array of shape (n_tasks, n_classes)

    A single labeler, or labelers who never share an item, get the prior mean: their answers
    confirm themselves and carry no evidence about their accuracy.

    >>> t = np.array([0, 0, 0]); w = np.array([0, 1, 2]); y = np.array([1, 1, 1])
    >>> acc, c, n, post = one_coin_em(t, w, y, 1, 3, 2)
    >>> bool(post[0, 1] > 0.95), bool(acc[0] > 0.8)
    (True, True)
    """
    from labelsieve.crowd.gtx import gtx_posterior  # gtx imports this module's siblings only

    a, b = float(prior[0]), float(prior[1])
    if not (a > 0 and b > 0):
        raise ParameterError(f"The 'prior' parameter of one_coin_em must be two positive numbers. Got {prior!r}.")
    fixed = np.full(n_workers, np.nan) if fixed is None else np.asarray(fixed, dtype=float)
    free = ~np.isfinite(fixed)
    acc = np.where(free, a / (a + b), fixed)
    n_answers = np.bincount(worker, minlength=n_workers).astype(float)
    log_prior = np.full(n_classes, -np.log(n_classes))
    has_gold = None if gold is None else np.asarray(gold) >= 0
    post = np.empty((n_tasks, n_classes))
    correct: np.ndarray = np.zeros(n_workers)
    for _ in range(max_iter):
        post = gtx_posterior(task, label, np.clip(acc[worker], 1e-9, 1 - 1e-9), log_prior, n_tasks)
        if has_gold is not None and has_gold.any():
            post[has_gold] = 0.0
            post[np.flatnonzero(has_gold), np.asarray(gold)[has_gold]] = 1.0
        correct = np.bincount(worker, weights=post[task, label], minlength=n_workers)
        new = np.where(free, (a + correct) / (a + b + n_answers), fixed)
        done = np.max(np.abs(new - acc), initial=0.0) < tol
        acc = new
        if done:
            break
    return acc, correct, n_answers, post
