"""A TBAL run bound to a directory: configuration, recorded answers, resumable, atomic outputs.

Layout of ``DIR``::

    config.json          the run's parameters (written first; a resumed run reuses them)
    state/answers.csv    every human answer so far (id, label_code), rewritten atomically
    queries/, answers/   the file oracle's requests and the humans' answers
    labels.csv           id,label,source,confidence,threshold,round   (on completion)
    labels.parquet       the same table
    history.csv          one row per round
    rounds.png           coverage and error per round
    metrics.json         the summary; written last, so its presence means "complete"

A killed run (or one waiting for file answers) resumes by replaying: the loop is deterministic
given its seed, and recorded answers are served without asking again.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labelsieve.autolabel.oracles import FileOracle, RecordingOracle, SimulatedOracle, atomic_write_text
from labelsieve.autolabel.tbal import TBAL, TBALResult
from labelsieve.errors import InputError

LABEL_COLUMNS = ["id", "label", "source", "confidence", "threshold", "round"]


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run (what ``labelsieve run`` takes)."""

    dataset: str
    epsilon: float = 0.05
    delta: float = 0.05
    budget: int = 400
    seed: int = 0
    oracle: str = "simulated"
    noise: float = 0.0
    scope: str = "global"
    model: str = "logreg"
    strategy: str = "margin-random"
    bound: str = "clopper-pearson"
    rounds: int = 5
    val_fraction: float = 0.4
    delta_schedule: str = "geometric"
    label_column: str = "label"
    id_column: str = "id"

    @classmethod
    def from_json(cls, path: Path) -> RunConfig:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: cannot read the run configuration ({exc})") from None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def build_tbal(cfg: RunConfig, n_classes: int, *, progress: bool) -> TBAL:
    from labelsieve.models import make_model

    return TBAL(
        model=make_model(cfg.model, n_classes=n_classes, random_state=cfg.seed),
        epsilon=cfg.epsilon,
        delta=cfg.delta,
        budget=cfg.budget,
        rounds=cfg.rounds,
        val_fraction=cfg.val_fraction,
        scope=cfg.scope,
        bound=cfg.bound,
        strategy=cfg.strategy,
        delta_schedule=cfg.delta_schedule,
        random_state=cfg.seed,
        progress=progress,
    )


def run_in_directory(
    cfg: RunConfig | None, out: str | Path, *, resume: bool = False, progress: bool = False
) -> TBALResult:
    """Run (or resume) TBAL with outputs in ``out``.

    Raises :class:`~labelsieve.autolabel.oracles.AwaitingAnswers` when a file oracle waits for humans.
    """
    from labelsieve.data import load_dataset

    out = Path(out)
    cfg_path = out / "config.json"
    if resume:
        if not cfg_path.exists():
            raise InputError(f"{out}: no run to resume (missing {cfg_path.name}).")
        stored = RunConfig.from_json(cfg_path)
        if cfg is not None and cfg != stored:
            diff = {k: (v, getattr(cfg, k)) for k, v in asdict(stored).items() if getattr(cfg, k) != v}
            raise InputError(f"{out}: --resume with parameters that differ from the stored run: {diff}")
        cfg = stored
    else:
        if cfg is None:
            raise InputError("a run needs its parameters (or --resume)")
        if (out / "metrics.json").exists() or cfg_path.exists():
            raise InputError(
                f"{out} already holds a run; use --resume to continue it or choose another --out."
            )
    dataset = load_dataset(cfg.dataset, label_column=cfg.label_column, id_column=cfg.id_column, seed=cfg.seed)
    tbal = build_tbal(cfg, dataset.n_classes, progress=progress)
    tbal._plan(len(dataset))  # validate every parameter before anything is written
    if cfg.oracle == "simulated":
        if not dataset.has_truth:
            raise InputError(f"{cfg.dataset}: no '{cfg.label_column}' ground truth; use --oracle file.")
        inner: Any = SimulatedOracle(dataset, noise=cfg.noise, random_state=cfg.seed + 1)
    elif cfg.oracle == "file":
        inner = FileOracle(out, dataset)
    else:
        raise InputError(f"unknown oracle {cfg.oracle!r}; choose simulated or file.")
    out.mkdir(parents=True, exist_ok=True)
    if not cfg_path.exists():
        atomic_write_text(cfg_path, json.dumps(asdict(cfg), indent=2) + "\n")
    oracle = RecordingOracle(inner, out / "state" / "answers.csv")
    result = tbal.run(dataset, oracle)
    write_outputs(result, out)
    return result


def write_outputs(result: TBALResult, out: Path) -> None:
    """Write every output into a staging folder, then move each into ``out``; metrics.json last."""
    from labelsieve.metrics.plots import plot_rounds

    staging = Path(tempfile.mkdtemp(dir=out, prefix=".staging-"))
    try:
        labels = result.labels[LABEL_COLUMNS]
        labels.to_csv(staging / "labels.csv", index=False)
        labels.to_parquet(staging / "labels.parquet", index=False)
        hist = result.history.copy()
        hist["thresholds"] = hist["thresholds"].map(json.dumps)
        hist["reasons"] = hist["reasons"].map(json.dumps)
        hist.to_csv(staging / "history.csv", index=False)
        plot_rounds(result.history, staging / "rounds.png", epsilon=result.metrics["epsilon"])
        (staging / "metrics.json").write_text(json.dumps(_jsonable(result.metrics), indent=2) + "\n")
        for name in ("labels.csv", "labels.parquet", "history.csv", "rounds.png", "metrics.json"):
            (staging / name).replace(out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def summary_table(result: TBALResult) -> str:
    """A one-screen text summary of a run."""
    m = result.metrics
    h = result.history
    lines = [
        (
            f"labelsieve run on '{m['dataset']}': {m['n_items']} items, {m['human_labels']} human labels, "
            f"{m['rounds_run']} rounds"
        ),
        "",
        f"{'round':>5} {'auto (new)':>11} {'auto (total)':>12} {'coverage':>9} {'true error':>10} {'bound':>7} {'humans':>7}",
    ]
    for _, r in h.iterrows():
        te = "n/a" if pd.isna(r["auto_label_error"]) else f"{r['auto_label_error']:.4f}"
        lines.append(
            f"{int(r['round']):>5} {int(r['n_auto_round']):>11} {int(r['n_auto_total']):>12} "
            f"{r['coverage']:>9.3f} {te:>10} {r['error_bound']:>7.3f} {int(r['human_labels']):>7}"
        )
    te = "n/a (no ground truth)" if m["auto_label_error"] is None else f"{m['auto_label_error']:.4f}"
    lines += [
        "",
        f"coverage            {m['coverage']:.3f} of the pool ({m['coverage_of_unlabeled']:.3f} of the items humans did not label)",
        f"auto-label error    {te}  (true, against ground truth)",
        f"error bound         {m['error_bound']:.3f}: {m['bound_statement']}",
    ]
    for k, why in m["no_threshold_reasons"].items():
        lines.append(f"  no threshold for class {k}: {why}")
        if len(lines) > 40:
            lines.append("  ...")
            break
    return "\n".join(lines)
