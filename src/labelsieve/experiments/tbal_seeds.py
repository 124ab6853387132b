"""Repeated TBAL runs over seeds: does the guarantee hold, and what coverage does it buy?"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from labelsieve.autolabel.tbal import TBAL
from labelsieve.data import load_dataset
from labelsieve.models import make_model


def _one(dataset: str, seed: int, scope: str, model: str, kw: dict[str, Any]) -> dict[str, Any]:
    ds = load_dataset(dataset)
    res = TBAL(model=make_model(model, n_classes=ds.n_classes, random_state=seed), scope=scope, random_state=seed, **kw).run(ds)
    m = res.metrics
    return {
        "dataset": dataset,
        "scope": scope,
        "seed": seed,
        "coverage": m["coverage"],
        "coverage_of_unlabeled": m["coverage_of_unlabeled"],
        "auto_label_error": np.nan if m["auto_label_error"] is None else m["auto_label_error"],
        "n_auto_labeled": m["n_auto_labeled"],
        "human_labels": m["human_labels"],
        "error_bound": m["error_bound"],
    }


def guarantee_runs(
    dataset: str,
    *,
    seeds: int = 50,
    scopes: tuple[str, ...] = ("global", "per-class"),
    model: str = "logreg",
    n_jobs: int = 1,
    progress: bool = False,
    **tbal_kw: Any,
) -> pd.DataFrame:
    """One row per (scope, seed): coverage, true auto-labeling error, human labels spent."""
    from joblib import Parallel, delayed

    jobs = [(dataset, s, sc, model, tbal_kw) for sc in scopes for s in range(seeds)]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc=f"TBAL x {seeds} seeds on {dataset}", unit="run")
    rows = Parallel(n_jobs=n_jobs)(delayed(_one)(*j) for j in jobs)
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame, epsilon: float) -> pd.DataFrame:
    """Per (dataset, scope): mean and sd of coverage, true error, fraction of seeds with error > eps."""
    g = runs.groupby(["dataset", "scope"], sort=False)
    err = runs.assign(err0=runs.auto_label_error.fillna(0.0), viol=runs.auto_label_error.fillna(0.0) > epsilon)
    g = err.groupby(["dataset", "scope"], sort=False)
    return pd.DataFrame(
        {
            "seeds": g.size(),
            "coverage_mean": g.coverage.mean(),
            "coverage_sd": g.coverage.std(ddof=1),
            "coverage_of_unlabeled": g.coverage_of_unlabeled.mean(),
            "error_mean": g.err0.mean(),
            "error_max": g.err0.max(),
            "frac_error_gt_eps": g.viol.mean(),
            "human_labels": g.human_labels.mean(),
        }
    ).reset_index()


def format_summary(summary: pd.DataFrame, epsilon: float, delta: float) -> str:
    lines = [
        (f"{'dataset':<14}{'scope':<10}{'seeds':>6}{'coverage':>16}{'of unlabeled':>13}{'true error':>12}"
        f"{'max err':>9}{'err>eps':>9}{'humans':>8}")
    ]
    for _, r in summary.iterrows():
        lines.append(
            f"{r.dataset:<14}{r.scope:<10}{int(r.seeds):>6}{r.coverage_mean:>9.3f} ± {r.coverage_sd:.3f}"
            f"{r.coverage_of_unlabeled:>13.3f}{r.error_mean:>12.4f}{r.error_max:>9.4f}{r.frac_error_gt_eps:>9.2f}"
            f"{r.human_labels:>8.0f}"
        )
    lines.append(
        f"eps={epsilon}, delta={delta}; 'err>eps' = fraction of seeds whose true auto-labeling error exceeds eps "
        f"(must be <= delta); coverage = auto-labeled / whole pool (TBAL paper), 'of unlabeled' = / items humans did not label"
    )
    return "\n".join(lines)
