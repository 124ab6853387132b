"""Global vs per-class thresholds: how delta is split and how the scan runs per group.

* ``global``: one threshold for every class, one scan with all of delta.
* ``per-class``: one scan per (predicted) class with ``delta / K`` each (Bonferroni): all K
  certificates hold together with probability >= 1 - delta, hence also the union of the
  classes' auto-labels has error <= epsilon.

>>> delta_per_test(0.05, "global", 4), delta_per_test(0.05, "per-class", 4)
(0.05, 0.0125)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from labelsieve._validation import check_option, check_positive_int
from labelsieve.guarantees.scan import ScanResult

SCOPES = ("global", "per-class")


def delta_per_test(delta: float, scope: str, n_groups: int, *, owner: str = "delta_per_test") -> float:
    """The delta each scan spends: all of it (global) or ``delta / n_groups`` (per-class, Bonferroni)."""
    check_option("scope", scope, owner=owner, options=SCOPES)
    check_positive_int("n_groups", n_groups, owner=owner)
    return delta if scope == "global" else delta / n_groups


def scan_by_scope(
    predicted: NDArray[np.integer],
    confidence: NDArray[np.float64],
    payload: NDArray[np.generic],
    *,
    n_classes: int,
    scope: str,
    scan_sorted: Callable[[NDArray[np.float64], NDArray[np.generic]], ScanResult],
) -> tuple[NDArray[np.float64], tuple[ScanResult, ...], dict[int, str]]:
    """Run ``scan_sorted(confidences high->low, payload in the same order)`` once (global scope) or
    once per predicted class, and collect thresholds, scans and the reasons for missing thresholds.

    The payload is what a scan needs per point: a wrong/right flag, or a probability of being wrong.
    """
    thresholds = np.full(n_classes, np.inf)
    reasons: dict[int, str] = {}
    order = np.argsort(-confidence)  # order within ties is irrelevant: cuts are between distinct values
    if scope == "global":
        res = scan_sorted(confidence[order], payload[order])
        thresholds[:] = res.threshold
        return thresholds, (res,), ({c: res.reason for c in range(n_classes)} if res.reason else {})
    # a stable (radix) sort by class after the sort by confidence: each class slice stays sorted
    order = order[np.argsort(predicted[order].astype(np.min_scalar_type(n_classes)), kind="stable")]
    c_sorted, p_sorted = confidence[order], payload[order]
    cuts = np.searchsorted(predicted[order], np.arange(n_classes + 1))
    out = []
    for c in range(n_classes):  # loop over classes, not samples
        if cuts[c] == cuts[c + 1]:
            res = ScanResult(math.inf, 0, 0, math.nan, 0, f"no validation point is predicted as class {c}")
        else:
            res = scan_sorted(c_sorted[cuts[c] : cuts[c + 1]], p_sorted[cuts[c] : cuts[c + 1]])
        thresholds[c] = res.threshold
        if res.reason:
            reasons[c] = res.reason
        out.append(res)
    return thresholds, tuple(out), reasons
