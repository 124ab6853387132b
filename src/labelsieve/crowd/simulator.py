"""Simulation of the GTX paper, §3: a pool of labelers with accuracies alpha_j ~ U(a, b), binary
truth, a label budget B, and the four aggregators MV, WMV, SV, GTX. (The paper's Tables 1-2, run
over repeats beside its numbers, are the experiment :mod:`labelsieve.experiments.gtx_tables`.)

Random draws are made once per repeat in a :class:`SimulatedCrowd` (truth, the order in which the
labelers come to each item, and the answer each labeler would give), so every method sees the
same data (common random numbers) and the live collector and the vectorised threshold
simulation can be checked against each other exactly.

Choices the paper leaves open (documented in ``docs/crowd.md``):
- WMV, SV and GTX use the true accuracies (the paper's §3 has no assessment set);
- the "± " of our tables is the standard error of the mean over repeats;
- an item that the budget runs out on keeps the labels it got and counts as labeled;
- error and MAE are over the N labeled items (Table 1) or all items (Table 2);
  MAE = mean |y_i - P(y_i = 1 | L(i))| = mean (1 - P(true class)).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from labelsieve._validation import check_positive_int
from labelsieve.crowd._base import AdditiveAggregator
from labelsieve.crowd.collection import UncertaintyCollector, _Collector
from labelsieve.crowd.gtx import GTX
from labelsieve.crowd.majority_vote import MajorityVote
from labelsieve.crowd.soft_vote import SoftVote
from labelsieve.crowd.wmv import WeightedMajorityVote
from labelsieve.errors import ParameterError

logger = logging.getLogger(__name__)

SETTINGS = {"more_accurate": (0.8, 1.0), "less_accurate": (0.6, 0.9)}
METHODS = ("MV", "WMV", "SV", "GTX")

@dataclass(frozen=True)
class SimulatedCrowd:
    """One draw of the simulation.

    Attributes
    ----------
    accuracies : (n_workers,) alpha_j
    truth : (n_items,) true class codes
    order : (n_items, n_workers) the order in which workers come to each item (a permutation per row)
    answers : (n_items, n_workers) the label worker j gives item i: correct with probability
        alpha_j, otherwise uniform over the other classes
    n_classes : int
    """

    accuracies: np.ndarray
    truth: np.ndarray
    order: np.ndarray
    answers: np.ndarray
    n_classes: int

    @classmethod
    def draw(
        cls,
        n_items: int,
        *,
        n_workers: int = 10,
        accuracy_range: tuple[float, float] = (0.8, 1.0),
        n_classes: int = 2,
        rng: np.random.Generator,
    ) -> SimulatedCrowd:
        """Draw labelers, truth (uniform over classes) and answers."""
        check_positive_int("n_items", n_items, owner="SimulatedCrowd")
        check_positive_int("n_workers", n_workers, owner="SimulatedCrowd")
        check_positive_int("n_classes", n_classes, owner="SimulatedCrowd", minimum=2)
        lo, hi = accuracy_range
        if not (0.0 < lo <= hi < 1.0 or (0.0 < lo < hi <= 1.0)):
            raise ParameterError(f"The 'accuracy_range' parameter of SimulatedCrowd must satisfy "
                                 f"0 < a <= b <= 1. Got {accuracy_range!r} instead.")
        acc = rng.uniform(lo, hi, size=n_workers)
        truth = rng.integers(0, n_classes, size=n_items)
        order = np.argsort(rng.random((n_items, n_workers)), axis=1)
        correct = rng.random((n_items, n_workers)) < acc
        wrong = (truth[:, None] + rng.integers(1, n_classes, size=(n_items, n_workers))) % n_classes
        answers = np.where(correct, truth[:, None], wrong)
        return cls(acc, truth, order, answers, n_classes)

    @property
    def n_items(self) -> int:
        return int(self.truth.size)

    @property
    def n_workers(self) -> int:
        return int(self.accuracies.size)

    def accuracy_map(self) -> dict[int, float]:
        """Worker id -> accuracy, clipped into (0, 1) for the aggregators."""
        acc = np.clip(self.accuracies, 1e-6, 1 - 1e-6)
        return {j: float(a) for j, a in enumerate(acc)}


def run_collection(
    collector: _Collector,
    crowd: SimulatedCrowd,
    *,
    on_label: Callable[[Hashable], None] | None = None,
) -> _Collector:
    """Drive a live collector with simulated labelers until it returns None.

    Items 0..n_items-1 are added if the collector has none. For each requested item the next
    labeler in ``crowd.order`` answers (without replacement per item).
    """
    if not collector._tasks:
        collector.add_items(range(crowd.n_items))
    used = np.zeros(crowd.n_items, dtype=np.int64)
    while (task := collector.next_item()) is not None:
        t = int(task)  # type: ignore[call-overload]
        if used[t] >= crowd.n_workers:
            raise ParameterError(f"item {t} already has a label from every one of the {crowd.n_workers} "
                                 f"labelers; set kappa/max_labels <= {crowd.n_workers}.")
        w = int(crowd.order[t, used[t]])
        used[t] += 1
        collector.add_label(t, w, int(crowd.answers[t, w]))
        if on_label is not None:
            on_label(t)
    return collector


def make_aggregator(method: str, crowd: SimulatedCrowd) -> AdditiveAggregator:
    """The paper's four aggregators, given the true labeler accuracies."""
    if method == "MV":
        return MajorityVote(classes=range(crowd.n_classes))
    acc = crowd.accuracy_map()
    cls = {"WMV": WeightedMajorityVote, "SV": SoftVote, "GTX": GTX}.get(method)
    if cls is None:
        raise ParameterError(f"The 'method' parameter must be one of {', '.join(METHODS)}. Got {method!r} instead.")
    return cls(accuracies=acc, classes=range(crowd.n_classes), unknown_worker="error")


