"""A TBAL run bound to a directory: configuration, recorded answers, resumable, atomic outputs.

Layout of ``DIR``::

    config.json          the run's parameters (written first; a resumed run reuses them)
    state/answers.csv    every human answer so far (id, label_code), rewritten atomically
    queries/, answers/   the file oracle's requests and the humans' answers
    labels.csv           id,label,source,role,confidence,threshold,round,p_wrong,p_wrong_basis   (on completion)
    labels.parquet       the same table
    history.csv          one row per round
    rounds.png           coverage and error per round
    metrics.json         the summary; written last, so its presence means "complete"

A killed run (or one waiting for file answers) resumes by replaying: the loop is deterministic
given its seed, and recorded answers are served without asking again.

``oracle="crowd"`` (issue #12): every human query goes to simulated crowd labelers
(:class:`~labelsieve.autolabel.crowd_oracle.CrowdOracle`), aggregated by GTX, and the thresholds are
certified against the *true* labels by :class:`~labelsieve.autolabel.noisy.NoiseAwareCertifier`
with TBAL's delta reduced by ``delta_accuracy`` (spent on the labelers' accuracy limits).

``p_wrong`` (provenance): each final label's estimated probability of being wrong, and
``p_wrong_basis`` says where the number comes from: for auto-labels, epsilon -- the guaranteed
upper bound on the error *rate* of the rule that produced them, not a per-item probability; for
crowd labels, 1 - the conservative GTX posterior of the given label; for expert labels, 0 (assumed
correct), or the simulated oracle's noise rate. ``metrics.json`` sums them in ``wrong_labels``.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labelsieve._validation import check_interval, check_option, check_positive_int
from labelsieve.autolabel.oracles import (
    Answers,
    AwaitingAnswers,
    FileOracle,
    RecordingOracle,
    SimulatedOracle,
    as_answers,
    atomic_write_text,
)
from labelsieve.autolabel.tbal import TBAL, TBALResult
from labelsieve.errors import InputError
from labelsieve.runs.spec import RunSpec, spec_json

LABEL_COLUMNS = ["id", "label", "source", "role", "confidence", "threshold", "round", "p_wrong", "p_wrong_basis"]
ORACLE_KINDS = ("simulated", "file", "crowd")
#: ``p_wrong_basis`` values
BASIS_AUTO = "epsilon: guaranteed bound on the auto-label error rate"
BASIS_AUTO_HEURISTIC = "epsilon: target of a heuristic bound (no guarantee)"
BASIS_DATASET = "epsilon: guaranteed bound on the share of wrong labels among all labels (PAC)"
BASIS_CROWD = "1 - conservative GTX posterior"
BASIS_EXPERT = "expert label, assumed correct"
BASIS_NOISE = "simulated oracle's noise rate"


RunConfig = RunSpec  # the name earlier code and tests use


def tbal_delta(cfg: RunConfig) -> float:
    """TBAL's share of the run's delta: all of it, less ``delta_accuracy`` with the crowd oracle."""
    if cfg.oracle != "crowd":
        return cfg.delta
    from labelsieve._validation import check_open_unit
    from labelsieve.errors import ParameterError

    check_open_unit("delta", cfg.delta, owner="labelsieve run")
    check_open_unit("delta_accuracy", cfg.delta_accuracy, owner="labelsieve run")
    if cfg.delta_accuracy >= cfg.delta:
        raise ParameterError(f"The 'delta_accuracy' parameter of labelsieve run must be < delta ({cfg.delta}). "
                             f"Got {cfg.delta_accuracy!r} instead.")
    return cfg.delta - cfg.delta_accuracy


def build_tbal(cfg: RunConfig, n_classes: int, *, progress: bool) -> TBAL:
    from labelsieve.models import make_model

    certifier = None
    if cfg.oracle == "crowd" or (cfg.oracle == "simulated" and cfg.noise > 0):
        from labelsieve.autolabel.noisy import NoiseAwareCertifier

        certifier = NoiseAwareCertifier()
    if cfg.labeler:
        from labelsieve.labelers import FewShotHead

        model: Any = FewShotHead(n_classes=n_classes)
    else:
        model = make_model(cfg.model, n_classes=n_classes, random_state=cfg.seed)
    confidence = None
    if cfg.confidence != "softmax":  # softmax is TBAL's own default (MaxSoftmax)
        from labelsieve.confidence import make_confidence

        confidence = make_confidence(cfg.confidence, random_state=cfg.seed)
    return TBAL(
        model=model,
        confidence=confidence,
        epsilon=cfg.epsilon,
        delta=tbal_delta(cfg),
        budget=cfg.budget,
        rounds=cfg.rounds,
        val_fraction=cfg.val_fraction,
        scope=cfg.scope,
        bound=cfg.bound,
        strategy=cfg.strategy,
        delta_schedule=cfg.delta_schedule,
        random_state=cfg.seed,
        progress=progress,
        certifier=certifier,
    )


def parse_accuracy_range(text: str) -> tuple[float, float]:
    """``"0.6,0.9"`` -> (0.6, 0.9); errors name the flag and the value.

    >>> parse_accuracy_range("0.6, 0.9")
    (0.6, 0.9)
    """
    from labelsieve.errors import ParameterError

    try:
        lo, hi = (float(v) for v in str(text).split(","))
    except ValueError:
        raise ParameterError(f"The 'crowd_accuracy' parameter of labelsieve run must be 'low,high' (e.g. 0.6,0.9). "
                             f"Got {text!r} instead.") from None
    if not 0.0 < lo <= hi <= 1.0:
        raise ParameterError(f"The 'crowd_accuracy' parameter of labelsieve run must satisfy 0 < low <= high <= 1. "
                             f"Got {text!r} instead.")
    return lo, hi


def read_labeler_table(path: str | Path) -> dict[str, float]:
    """A user's labeler table (CSV with columns ``labeler,accuracy``) -> {labeler: accuracy}."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as CSV ({exc})") from None
    missing = {"labeler", "accuracy"} - set(df.columns)
    if missing:
        raise InputError(f"{path}: missing column(s) {sorted(missing)}; found {list(df.columns)}")
    if len(df) == 0:
        raise InputError(f"{path}: no labelers")
    acc = pd.to_numeric(df["accuracy"], errors="coerce")
    bad = acc.isna() | (acc <= 0) | (acc > 1)
    if bad.any():
        r = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path}, line {r + 2}, field 'accuracy': {df['accuracy'].iloc[r]!r} is not in (0, 1]")
    dup = df["labeler"].duplicated()
    if dup.any():
        r = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(f"{path}, line {r + 2}, field 'labeler': {df['labeler'].iloc[r]!r} appears twice")
    return dict(zip(df["labeler"], acc.astype(float), strict=True))


