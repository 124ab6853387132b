"""Audit of the box-precision guarantee over many seeds (synthetic scenes, simulated detector).

Each seed draws a fresh verified set (``n_verified`` synthetic images and the simulated detector's
boxes on them), fits :class:`~labelsieve.detect.thresholds.BoxThresholds`, and measures the
precision of the boxes its thresholds accept on a large held-out pool (``n_pool`` images drawn once,
a stand-in for the population). A seed *violates* when some class's pool precision is below
1 - epsilon (per-class scope: the guarantee holds for every class at once w.p. >= 1 - delta).
The audit passes when at most a fraction delta of the seeds violate. (With ``scope="global"`` the
guarantee covers the union of the classes only; the per-class check is then stricter than the claim.) Next to it: the best-F1
threshold's pool precision and recall, and the naive rule "trust the score" (accept score >= 1 - eps),
which an over-confident detector breaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from labelsieve._validation import check_open_unit, check_positive_int
from labelsieve.detect.synthetic import SimulatedDetector, make_scenes
from labelsieve.detect.thresholds import BoxThresholds, box_outcomes

#: An over-confident detector: scores pushed towards 1 (logit x 2, +1).
OVERCONFIDENT = {"overconfidence": 2.0, "bias": 1.0, "quality": (8.0, 1.0), "fp_per_image": 0.5,
                 "image_effect": 0.5, "recall": 0.9}


class _PoolPrecision:
    """Precision/recall on the pool of "accept score >= t" per class, by binary search."""

    def __init__(self, out: pd.DataFrame, n_gt: pd.Series) -> None:
        self.classes = n_gt.index.to_numpy()
        self.n_gt = n_gt.to_numpy()
        self.sorted: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for c in self.classes:  # loop over classes
            sel = out["category_id"].to_numpy() == c
            s, tp = out["score"].to_numpy()[sel], out["tp"].to_numpy()[sel]
            o = np.argsort(s, kind="stable")
            # cumulative TP from the top: suffix sums over ascending scores
            self.sorted[int(c)] = (s[o], np.r_[np.cumsum(tp[o][::-1])[::-1], 0])

    def at(self, c: int, t: float) -> tuple[int, float, float]:
        s, suffix_tp = self.sorted[c]
        i = int(np.searchsorted(s, t, side="left"))
        n = len(s) - i
        k = int(suffix_tp[i])
        ng = int(self.n_gt[list(self.classes).index(c)])
        return n, (k / n if n else math.nan), (k / ng if ng else math.nan)


@dataclass(frozen=True)
class AuditResult:
    table: pd.DataFrame  #: one row per (seed, class)
    summary: dict[str, Any]


def audit_box_guarantee(
    *,
    n_seeds: int = 100,
    epsilon: float = 0.1,
    delta: float = 0.1,
    n_verified: int = 200,
    n_pool: int = 20000,
    detector: dict[str, Any] | None = None,
    scope: str = "per-class",
    bound: str = "clopper-pearson",
    n_classes: int = 3,
    random_state: int = 0,
) -> AuditResult:
    """Run the audit; see the module docstring.

    Returns
    -------
    AuditResult — ``table`` per (seed, class): thresholds (guarantee, best F1), pool precision and
    recall at each, boxes accepted; ``summary``: violation rates (guarantee, best F1, naive), mean
    recall at each rule, and whether the guarantee's violation rate is <= delta.
    """
    check_positive_int("n_seeds", n_seeds, owner="audit_box_guarantee")
    check_open_unit("epsilon", epsilon, owner="audit_box_guarantee")
    check_open_unit("delta", delta, owner="audit_box_guarantee")
    det_kw = dict(OVERCONFIDENT if detector is None else detector)
    root = np.random.SeedSequence(random_state)
    pool_ss, *seed_ss = root.spawn(n_seeds + 1)
    pool_rng = np.random.default_rng(pool_ss)
    pool_gt, _ = make_scenes(n_pool, n_classes=n_classes, render=False, random_state=pool_rng)
    pool_pred = SimulatedDetector(**det_kw).predict(pool_gt, random_state=pool_rng)
    pool = _PoolPrecision(*box_outcomes(pool_pred, pool_gt))
    rows = []
    for s, ss in enumerate(seed_ss):  # loop over seeds
        rng = np.random.default_rng(ss)
        gt, _ = make_scenes(n_verified, n_classes=n_classes, render=False, random_state=rng,
                            first_image_id=10**7)
        pred = SimulatedDetector(**det_kw).predict(gt, random_state=rng)
        bt = BoxThresholds(epsilon=epsilon, delta=delta, scope=scope, bound=bound).fit(pred, gt)
        rep = bt.report_
        for c in pool_gt.category_ids:  # loop over classes
            r = rep[rep["category_id"] == (c if scope == "per-class" else -1)].iloc[0]
            tg, tf = float(bt.thresholds_[int(c)]), float(r["threshold_best_f1"])
            ng, pg, rg = pool.at(int(c), tg)
            _nf, pf, rf = pool.at(int(c), tf)
            _nn, pn, rn = pool.at(int(c), 1 - epsilon)
            rows.append({"seed": s, "class": pool_gt.categories[int(c)], "threshold_guarantee": tg,
                         "pool_boxes_guarantee": ng, "pool_precision_guarantee": pg, "pool_recall_guarantee": rg,
                         "threshold_best_f1": tf, "pool_precision_best_f1": pf, "pool_recall_best_f1": rf,
                         "pool_precision_naive": pn, "pool_recall_naive": rn,
                         "verified_boxes": int(r["n_pred"])})
    tab = pd.DataFrame(rows)

    def violation_rate(col: str) -> float:
        bad = tab[col].fillna(1.0) < 1 - epsilon  # no accepted box: nothing wrong was accepted
        return float(bad.groupby(tab["seed"]).any().mean())

    rate = violation_rate("pool_precision_guarantee")
    summary = {
        "n_seeds": n_seeds, "epsilon": epsilon, "delta": delta, "n_verified_images": n_verified,
        "n_pool_images": n_pool, "detector": det_kw, "scope": scope, "bound": bound,
        "violation_rate_guarantee": rate,
        "violation_rate_best_f1": violation_rate("pool_precision_best_f1"),
        "violation_rate_naive": violation_rate("pool_precision_naive"),
        "mean_recall_guarantee": float(tab["pool_recall_guarantee"].fillna(0).mean()),
        "mean_recall_best_f1": float(tab["pool_recall_best_f1"].fillna(0).mean()),
        "mean_recall_naive": float(tab["pool_recall_naive"].fillna(0).mean()),
        "share_no_threshold": float(np.isinf(tab["threshold_guarantee"]).mean()),
        "passed": rate <= delta,
    }
    return AuditResult(tab, summary)