def threshold_path(aggregator: AdditiveAggregator, crowd: SimulatedCrowd, *, n_items: int, kappa: int) -> np.ndarray:
    """Posterior of items 0..n_items-1 after their first 1..kappa labels, shape (n_items, kappa, K)."""
    if kappa > crowd.n_workers:
        raise ParameterError(f"The 'kappa' parameter must be <= the number of labelers ({crowd.n_workers}). "
                             f"Got {kappa!r} instead.")
    k = crowd.n_classes
    acc = aggregator.resolve_accuracies(pd.Index(range(crowd.n_workers)))
    who = crowd.order[:n_items, :kappa]
    lab = np.take_along_axis(crowd.answers[:n_items], who, axis=1)
    same, other = aggregator.label_terms(acc[who], k)
    contrib = other[..., None] + (same - other)[..., None] * (lab[..., None] == np.arange(k))
    init = aggregator.initial_scores(pd.RangeIndex(k))
    return aggregator.proba_from_scores(np.cumsum(contrib, axis=1) + init)


def threshold_stats(
    path: np.ndarray, truth: np.ndarray, *, budget: int, tau: float | None, kappa: int
) -> dict[str, float]:
    """Outcome of strategy 1 given the posterior path of :func:`threshold_path` (first ``kappa`` steps used).

    Item i stops after s_i labels, the first count whose confidence is >= tau (or kappa); items
    are labeled in order and the budget truncates the last one.
    """
    conf = path[:, :kappa].max(axis=2)
    done = np.zeros_like(conf, dtype=bool) if tau is None else conf >= tau
    done[:, -1] = True
    stop = done.argmax(axis=1) + 1
    spent_before = np.concatenate([[0], np.cumsum(stop)[:-1]])
    n_got = np.clip(budget - spent_before, 0, stop)
    labeled = np.flatnonzero(n_got > 0)
    p_final = path[labeled, n_got[labeled] - 1]
    y = truth[labeled]
    return {
        "n_items": float(labeled.size),
        "n_labels": float(n_got.sum()),
        "error": float(np.mean(p_final.argmax(axis=1) != y)),
        "mae": float(np.mean(1.0 - p_final[np.arange(y.size), y])),
    }


def threshold_outcome(
    aggregator: AdditiveAggregator,
    crowd: SimulatedCrowd,
    *,
    budget: int,
    tau: float | None,
    kappa: int,
) -> dict[str, float]:
    """Vectorised equivalent of ``run_collection(ThresholdCollector(...), crowd)``.

    Returns
    -------
    dict with n_items (N, items with at least one label), n_labels, error (share of wrong hard
    labels among the N) and mae.
    """
    m = min(crowd.n_items, budget)
    path = threshold_path(aggregator, crowd, n_items=m, kappa=kappa)
    return threshold_stats(path, crowd.truth[:m], budget=budget, tau=tau, kappa=kappa)


def uncertainty_trace(
    method: str, crowd: SimulatedCrowd, *, budget: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run uncertainty sampling (live collector) and record error rate and MAE over all items after
    every label, each of shape (budget,)."""
    agg = make_aggregator(method, crowd)
    col = UncertaintyCollector(agg, classes=range(crowd.n_classes), budget=budget, max_labels=crowd.n_workers)
    col.add_items(range(crowd.n_items))
    p0 = col.proba_array(slice(None))
    truth = crowd.truth
    p_true = p0[np.arange(truth.size), truth].copy()
    wrong = (p0.argmax(axis=1) != truth).astype(np.int64)
    state: dict[str, Any] = {"err": int(wrong.sum()), "mae": float(np.sum(1 - p_true)), "step": 0}
    err = np.empty(budget)
    mae = np.empty(budget)

    def record(t: Hashable) -> None:
        i = int(t)  # type: ignore[call-overload]
        p = col.proba_array(i)
        w = int(p.argmax() != truth[i])
        state["err"] += w - wrong[i]
        wrong[i] = w
        state["mae"] += p_true[i] - p[truth[i]]
        p_true[i] = p[truth[i]]
        err[state["step"]] = state["err"] / truth.size
        mae[state["step"]] = state["mae"] / truth.size
        state["step"] += 1

    run_collection(col, crowd, on_label=record)
    n = state["step"]
    return err[:n], mae[:n]
