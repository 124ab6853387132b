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

import numpy as np

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


def validation_share(spec: Any, needs_calibration: bool) -> float:
    """The share of the budget the final round certifies on (half of it when calibration is fitted)."""
    return float(spec.val_fraction * (0.5 if needs_calibration else 1.0))


def budget_preflight(spec: Any, n_items: int, n_classes: int, *, needs_calibration: bool = False) -> Preflight:
    """Check ``spec``'s budget against the certifier's floor (see the module docstring)."""
    deltas = delta_schedule(spec.delta, spec.rounds, spec.delta_schedule)
    d_last = float(deltas[-1]) if float(deltas[-1]) > 0 else float(spec.delta)
    groups = n_classes if spec.scope == "per-class" else 1
    d_test = delta_per_test(d_last, spec.scope, groups)
    need = int(resolve_min_n("auto", spec.epsilon, d_test, spec.bound))  # where the certifier's scan starts
    share = validation_share(spec, needs_calibration) / groups
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


#: label sources that count as human truth for a pilot (votes alone do not: their aggregate does)
PILOT_SOURCES = ("human", "aggregate", "import", "review")
MIN_PILOT_LABELS = 30


@dataclass(frozen=True)
class Forecast:
    """What a pilot says a run can expect: shares of the project's items, with a 90% interval."""

    procedure: str  # "tbal" (subset guarantee) or "pac" (whole-data-set guarantee)
    n_pilot: int
    pilot_error: float
    estimate: float
    low: float
    high: float
    message: str


def pilot_forecast(project: Any, spec: Any, *, needs_calibration: bool = False, folds: int = 5,
                   n_bootstrap: int = 100) -> Forecast | None:
    """The coverage the budget can expect, from the labels the project already holds (a pilot).

    Out-of-fold predictions of the run's model on the human-labeled items (``folds``-fold) give
    the pilot's confidences and errors; a model fit on all of them scores the pool; the planner
    (:class:`~labelsieve.guarantees.planner.BudgetPlanner`) simulates the run's guarantee at
    ``spec.budget`` labels and returns a median with a 90% percentile interval. None when the
    project has fewer than ``MIN_PILOT_LABELS`` such labels or fewer than two classes among them.
    """
    from labelsieve.guarantees.planner import BudgetPlanner
    from labelsieve.models import make_model

    cur = project.store.current_labels()
    cur = cur[cur["source"].isin(PILOT_SOURCES) & cur["code"].notna()]
    if len(cur) < MIN_PILOT_LABELS:
        return None
    pos = cur["pos"].to_numpy(dtype=np.int64)
    y = cur["code"].to_numpy(dtype=np.int64)
    if len(np.unique(y)) < 2:
        return None
    X = project.features()
    k = len(project.classes)
    rng = np.random.default_rng(spec.seed)
    fold = rng.permutation(len(y)) % folds
    pred = np.empty(len(y), dtype=np.int64)
    conf = np.empty(len(y))
    for f in range(folds):  # a handful of folds, each one vectorised fit + score
        tr, te = fold != f, fold == f
        p = make_model(spec.model, n_classes=k, random_state=spec.seed).fit(X[pos[tr]], y[tr]).scores(X[pos[te]]).probs
        pred[te], conf[te] = p.argmax(1), p.max(1)
    pool = make_model(spec.model, n_classes=k, random_state=spec.seed).fit(X[pos], y).scores(X).probs
    n = len(X)
    # the run's humans label `budget` items for TBAL; what is left is the pool its guarantee acts on
    rest = int(n - min(spec.budget, n - 2))
    keep = np.sort(rng.choice(n, rest, replace=False))
    if spec.guarantee == "dataset":
        proc, m = "pac", int(min(spec.audit, rest - 1))  # the audit draws are the PAC procedure's labels
    else:
        proc, m = "tbal", int(max(1, min(round(spec.budget * validation_share(spec, needs_calibration)), rest - 1)))
    df = BudgetPlanner(spec.epsilon, spec.delta, budgets=[m], n_bootstrap=n_bootstrap, procedures=(proc,),
                       random_state=rng).fit(pred, conf, y, pool.max(1)[keep], pool.argmax(1)[keep]).plan()
    r = df.iloc[0]
    scale = rest / n  # the planner's shares are of its pool; report shares of the whole project
    what = ("model-labeled share (whole-data-set guarantee)" if proc == "pac"
            else "auto-labeled share (subset guarantee)")
    est, lo, hi = (float(r[c]) * scale for c in ("estimate", "low", "high"))
    err = float((pred != y).mean())
    caveat = (f"for a model as good as the pilot's, trained on {len(y)} labels: conservative when the run trains "
              "on more" if proc == "pac" else
              "one certification with a model as good as the pilot's; TBAL's rounds and its better-trained "
              "model usually auto-label more, so read it as conservative")
    msg = (f"pilot of {len(y)} human labels already in the project (pilot model error {err:.3f}): budget "
           f"{spec.budget} can expect a {what} of {est:.3f} [{lo:.3f}, {hi:.3f}] (90% interval over {n_bootstrap} "
           f"simulated runs; {caveat})")
    return Forecast(proc, len(y), err, est, lo, hi, msg)
