"""The audit of the noise-aware guarantee, and the cost table (issue #12).

* :func:`audit_runs`: over many seeds, TBAL validated on GTX-aggregated crowd labels, once with the
  noise-aware certifier and once using the aggregated labels as if they were true (naive). Per run:
  coverage, true auto-labeling error, and how the naive count is wrong (crowd errors that hide a
  model error by agreeing with it, and crowd errors that invent one).
* :func:`cost_table`: coverage at the same total cost for (a) expert labels, (b) one crowd
  answer per item, (c) GTX-collected crowd labels, (b) and (c) with the noise-aware bound.

Truth is known (simulation); the error reported is the realised error of the auto-labels on the
pool, as in ``labelsieve bench tbal``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from labelsieve.autolabel.certify import certify_thresholds
from labelsieve.autolabel.crowd_oracle import CrowdOracle, reference_probabilities
from labelsieve.autolabel.noisy import NoiseAwareCertifier
from labelsieve.autolabel.oracles import SimulatedOracle
from labelsieve.autolabel.tbal import TBAL
from labelsieve.data.dataset import Dataset
from labelsieve.models import make_model

SETTINGS = {"U(0.6,0.9)": (0.6, 0.9), "U(0.8,1.0)": (0.8, 1.0)}


def naive_certifier(*args: Any, label_confidence: Any = None, error_probability: Any = None, **kw: Any):
    """Certify on the aggregated labels as if they were the truth (ignores their posteriors)."""
    return certify_thresholds(*args, **kw)


def _mechanism(res: Any, ds: Dataset, oracle: CrowdOracle) -> tuple[int, int]:
    """Among human-labeled items, under the last round's rule: crowd errors that agree with a wrong
    prediction (hidden errors) and crowd errors that contradict a right one (invented errors)."""
    human = res.labels[res.labels.source == "human"]
    if len(human) == 0 or not res.rules:
        return 0, 0
    pos = np.array([oracle._pos[i] for i in human.id], dtype=np.int64)
    model, cf, _ = res.rules[-1]
    pred, _ = cf.confidence(model.scores(ds.X[pos]))
    assert ds.y is not None, "the audit simulates a crowd, which needs ground truth"
    given, truth = human.code.to_numpy(), ds.y[pos]
    crowd_wrong = given != truth
    return int((crowd_wrong & (pred == given)).sum()), int((crowd_wrong & (pred == truth)).sum())


def _tbal_row(res: Any, ds: Dataset) -> dict[str, Any]:
    m = res.metrics
    err = m["auto_label_error"]
    return {
        "coverage": m["coverage"],
        "n_auto": m["n_auto_labeled"],
        "true_error": 0.0 if err is None else float(err),
    }


def audit_seed(
    ds: Dataset,
    reference: np.ndarray,
    seed: int,
    setting: str,
    *,
    epsilon: float = 0.05,
    delta: float = 0.05,
    delta_accuracy: float = 0.01,
    budget: int = 800,
    rounds: int = 5,
    tau: float = 0.999,
    kappa: int = 7,
    gold_size: int = 400,
    difficulty: float = 0.75,
    model: str = "logreg",
    scope: str = "global",
    delta_schedule: str = "geometric",
) -> list[dict[str, Any]]:
    """One seed: the noise-aware run and the naive run on the same crowd (same draws)."""
    rows = []
    for method, cert, d in (
        ("noise-aware", NoiseAwareCertifier(), delta - delta_accuracy),
        ("naive", naive_certifier, delta),
    ):
        oracle = CrowdOracle(ds, accuracy_range=SETTINGS[setting], reference=reference, tau=tau, kappa=kappa,
                             gold_size=gold_size, delta_accuracy=delta_accuracy, difficulty=difficulty,
                             random_state=seed)
        res = TBAL(model=make_model(model, n_classes=ds.n_classes, random_state=seed), epsilon=epsilon, delta=d,
                   budget=budget, rounds=rounds, scope=scope, delta_schedule=delta_schedule, certifier=cert,
                   random_state=seed).run(ds, oracle)
        hidden, invented = _mechanism(res, ds, oracle)
        s = oracle.summary()
        rows.append({"dataset": ds.name, "setting": setting, "method": method, "seed": seed, **_tbal_row(res, ds),
                     "crowd_label_error": s["label_error"], "answers_per_item": s["answers_per_item"],
                     "hidden_errors": hidden, "invented_errors": invented})
    return rows


def audit_runs(
    ds: Dataset,
    *,
    seeds: int = 200,
    settings: tuple[str, ...] = tuple(SETTINGS),
    n_jobs: int = 1,
    progress: bool = False,
    reference: np.ndarray | None = None,
    **kw: Any,
) -> pd.DataFrame:
    """One row per (setting, seed, method)."""
    return _over_seeds(audit_seed, ds, seeds, settings, n_jobs, reference, progress, "noisy audit", kw)


def _over_seeds(
    per_seed: Any, ds: Dataset, seeds: int, settings: tuple[str, ...], n_jobs: int,
    reference: np.ndarray | None, progress: bool, what: str, kw: dict[str, Any],
) -> pd.DataFrame:
    """Run ``per_seed(ds, ref, seed, setting, **kw)`` (a list of rows) for every setting x seed."""
    from joblib import Parallel, delayed

    ref = reference if reference is not None else reference_probabilities(ds, random_state=0)
    jobs = [(s, st) for st in settings for s in range(seeds)]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc=f"{what} on {ds.name}", unit="seed")
    out = Parallel(n_jobs=n_jobs)(delayed(per_seed)(ds, ref, s, st, **kw) for s, st in jobs)
    return pd.DataFrame([r for rows in out for r in rows])


def summarize_audit(runs: pd.DataFrame, epsilon: float) -> pd.DataFrame:
    """Per (dataset, setting, method): violation rate (true error > epsilon), coverage, errors."""
    r = runs.assign(viol=runs.true_error > epsilon)
    g = r.groupby(["dataset", "setting", "method"], sort=False)
    return pd.DataFrame({
        "seeds": g.size(),
        "violation_rate": g.viol.mean(),
        "coverage": g.coverage.mean(),
        "coverage_sd": g.coverage.std(ddof=1),
        "true_error_mean": g.true_error.mean(),
        "true_error_max": g.true_error.max(),
        "crowd_label_error": g.crowd_label_error.mean(),
        "answers_per_item": g.answers_per_item.mean(),
        "hidden_errors": g.hidden_errors.mean(),
        "invented_errors": g.invented_errors.mean(),
    }).reset_index()


def format_audit(summary: pd.DataFrame, epsilon: float, delta: float) -> str:
    w = max([9, *(len(str(d)) + 1 for d in summary.dataset)])
    lines = [(f"{'dataset':<{w}}{'labelers':<12}{'method':<13}{'seeds':>6}{'err>eps':>9}{'coverage':>17}"
             f"{'true err':>10}{'max err':>9}{'crowd err':>10}{'ans/item':>9}{'hidden':>8}{'invented':>9}")]
    for _, r in summary.iterrows():
        lines.append(f"{r.dataset:<{w}}{r.setting:<12}{r.method:<13}{int(r.seeds):>6}{r.violation_rate:>9.3f}"
                     f"{r.coverage:>10.3f} ± {r.coverage_sd:.3f}{r.true_error_mean:>10.4f}{r.true_error_max:>9.4f}"
                     f"{r.crowd_label_error:>10.4f}{r.answers_per_item:>9.2f}{r.hidden_errors:>8.1f}"
                     f"{r.invented_errors:>9.1f}")
    lines.append(
        f"eps={epsilon}, delta={delta} in all (noise-aware: delta_accuracy=0.01 on labeler accuracies + the rest in "
        "TBAL). err>eps = share of seeds whose true auto-label error exceeds eps (must be <= delta for noise-aware). "
        "hidden/invented = per run, human-labeled items whose wrong crowd label agrees with a wrong prediction "
        "(hides an error) / contradicts a right one (invents an error)."
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the cost table
def _pilot_answers_per_item(ds: Dataset, ref: np.ndarray, seed: int, **oracle_kw: Any) -> float:
    """Mean answers per item of a collection strategy, from a pilot on 300 random items."""
    o = CrowdOracle(ds, reference=ref, random_state=10_000 + seed, **oracle_kw)
    idx = np.random.default_rng(seed).choice(len(ds), size=min(300, len(ds)), replace=False)
    o.ask(ds.ids[idx])
    return float(o.n_answers_[idx].mean())


def cost_seed(
    ds: Dataset,
    ref: np.ndarray,
    seed: int,
    setting: str,
    *,
    total_cost: float = 4000.0,
    expert_cost: float = 10.0,
    crowd_cost: float = 1.0,
    epsilon: float = 0.05,
    delta: float = 0.05,
    delta_accuracy: float = 0.01,
    rounds: int = 5,
    tau: float = 0.999,
    kappa: int = 7,
    gold_size: int = 400,
    difficulty: float = 0.75,
    model: str = "logreg",
    scope: str = "global",
    delta_schedule: str = "geometric",
) -> list[dict[str, Any]]:
    """One seed of the three label sources at the same total cost (gold answers come from earlier
    tasks and are not charged)."""
    rows = []
    mk = lambda: make_model(model, n_classes=ds.n_classes, random_state=seed)
    n_expert = min(int(total_cost // expert_cost), len(ds) - 1)
    tb: dict[str, Any] = {"rounds": rounds, "scope": scope, "delta_schedule": delta_schedule, "random_state": seed}
    res = TBAL(model=mk(), epsilon=epsilon, delta=delta, budget=n_expert, **tb).run(ds, SimulatedOracle(ds, random_state=seed))
    rows.append({"source": "(a) expert labels", "items": n_expert, "cost": n_expert * expert_cost,
                 **_tbal_row(res, ds)})
    common: dict[str, Any] = {"accuracy_range": SETTINGS[setting], "gold_size": gold_size,
                              "delta_accuracy": delta_accuracy, "difficulty": difficulty, "crowd_cost": crowd_cost,
                              "expert_cost": expert_cost}
    sources: tuple[tuple[str, dict[str, Any]], ...] = (("(b) one crowd answer/item", {"kappa": 1, "tau": 1.0}),
                                                       ("(c) GTX crowd, noise-aware", {"kappa": kappa, "tau": tau}))
    for name, kw in sources:
        apl = _pilot_answers_per_item(ds, ref, seed, **common, **kw)
        items = min(int(total_cost / (crowd_cost * apl)), len(ds) - 1)
        oracle = CrowdOracle(ds, reference=ref, random_state=seed, **common, **kw)
        res = TBAL(model=mk(), epsilon=epsilon, delta=delta - delta_accuracy, budget=items,
                   certifier=NoiseAwareCertifier(), **tb).run(ds, oracle)
        rows.append({"source": name, "items": items, "cost": oracle.answers_spent * crowd_cost, **_tbal_row(res, ds)})
    for r in rows:
        r.update({"dataset": ds.name, "setting": setting, "seed": seed})
    return rows


def cost_table(
    ds: Dataset,
    *,
    seeds: int = 20,
    settings: tuple[str, ...] = tuple(SETTINGS),
    n_jobs: int = 1,
    reference: np.ndarray | None = None,
    progress: bool = False,
    **kw: Any,
) -> pd.DataFrame:
    """One row per (setting, seed, source)."""
    return _over_seeds(cost_seed, ds, seeds, settings, n_jobs, reference, progress, "cost table", kw)


def summarize_cost(runs: pd.DataFrame, epsilon: float) -> pd.DataFrame:
    r = runs.assign(viol=runs.true_error > epsilon)
    g = r.groupby(["dataset", "setting", "source"], sort=False)
    out = pd.DataFrame({
        "seeds": g.size(),
        "items_labeled": g["items"].mean(),
        "cost": g.cost.mean(),
        "coverage": g.coverage.mean(),
        "true_error": g.true_error.mean(),
        "violation_rate": g.viol.mean(),
        "n_auto": g.n_auto.mean(),
    }).reset_index()
    out["cost_per_auto_label"] = out.cost / out.n_auto.where(out.n_auto > 0, math.nan)
    return out


def format_cost(summary: pd.DataFrame) -> str:
    w = max([9, *(len(str(d)) + 1 for d in summary.dataset)])
    lines = [(f"{'dataset':<{w}}{'labelers':<12}{'source':<29}{'seeds':>6}{'items':>7}{'cost':>8}{'coverage':>10}"
             f"{'true err':>10}{'err>eps':>9}{'cost/auto':>10}")]
    for _, r in summary.iterrows():
        lines.append(f"{r.dataset:<{w}}{r.setting:<12}{r.source:<29}{int(r.seeds):>6}{r.items_labeled:>7.0f}"
                     f"{r.cost:>8.0f}{r.coverage:>10.3f}{r.true_error:>10.4f}{r.violation_rate:>9.3f}"
                     f"{r.cost_per_auto_label:>10.2f}")
    return "\n".join(lines)
