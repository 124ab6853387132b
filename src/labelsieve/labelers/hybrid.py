"""The hybrid auto + human workflow (the auto-labeling guide's recipe), measured end to end.

1. Auto-label every item whose confidence clears the threshold (of its predicted class).
2. Route the lowest-confidence items to humans: ``human_fraction`` of the pool (5-10% in the
   guide) or a ``budget``. Humans answer through any oracle: a simulated one, a CSV round trip,
   or a project's :class:`~labelsieve.runs.project.StoreOracle` (the review queue of the web app).
3. Union: human labels win; auto-labels fill the rest; items below threshold and not routed
   stay unlabeled.
4. Train a downstream classifier on the union and compare it with one trained on human labels
   only (the whole pool human-labeled: the guide's reference, plus the same human budget spent
   on random items), all evaluated on held-out test data.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labelsieve._validation import check_interval, check_positive_int
from labelsieve.data.dataset import UNLABELED
from labelsieve.errors import InputError


def route_hybrid(
    pred: np.ndarray,
    conf: np.ndarray,
    thresholds: np.ndarray | float,
    *,
    human_fraction: float | None = 0.1,
    budget: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Masks ``(auto, human)`` of shape (n,): humans get the lowest-confidence items, the rest above
    threshold is auto-labeled (an item is never both).

    Parameters
    ----------
    pred, conf : arrays (n,)
    thresholds : float or array (n_classes,) applied to the predicted class
    human_fraction : float in (0, 1], optional — share of the pool sent to humans
    budget : int, optional — number sent to humans (overrides ``human_fraction``)

    >>> auto, human = route_hybrid(np.array([0, 1, 0, 1]), np.array([.9, .2, .6, .4]), 0.5, budget=1)
    >>> auto.tolist(), human.tolist()
    ([True, False, True, False], [False, True, False, False])
    """
    pred, conf = np.asarray(pred), np.asarray(conf, dtype=np.float64)
    n = len(conf)
    if budget is not None:
        m = check_positive_int("budget", budget, owner="route_hybrid", minimum=0)
    else:
        if human_fraction is None:
            raise InputError("route_hybrid: give human_fraction or budget.")
        f = check_interval("human_fraction", human_fraction, owner="route_hybrid", low=0.0, high=1.0, closed="right")
        m = round(f * n)
    m = min(m, n)
    human = np.zeros(n, dtype=bool)
    human[np.argsort(conf, kind="stable")[:m]] = True
    thr = np.asarray(thresholds, dtype=np.float64)
    auto = (conf >= (thr[pred] if thr.ndim else thr)) & ~human
    return auto, human


@dataclass
class HybridResult:
    """Outcome of :func:`run_hybrid`.

    ``labels`` (n,) union labels (-1 where none), ``source`` (n,) "auto"/"human"/"" and
    ``metrics``: coverage and error of the auto part, human count, and downstream test accuracies.
    """

    labels: np.ndarray
    source: np.ndarray
    metrics: dict[str, Any] = field(default_factory=dict)


def _train_eval(model: Any, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray) -> float:
    if len(y) == 0:
        return math.nan
    m = copy.deepcopy(model).fit(X, y)
    return float(np.mean(m.predict(X_test) == y_test))


