"""What a run's budget can buy, said before anything is spent (issue 16, defect 11).

TBAL certifies a threshold only when at least ``min_n`` validation points lie above it: the
certifier's fixed-sequence scan starts at :func:`~labelsieve.guarantees.scan.resolve_min_n` (the
smallest n at which one error still certifies epsilon), at ``delta_test``, where ``delta_test`` is the final round's share of delta (``delta_schedule``), split over
classes with ``--scope per-class`` (:func:`~labelsieve.guarantees.scope.delta_per_test`). A
budget whose validation share (less the calibration half, when the confidence function is fitted)
is below it cannot auto-label anything under the subset guarantee; the whole-data-set guarantee
(PAC) has no such floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labelsieve.autolabel.tbal import delta_schedule
from labelsieve.guarantees.scan import resolve_min_n
from labelsieve.guarantees.scope import delta_per_test


@dataclass(frozen=True)
class Preflight:
    """The budget check of a run: ``can_certify`` False means no auto-label is possible."""

    n_validation: int  # validation points a test (a class, with per-class scope) can expect
    min_validation: int  # fewest points above a threshold the certifier considers
    min_budget: int  # the smallest budget whose validation share reaches min_validation
    can_certify: bool
    message: str


def budget_preflight(spec: Any, n_items: int, n_classes: int, *, needs_calibration: bool = False) -> Preflight:
    """Check ``spec``'s budget against the certifier's floor (see the module docstring)."""
    deltas = delta_schedule(spec.delta, spec.rounds, spec.delta_schedule)
    d_last = float(deltas[-1]) if float(deltas[-1]) > 0 else float(spec.delta)
    groups = n_classes if spec.scope == "per-class" else 1
    d_test = delta_per_test(d_last, spec.scope, groups)
    need = int(resolve_min_n("auto", spec.epsilon, d_test, spec.bound))  # where the certifier's scan starts
    share = spec.val_fraction * (0.5 if needs_calibration else 1.0) / groups
    have = round(spec.budget * share)
    min_budget = int(-(-need // share)) if share > 0 else 0
    ok = have >= need
    what = "per class" if groups > 1 else "in all"
    msg = (f"budget {spec.budget}: about {have} validation labels {what}; certifying epsilon={spec.epsilon:g} at "
           f"delta={d_test:.3g} ({spec.bound}) needs at least {need} validation points above the threshold")
    if spec.guarantee == "dataset":
        msg += (f"; --guarantee dataset: {spec.audit} audit labels then the routed items, after the {spec.budget} "
                f"TBAL labels (no minimum: the guarantee holds at any coverage)")
    elif not ok:
        msg += (f". This budget cannot auto-label anything (coverage 0): use --budget >= {min_budget}, a larger "
                f"--epsilon, --scope global, or --guarantee dataset (PAC labeling has no such floor)")
    return Preflight(have, need, min_budget, ok, msg)