def build_crowd_oracle(cfg: RunConfig, dataset: Any) -> Any:
    """The :class:`~labelsieve.autolabel.crowd_oracle.CrowdOracle` a crowd run uses (the Python path)."""
    from labelsieve.autolabel.crowd_oracle import CrowdOracle

    table = read_labeler_table(cfg.crowd_table) if cfg.crowd_table else None
    return CrowdOracle(
        dataset,
        n_workers=len(table) if table else cfg.n_workers,
        accuracy_range=parse_accuracy_range(cfg.crowd_accuracy),
        accuracies=table,
        strategy=cfg.crowd_strategy,
        tau=cfg.tau,
        kappa=cfg.kappa,
        answers_per_item=cfg.answers_per_item,
        gold_size=cfg.gold_size,
        delta_accuracy=cfg.delta_accuracy,
        difficulty=cfg.difficulty,
        expert_cost=cfg.expert_cost,
        crowd_cost=cfg.crowd_cost,
        random_state=cfg.seed + 1,
    )


class CrowdRecordingOracle(RecordingOracle):
    """:class:`RecordingOracle` for the (deterministic, simulated) crowd: always asks the crowd too,
    so its posteriors and cost accounting cover every item the run used, also after a resume (and
    for answers recorded before their posteriors were)."""

    def ask(self, ids: np.ndarray) -> Answers:
        got = as_answers(self.inner.ask(np.asarray(ids, dtype=object)))
        rec = super().ask(ids)
        if not np.array_equal(got.labels, rec.labels):
            raise InputError(f"{self.path}: recorded crowd answers differ from the replayed crowd; the run's "
                             "configuration changed since it was recorded")
        return got


