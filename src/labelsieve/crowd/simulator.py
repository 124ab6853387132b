"""Simulation of the GTX paper, §3: a pool of labelers with accuracies alpha_j ~ U(a, b), binary
truth, a label budget B, and the four aggregators MV, WMV, SV, GTX.

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

# ---- the paper's numbers (Tables 1 and 2), transcribed ----------------------------------------
#: Table 1: method -> (average k, best tau, N, ± N, error %, ± %, MAE %, ± %)
PAPER_TABLE1 = {
    "more_accurate": {
        "MV": (5.0, None, 3000, 0.0, 0.86, 0.04, 10.0, 0.17),
        "WMV": (5.0, None, 3000, 0.0, 0.83, 0.04, 9.73, 0.17),
        "SV": (4.78, 0.99, 3140, 20.9, 0.87, 0.04, 16.8, 0.32),
        "GTX": (2.75, 0.99, 4517, 67.0, 0.83, 0.04, 1.42, 0.06),
    },
    "less_accurate": {
        "MV": (5.0, None, 3000, 0.0, 10.4, 0.30, 25.1, 0.30),
        "WMV": (5.0, None, 3000, 0.0, 10.3, 0.30, 24.3, 0.30),
        "SV": (5.0, 0.91, 3000, 0.0, 9.36, 0.30, 36.1, 0.30),
        "GTX": (4.07, 0.96, 3690, 33.0, 9.30, 0.30, 13.9, 0.40),
    },
}
#: Table 2: method -> (error %, ± %, MAE %, ± %)
PAPER_TABLE2 = {
    "more_accurate": {
        "MV": (2.64, 0.43, 5.22, 0.55),
        "WMV": (2.70, 0.47, 5.24, 0.59),
        "SV": (3.85, 0.42, 12.7, 1.02),
        "GTX": (0.29, 0.07, 0.64, 0.16),
    },
    "less_accurate": {
        "MV": (17.9, 0.95, 22.2, 0.96),
        "WMV": (17.4, 0.80, 22.0, 0.84),
        "SV": (14.9, 0.88, 32.7, 1.02),
        "GTX": (9.46, 0.80, 16.8, 1.25),
    },
}


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


def simulate_table1(
    setting: str,
    *,
    repeats: int = 10,
    budget: int = 15000,
    kappa: int = 5,
    taus: np.ndarray | None = None,
    n_workers: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """Raw results of the confidence-threshold experiment (§3.3): one row per (repeat, method, setting).

    MV and WMV collect a fixed k = 1..kappa labels per item (``tau`` NaN); SV and GTX use each
    ``tau`` in ``taus`` (default 0.85, 0.86, ..., 0.99) with at most ``kappa`` labels.
    """
    if setting not in SETTINGS:
        raise ParameterError(f"The 'setting' parameter must be one of {', '.join(SETTINGS)}. Got {setting!r} instead.")
    check_positive_int("repeats", repeats, owner="simulate_table1")
    taus = np.round(np.arange(0.85, 0.995, 0.01), 2) if taus is None else np.asarray(taus, dtype=float)
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(repeats):
        crowd = SimulatedCrowd.draw(budget, n_workers=n_workers, accuracy_range=SETTINGS[setting], rng=rng)
        for method in METHODS:
            agg = make_aggregator(method, crowd)
            grid: list[tuple[float | None, int]] = (
                [(None, kk) for kk in range(1, kappa + 1)] if method in ("MV", "WMV")
                else [(float(t), kappa) for t in taus]
            )
            path = threshold_path(agg, crowd, n_items=min(budget, crowd.n_items), kappa=kappa)
            for tau, kk in grid:
                out = threshold_stats(path, crowd.truth, budget=budget, tau=tau, kappa=kk)
                rows.append({"repeat": r, "method": method, "tau": np.nan if tau is None else tau,
                             "kappa": kk, **out})
    raw = pd.DataFrame(rows)
    raw["avg_k"] = raw["n_labels"] / raw["n_items"]
    return raw


def _se(x: pd.Series) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def summarize_table1(raw: pd.DataFrame) -> pd.DataFrame:
    """Per method, the setting (k or tau) with the lowest mean error, with mean ± standard error."""
    out = []
    for method in METHODS:
        sub = raw[raw["method"] == method]
        key = ["tau", "kappa"]
        mean_err = sub.groupby(key, dropna=False)["error"].mean()
        best = mean_err.idxmin()
        sel = sub[(sub["kappa"] == best[1]) & ((sub["tau"] == best[0]) | (np.isnan(best[0]) & sub["tau"].isna()))]
        out.append({
            "method": method,
            "avg_k": sel["avg_k"].mean(),
            "best_tau": best[0],
            "N": sel["n_items"].mean(), "N_se": _se(sel["n_items"]),
            "error": 100 * sel["error"].mean(), "error_se": 100 * _se(sel["error"]),
            "mae": 100 * sel["mae"].mean(), "mae_se": 100 * _se(sel["mae"]),
        })
    return pd.DataFrame(out)


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
    state = {"err": int(wrong.sum()), "mae": float(np.sum(1 - p_true)), "step": 0}
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


def simulate_table2(
    setting: str,
    *,
    repeats: int = 10,
    n_items: int = 5000,
    labels_per_item: int = 3,
    n_workers: int = 10,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Uncertainty-sampling experiment (§3.4): method -> array (repeats, 2, budget) of error and MAE
    after each label."""
    if setting not in SETTINGS:
        raise ParameterError(f"The 'setting' parameter must be one of {', '.join(SETTINGS)}. Got {setting!r} instead.")
    check_positive_int("repeats", repeats, owner="simulate_table2")
    budget = n_items * labels_per_item
    rng = np.random.default_rng(seed)
    traces: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    for _ in range(repeats):
        crowd = SimulatedCrowd.draw(n_items, n_workers=n_workers, accuracy_range=SETTINGS[setting], rng=rng)
        for method in METHODS:
            traces[method].append(np.stack(uncertainty_trace(method, crowd, budget=budget)))
    return {m: np.stack(v) for m, v in traces.items()}