def run_hybrid(
    X: np.ndarray,
    pred: np.ndarray,
    conf: np.ndarray,
    ids: np.ndarray,
    oracle: Any,
    *,
    thresholds: np.ndarray | float,
    X_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    human_fraction: float | None = 0.1,
    budget: int | None = None,
    downstream: Any = None,
    y_true: np.ndarray | None = None,
    verified: np.ndarray | None = None,
    random_state: int | None = None,
) -> HybridResult:
    """Run the hybrid workflow on a pool and measure the downstream classifier.

    Parameters
    ----------
    X : array (n, d) — features the downstream classifier trains on (e.g. embeddings).
    pred, conf : arrays (n,) — the labeler's prediction and confidence per pool item.
    ids : array (n,) — item ids, passed to ``oracle.ask``.
    oracle : object with ``ask(ids) -> Answers`` (the humans; a bare array of codes also works).
    thresholds : float or array (n_classes,)
    X_test, y_test : held-out evaluation data.
    n_classes : int
    human_fraction, budget : see :func:`route_hybrid`.
    downstream : Classifier template (default ``LogisticRegressionClassifier(n_classes=...)``).
    y_true : array (n,), optional — pool truth (simulation): enables the auto-label error and the
        human-only references (whole pool, and the same budget on random items).
    verified : int array, optional — positions already human-labeled (e.g. the verified set the
        threshold was tuned on): asked from the oracle, kept in the union, never routed or
        auto-labeled, and counted in ``n_human``.
    random_state : seed of the random-budget reference.

    Returns
    -------
    HybridResult — ``metrics`` keys: ``n``, ``n_auto``, ``n_human``, ``coverage``, ``auto_error``,
    ``acc_hybrid``, ``acc_auto_only``, ``acc_human_all``, ``acc_human_same_budget``,
    ``hybrid_vs_human_all`` (the guide's 90-95% claim), ``auto_only_vs_human_all``.
    """
    from labelsieve.models.logreg import LogisticRegressionClassifier

    X = np.asarray(X)
    pred, conf = np.asarray(pred), np.asarray(conf)
    n = len(pred)
    if X.shape[0] != n or len(conf) != n or len(ids) != n:
        raise InputError(f"X, pred, conf and ids must have the same length; got {X.shape[0]}, {n}, {len(conf)}, {len(ids)}.")
    model = downstream if downstream is not None else LogisticRegressionClassifier(n_classes=n_classes)
    is_verified = np.zeros(n, dtype=bool)
    if verified is not None:
        is_verified[np.asarray(verified, dtype=np.int64)] = True
    rest = np.flatnonzero(~is_verified)
    auto = np.zeros(n, dtype=bool)
    human = is_verified.copy()
    if human_fraction is not None and budget is None:  # the fraction is of the whole pool
        budget = round(check_interval("human_fraction", human_fraction, owner="run_hybrid", low=0.0, high=1.0,
                                          closed="right") * n)
    a_r, h_r = route_hybrid(pred[rest], conf[rest], thresholds, budget=budget)
    auto[rest[a_r]], human[rest[h_r]] = True, True
    labels = np.full(n, UNLABELED, dtype=np.int64)
    labels[auto] = pred[auto]
    if human.any():  # only the labels matter here (nothing is certified): Answers reads as its labels
        labels[human] = np.asarray(oracle.ask(np.asarray(ids)[human]), dtype=np.int64)
    source = np.full(n, "", dtype=object)
    source[auto], source[human] = "auto", "human"
    have = labels != UNLABELED
    m: dict[str, Any] = {"n": n, "n_auto": int(auto.sum()), "n_human": int(human.sum()),
                         "coverage": float(have.mean())}
    m["acc_hybrid"] = _train_eval(model, X[have], labels[have], X_test, y_test)
    m["acc_auto_only"] = _train_eval(model, X[auto], pred[auto], X_test, y_test)
    if y_true is not None:
        y_true = np.asarray(y_true)
        m["auto_error"] = float(np.mean(pred[auto] != y_true[auto])) if auto.any() else math.nan
        m["union_error"] = float(np.mean(labels[have] != y_true[have])) if have.any() else math.nan
        m["acc_human_all"] = _train_eval(model, X, y_true, X_test, y_test)
        rnd = np.random.default_rng(random_state).choice(n, int(human.sum()), replace=False)
        m["acc_human_same_budget"] = _train_eval(model, X[rnd], y_true[rnd], X_test, y_test)
        m["hybrid_vs_human_all"] = m["acc_hybrid"] / m["acc_human_all"]
        m["auto_only_vs_human_all"] = m["acc_auto_only"] / m["acc_human_all"]
    return HybridResult(labels=labels, source=source, metrics=m)