def run_in_directory(
    cfg: RunConfig | None, out: str | Path, *, resume: bool = False, progress: bool = False, engine: Any = None
) -> TBALResult:
    """Run (or resume) TBAL with outputs in ``out``.

    Raises :class:`~labelsieve.autolabel.oracles.AwaitingAnswers` when a file oracle waits for humans.
    ``engine`` (e.g. ``get_engine("ray")``) decides where the pool is scored; results are identical.
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
    _check_config(cfg)
    classes = [c.strip() for c in cfg.classes.split(",")] if cfg.classes else None
    if cfg.labeler:
        from labelsieve.data.text import load_pool
        from labelsieve.labelers import tbal_inputs

        pool = load_pool(
            cfg.dataset,
            classes=classes,
            text_column=cfg.text_column,
            id_column=cfg.id_column,
            label_column=cfg.label_column,
            random_state=cfg.seed,
        )
        dataset, _ = tbal_inputs(pool, cfg.labeler, cache_dir=out / "cache", progress=progress)
    else:
        dataset = load_dataset(
            cfg.dataset, label_column=cfg.label_column, id_column=cfg.id_column, classes=classes, seed=cfg.seed
        )
    tbal = build_tbal(cfg, dataset.n_classes, progress=progress)
    tbal.engine = engine
    tbal._plan(len(dataset))  # validate every parameter before anything is written
    if cfg.oracle in ("simulated", "crowd"):
        _require_truth(dataset, cfg)
    if cfg.oracle == "simulated":
        inner: Any = SimulatedOracle(dataset, noise=cfg.noise, random_state=cfg.seed + 1)
    elif cfg.oracle == "file":
        inner = FileOracle(out, dataset)
    elif cfg.oracle == "crowd":
        inner = build_crowd_oracle(cfg, dataset)
        inner._setup()  # validate the crowd's parameters before anything is written
    else:
        raise InputError(f"unknown oracle {cfg.oracle!r}; choose one of {', '.join(ORACLE_KINDS)}.")
    created = not cfg_path.exists()
    out.mkdir(parents=True, exist_ok=True)
    if created:
        atomic_write_text(cfg_path, spec_json(cfg, indent=2) + "\n")
    try:
        return _run_and_write(cfg, out, tbal, dataset, inner)
    except AwaitingAnswers:
        raise  # waiting for humans is not a failure: keep the run
    except Exception:
        # a run that failed before recording any answer leaves no directory that blocks a retry
        if created and not (out / "state" / "answers.csv").exists():
            cfg_path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                out.rmdir()
        raise


def _check_config(cfg: RunConfig) -> None:
    """Checks the TBAL object does not do itself (it never sees the oracle or the seed's use here)."""
    check_interval("noise", cfg.noise, owner="labelsieve run", low=0.0, high=1.0, closed="left")
    check_positive_int("seed", cfg.seed, owner="labelsieve run", minimum=0)
    check_option("guarantee", cfg.guarantee, owner="labelsieve run", options=("subset", "dataset"))
    if cfg.guarantee == "dataset":
        check_positive_int("audit", cfg.audit, owner="labelsieve run")
        check_option("audit_prior", cfg.audit_prior, owner="labelsieve run", options=("uniform", "uncertainty"))
        check_option("pac_bound", cfg.pac_bound, owner="labelsieve run", options=("betting", "clt"))


def _require_truth(dataset: Any, cfg: RunConfig) -> None:
    """A simulated oracle answers from ground truth: every item needs it (name the first that lacks it)."""
    if not dataset.has_truth:
        raise InputError(f"{cfg.dataset}: no '{cfg.label_column}' ground truth; use --oracle file.")
    missing = np.flatnonzero(dataset.y == -1)
    if len(missing):
        r = int(missing[0])
        raise InputError(
            f"{cfg.dataset}: row {r} (id {dataset.ids[r]!r}) has no '{cfg.label_column}' value, and the "
            f"{cfg.oracle} oracle answers from ground truth ({len(missing)} items lack it); use --oracle file."
        )


def _run_and_write(cfg: RunConfig, out: Path, tbal: TBAL, dataset: Any, inner: Any) -> TBALResult:
    path = out / "state" / "answers.csv"
    if cfg.oracle == "crowd":
        oracle: RecordingOracle = CrowdRecordingOracle(inner, path)
    else:  # runs recorded before p_correct was: their simulated noise is still known
        legacy = 1.0 - cfg.noise if cfg.oracle == "simulated" and cfg.noise > 0 else None
        oracle = RecordingOracle(inner, path, legacy_p_correct=legacy)
    result = tbal.run(dataset, oracle)
    if cfg.guarantee == "dataset":
        from labelsieve.autolabel.pac_run import finish_dataset_guarantee

        result = finish_dataset_guarantee(result, dataset, oracle, cfg)
    add_provenance(result, cfg, inner)
    if cfg.oracle == "simulated" and cfg.noise > 0 and result.metrics["guaranteed"]:
        result.metrics["bound_statement"] += (
            f"; validation labels carry simulated noise {cfg.noise:g}: noise-aware bound (Poisson-binomial "
            "quantile of the true errors given P(label correct) = 1 - noise, exact for balanced classes)"
        )
    if cfg.oracle == "crowd":
        add_crowd_metrics(result, cfg, inner, dataset)
    else:
        result.metrics["cost"] = {"expert_labels": result.metrics["human_labels"],
                                  "expert_cost": cfg.expert_cost,
                                  "total": result.metrics["human_labels"] * cfg.expert_cost,
                                  "cost_per_auto_label": _per(result.metrics["human_labels"] * cfg.expert_cost,
                                                              result.metrics["n_auto_labeled"])}
    write_outputs(result, out)
    return result


def _per(cost: float, n: int) -> float | None:
    return float(cost / n) if n else None


def human_p_wrong(cfg: RunConfig, oracle: Any, ids: np.ndarray) -> tuple[np.ndarray, str]:
    """Probability that each human label is wrong, and its basis (see the module docstring)."""
    if cfg.oracle == "crowd":
        return 1.0 - np.asarray(oracle.label_confidence(ids), dtype=np.float64), BASIS_CROWD
    if cfg.oracle == "simulated" and cfg.noise > 0:
        return np.full(len(ids), float(cfg.noise)), BASIS_NOISE
    return np.zeros(len(ids)), BASIS_EXPERT


def add_provenance(result: TBALResult, cfg: RunConfig, oracle: Any) -> None:
    """Add ``p_wrong`` and ``p_wrong_basis`` to ``result.labels`` and ``wrong_labels`` to its metrics.

    Auto-labels get epsilon (the guaranteed upper bound of the rule's error *rate*; a heuristic
    target when the bound is not a guarantee); human labels :func:`human_p_wrong`. The summary is
    :func:`~labelsieve.autolabel.noisy.expected_wrong_labels` at the run's delta.
    """
    from labelsieve.autolabel.noisy import expected_wrong_labels

    labels = result.labels
    m = result.metrics
    auto = (labels["source"] == "auto").to_numpy()
    p = np.zeros(len(labels))
    basis = np.empty(len(labels), dtype=object)
    p[auto] = m["epsilon"]
    basis[auto] = BASIS_AUTO if m["guaranteed"] else BASIS_AUTO_HEURISTIC
    if m.get("guarantee") == "dataset":
        basis[auto] = BASIS_DATASET if m["guaranteed"] else BASIS_AUTO_HEURISTIC
    hp, hb = human_p_wrong(cfg, oracle, labels["id"].to_numpy()[~auto])
    p[~auto], basis[~auto] = np.clip(hp, 0.0, 1.0), hb
    labels["p_wrong"] = p
    labels["p_wrong_basis"] = basis
    s = expected_wrong_labels(p, delta=cfg.delta)
    m["wrong_labels"] = {
        "n_labels": s.n_labels,
        "expected": s.expected,
        "upper": s.upper,
        "expected_auto": float(p[auto].sum()),
        "expected_human": float(p[~auto].sum()),
        "statement": (
            f"{s.n_labels} labels: expected number wrong {s.expected:.1f} (auto-labels at epsilon, human labels at "
            f"{hb}); at most {s.upper} wrong with probability >= {1 - 2 * cfg.delta:g} (the Poisson-binomial "
            f"{1 - cfg.delta:g}-quantile, and the run's own delta for the auto-labels' rate)"
        ),
    }
    ds = getattr(oracle, "dataset", None)
    if ds is not None and ds.has_truth and len(labels):
        pos = {i: k for k, i in enumerate(ds.ids)}
        y = ds.y[np.array([pos[i] for i in labels["id"]], dtype=np.int64)]
        known = y >= 0
        m["wrong_labels"]["realised"] = int((labels["code"].to_numpy()[known] != y[known]).sum())


def add_crowd_metrics(result: TBALResult, cfg: RunConfig, oracle: Any, dataset: Any) -> None:
    """Cost, crowd summary and the noise-aware bound statement of a ``--oracle crowd`` run."""
    m = result.metrics
    s = oracle.summary()
    n_auto = m["n_auto_labeled"]
    query_cost = oracle.answers_spent * cfg.crowd_cost
    gold_cost = oracle.gold_answers * cfg.crowd_cost + len(oracle.gold_) * cfg.expert_cost
    cost: dict[str, Any] = {
        "crowd_answers": oracle.answers_spent,
        "answers_per_item": s["answers_per_item"],
        "crowd_cost": cfg.crowd_cost,
        "expert_cost": cfg.expert_cost,
        "queries": query_cost,
        "gold_set": gold_cost,
        "gold_note": (f"{len(oracle.gold_)} gold items answered by all {len(oracle.alpha_)} labelers; reusable across "
                      "tasks, so reported apart"),
        "total": query_cost + gold_cost,
        "cost_per_auto_label": _per(query_cost, n_auto),
        "cost_per_auto_label_with_gold": _per(query_cost + gold_cost, n_auto),
        "expert_same_items": {
            "items": m["human_labels"],
            "cost": m["human_labels"] * cfg.expert_cost,
            "note": "the same items from experts: a noiseless validation set, so a certificate at least as strong "
                    "for the same model",
        },
    }
    if cfg.compare_expert:
        cost["expert_same_cost"] = expert_counterfactual(cfg, dataset, query_cost)
    m["cost"] = cost
    m["crowd"] = {
        **s,
        "strategy": cfg.crowd_strategy,
        "tau": cfg.tau,
        "kappa": cfg.kappa,
        "labelers": len(oracle.alpha_),
        "accuracy_lower": [float(v) for v in oracle.acc_lower_],
        "accuracy_upper": [float(v) for v in oracle.acc_upper_],
        "delta_accuracy": cfg.delta_accuracy,
    }
    m["delta_tbal"] = tbal_delta(cfg)
    if m["guaranteed"]:
        m["bound_statement"] = (
            f"with probability >= {1 - cfg.delta:g}, the population error rate of the auto-labeling rule against "
            f"the TRUE labels is <= {cfg.epsilon:g} (noise-aware bound: Poisson-binomial quantile of the true errors "
            f"given the crowd posteriors + {cfg.bound}, fixed-sequence scan; delta {cfg.delta:g} = "
            f"{cfg.delta_accuracy:g} on labeler-accuracy limits + {tbal_delta(cfg):g} split over {cfg.rounds} rounds "
            f"({cfg.delta_schedule})" + (" and over classes" if cfg.scope == "per-class" else "")
            + "; assumes conditionally independent one-coin labelers, see docs/noisy-guarantee.md)"
        )


def expert_counterfactual(cfg: RunConfig, dataset: Any, cost: float) -> dict[str, Any]:
    """Simulation only: the same run with expert (true) labels bought for ``cost``."""
    from dataclasses import replace

    n_items = int(min(cost // cfg.expert_cost, len(dataset) - 1)) if cfg.expert_cost > 0 else len(dataset) - 1
    ecfg = replace(cfg, oracle="simulated", noise=0.0, budget=n_items)
    out: dict[str, Any] = {"items": n_items, "cost": n_items * cfg.expert_cost}
    try:
        tbal = build_tbal(ecfg, dataset.n_classes, progress=False)
        res = tbal.run(dataset, SimulatedOracle(dataset, random_state=cfg.seed + 1))
    except InputError as exc:
        out.update({"coverage": None, "note": f"no expert run at this cost: {exc}"})
        return out
    em = res.metrics
    out.update({"coverage": em["coverage"], "n_auto_labeled": em["n_auto_labeled"],
                "auto_label_error": em["auto_label_error"],
                "cost_per_auto_label": _per(out["cost"], em["n_auto_labeled"]),
                "note": "simulated counterfactual: TBAL with noiseless expert labels at the crowd queries' cost"})
    return out


def write_outputs(result: TBALResult, out: Path) -> None:
    """Write every output into a staging folder, then move each into ``out``; metrics.json last."""
    from labelsieve.metrics.plots import plot_rounds

    staging = Path(tempfile.mkdtemp(dir=out, prefix=".staging-"))
    try:
        labels = result.labels.assign(guarantee=result.metrics.get("guarantee", "subset"))[
            [*LABEL_COLUMNS, "guarantee"]]
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


def _certified(row: Any) -> bool:
    """Whether a history row has a certified threshold (one finite threshold at least)."""
    th = row.get("thresholds")
    vals = np.asarray(th if isinstance(th, (list, tuple, np.ndarray)) else [th], dtype=np.float64)
    return bool(np.isfinite(vals).any())


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
        bd = f"{r['error_bound']:>7.3f}" if _certified(r) else f"{'—':>7}"  # no threshold: no bound to show
        lines.append(
            f"{int(r['round']):>5} {int(r['n_auto_round']):>11} {int(r['n_auto_total']):>12} "
            f"{r['coverage']:>9.3f} {te:>10} {bd} {int(r['human_labels']):>7}"
        )
    if m["n_auto_labeled"] == 0:
        te = "n/a (nothing auto-labeled)"
    elif m["auto_label_error"] is None:
        te = "n/a (no ground truth)"
    else:
        te = f"{m['auto_label_error']:.4f}"
    lines += [
        "",
        f"coverage            {m['coverage']:.3f} of the pool ({m['coverage_of_unlabeled']:.3f} of the items "
        + ("TBAL's humans did not label; the others went to the audit or were routed to humans)"
           if m.get("guarantee") == "dataset" else "humans did not label)"),
        f"auto-label error    {te}  (true, against ground truth)",
        (f"error bound         {m['error_bound']:.3f}: {m['bound_statement']}" if m["n_auto_labeled"] or
         m.get("guarantee") == "dataset" else f"error bound         —: {m['bound_statement']}"),
    ]
    if "wrong_labels" in m:
        w = m["wrong_labels"]
        real = f" (realised: {w['realised']})" if "realised" in w else ""
        lines.append(f"wrong labels        expected {w['expected']:.1f}, at most {w['upper']} of {w['n_labels']}{real}")
    if "crowd" in m:
        c, cr = m["cost"], m["crowd"]
        per = "n/a" if c["cost_per_auto_label"] is None else f"{c['cost_per_auto_label']:.2f}"
        lines.append(f"crowd               {c['crowd_answers']} answers ({cr['answers_per_item']:.2f}/item), "
                     f"aggregated-label error {cr['label_error']:.4f} (true)")
        lines.append(f"cost                {c['queries']:g} for queries (+{c['gold_set']:g} gold set); "
                     f"{per} per auto-label")
        e = c.get("expert_same_cost")
        if e is not None and e.get("coverage") is not None:
            eper = "n/a" if e["cost_per_auto_label"] is None else f"{e['cost_per_auto_label']:.2f}"
            lines.append(f"expert, same cost   {e['items']} expert labels: coverage {e['coverage']:.3f}, "
                         f"{eper} per auto-label (simulated)")
    for k, why in m["no_threshold_reasons"].items():
        lines.append(f"  no threshold{' (global)' if k == 'global' else f' for class {k}'}: {why}")
        if len(lines) > 40:
            lines.append("  ...")
            break
    return "\n".join(lines)