def summarize_table2(traces: dict[str, np.ndarray]) -> pd.DataFrame:
    """Final error and MAE (%) per method, mean ± standard error over repeats."""
    rows = []
    for method, arr in traces.items():
        final = arr[:, :, -1]
        n = final.shape[0]
        se = final.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(2, np.nan)
        rows.append({"method": method, "error": 100 * final[:, 0].mean(), "error_se": 100 * se[0],
                     "mae": 100 * final[:, 1].mean(), "mae_se": 100 * se[1]})
    return pd.DataFrame(rows)


def _pm(v: float, se: float, digits: int = 2) -> str:
    return f"{v:.{digits}f} ± {se:.{digits}f}" if np.isfinite(se) else f"{v:.{digits}f}"


def table1_report(summary: pd.DataFrame, setting: str) -> pd.DataFrame:
    """Our Table 1 cells beside the paper's, as strings."""
    rows = []
    for _, r in summary.iterrows():
        p = PAPER_TABLE1[setting][r["method"]]
        rows.append({
            "method": r["method"],
            "avg k": f"{r['avg_k']:.2f}", "paper k": f"{p[0]:.2f}",
            "best tau": "-" if np.isnan(r["best_tau"]) else f"{r['best_tau']:.2f}",
            "paper tau": "-" if p[1] is None else f"{p[1]:.2f}",
            "N": _pm(r["N"], r["N_se"], 0), "paper N": _pm(p[2], p[3], 0),
            "error %": _pm(r["error"], r["error_se"]), "paper error %": _pm(p[4], p[5]),
            "MAE %": _pm(r["mae"], r["mae_se"]), "paper MAE %": _pm(p[6], p[7]),
        })
    return pd.DataFrame(rows)


def table2_report(summary: pd.DataFrame, setting: str) -> pd.DataFrame:
    """Our Table 2 cells beside the paper's, as strings."""
    rows = []
    for _, r in summary.iterrows():
        p = PAPER_TABLE2[setting][r["method"]]
        rows.append({
            "method": r["method"],
            "error %": _pm(r["error"], r["error_se"]), "paper error %": _pm(p[0], p[1]),
            "MAE %": _pm(r["mae"], r["mae_se"]), "paper MAE %": _pm(p[2], p[3]),
        })
    return pd.DataFrame(rows)
