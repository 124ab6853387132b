"""``labelsieve plan``: the price of each guarantee, estimated on your own data from a pilot.

Input: a CSV or Parquet predictions file with columns ``id, prediction, confidence`` and an
optional ``label`` column (the format of ``labelsieve pac --predictions``). Rows with a label are the
pilot (or ``--pilot N`` of them at random); every row is the pool to be labeled. For each budget m
of human labels the command prints the estimated coverage (model-labeled share of the pool) under

* TBAL (subset guarantee: P(error of the auto-labels <= eps) >= 1 - delta),
* PAC labeling (data-set guarantee: P(error of all final labels <= eps) >= 1 - delta; humans label
  the items above the threshold, so its "coverage" is the share of human labels saved),
* conformal labeling (expected guarantee only: E[error of the auto-labels] <= eps),

each with a percentile interval from :class:`labelsieve.guarantees.planner.BudgetPlanner`, and writes
``DIR/plan.csv``, ``DIR/plan.json`` and ``DIR/plan.png``. See docs/plan.md.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

OUT_FILES = ("plan.csv", "plan.json", "plan.png")
NAMES = {"tbal": "TBAL subset coverage", "pac": "PAC saved", "conformal": "conformal coverage"}


def register(sub: Any, bench: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="estimate coverage vs human labels under three guarantees (TBAL, PAC, conformal) from a pilot",
        description="From the labeled rows of a predictions file (the pilot) and every row's confidence (the "
        "pool), simulate TBAL (subset error <= eps w.p. 1-delta), PAC labeling (whole data set error <= eps "
        "w.p. 1-delta) and conformal labeling (expected error <= eps only) at each budget of human labels, "
        "and print the estimated coverage with percentile intervals. The interval is an approximate "
        "prediction interval for one future run's coverage, based on the pilot: not a guarantee.",
    )
    p.add_argument("--predictions", required=True, help="CSV or Parquet: id, prediction, confidence [, label]")
    p.add_argument("--epsilon", type=float, required=True, help="target error")
    p.add_argument("--delta", type=float, required=True, help="failure probability (TBAL and PAC)")
    p.add_argument("--pilot", type=int, default=None,
                   help="use N random labeled rows as the pilot (default: every row with a label)")
    p.add_argument("--target-coverage", type=float, default=None,
                   help="also estimate the human labels each procedure needs to reach this coverage")
    p.add_argument("--budgets", default=None, help="comma list of human-label budgets (default 25,50,100,... "
                   "up to half the pool)")
    p.add_argument("--bootstrap", type=int, default=200, help="simulated runs per budget (default 200)")
    p.add_argument("--level", type=float, default=0.9, help="level of the percentile intervals (default 0.9)")
    p.add_argument("--pac-prior", choices=["uniform", "uncertainty"], default="uniform",
                   help="PAC audit sampling prior (default uniform)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_plan)


# --------------------------------------------------------------------------------------------------
# input (the `labelsieve pac --predictions` format; unlike pac, a row may lack a label here)
# --------------------------------------------------------------------------------------------------


def _where(path: Path, r: int) -> str:
    return f"{path}, line {r + 2}" if path.suffix.lower() in (".csv", ".tsv") else f"{path}, row {r}"


def _key(v: str) -> str:
    """Canonical class key: '1', '1.0' and ' 1' are the same class; other strings as given."""
    try:
        f = float(v)
    except ValueError:
        return v
    return repr(f) if math.isfinite(f) else v


def read_plan_predictions(path: str | Path) -> dict[str, Any]:
    """Read and check a predictions file; ``label`` may be empty (unlabeled row) or absent.

    Returns ``ids``, ``prediction`` and ``label`` (canonical class keys; "" for no label),
    ``confidence`` (floats in [0, 1]) and ``labeled`` (bool mask). Errors name the file, line and column.
    """
    import numpy as np
    import pandas as pd

    from labelsieve.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
            df = df.astype({c: str for c in df.columns if c != "confidence"})
            df = df.replace({"None": "", "nan": "", "<NA>": ""})
        elif suffix in (".csv", ".tsv"):
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        else:
            raise InputError(f"{path}: unknown format {suffix!r}; give a .csv, .tsv or .parquet file.")
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: cannot be read ({exc})") from None
    missing = [c for c in ("id", "prediction", "confidence") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    if len(df) == 0:
        raise InputError(f"{path}: no rows.")
    ids = df["id"].astype(str).str.strip()
    if (ids == "").any():
        r = int(np.flatnonzero((ids == "").to_numpy())[0])
        raise InputError(f"{_where(path, r)}, column 'id': empty id")
    dup = ids.duplicated().to_numpy()
    if dup.any():
        r = int(np.flatnonzero(dup)[0])
        raise InputError(f"{_where(path, r)}, column 'id': {ids.iloc[r]!r} appears twice")
    raw = df["confidence"]
    conf = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(conf)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InputError(f"{_where(path, r)} (id {ids.iloc[r]!r}), column 'confidence': {raw.iloc[r]!r} is not a "
                         "finite number")
    out = (conf < 0) | (conf > 1)
    if out.any():
        r = int(np.flatnonzero(out)[0])
        raise InputError(f"{_where(path, r)} (id {ids.iloc[r]!r}), column 'confidence': {float(conf[r])!r} is "
                         "outside [0, 1]")
    pred_text = df["prediction"].astype(str).str.strip()
    if (pred_text == "").any():
        r = int(np.flatnonzero((pred_text == "").to_numpy())[0])
        raise InputError(f"{_where(path, r)} (id {ids.iloc[r]!r}), column 'prediction': empty prediction")
    label_text = df["label"].astype(str).str.strip() if "label" in df.columns else pd.Series([""] * len(df))
    pred = np.array([_key(v) for v in pred_text], dtype=object)
    label = np.array([_key(v) if v else "" for v in label_text], dtype=object)
    return {"path": path, "ids": ids.to_numpy(dtype=object), "prediction": pred, "confidence": conf,
            "label": label, "labeled": (label_text != "").to_numpy()}


def _budgets(text: str | None) -> list[int] | None:
    from labelsieve.errors import InputError

    if text is None:
        return None
    out = []
    for t in (s.strip() for s in text.split(",")):
        if not t:
            continue
        try:
            v = int(t)
        except ValueError:
            raise InputError(f"--budgets: {t!r} is not an integer (give e.g. 100,200,400)") from None
        if v < 1:
            raise InputError(f"--budgets: {v} is not a positive number of human labels")
        out.append(v)
    if not out:
        raise InputError("--budgets is empty (give e.g. 100,200,400)")
    return out


def _check_args(args: argparse.Namespace) -> None:
    from labelsieve.errors import InputError

    for name in ("epsilon", "delta", "level"):
        v = getattr(args, name)
        if not (isinstance(v, float) and 0.0 < v < 1.0):
            raise InputError(f"--{name} must be in (0, 1); got {v!r}")
    if args.target_coverage is not None and not 0.0 < args.target_coverage <= 1.0:
        raise InputError(f"--target-coverage must be in (0, 1]; got {args.target_coverage!r}")
    if args.bootstrap < 20:
        raise InputError(f"--bootstrap must be >= 20 for a percentile interval; got {args.bootstrap}")
    if args.seed < 0:
        raise InputError(f"--seed must be >= 0; got {args.seed}")
    if args.pilot is not None and args.pilot < 1:
        raise InputError(f"--pilot must be >= 1; got {args.pilot}")


# --------------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------------


def _plan(args: argparse.Namespace) -> int:
    import numpy as np

    from labelsieve._atomic import atomic_write_text
    from labelsieve.errors import InputError
    from labelsieve.guarantees.planner import GUARANTEES, MIN_PILOT, BudgetPlanner

    _check_args(args)
    budgets = _budgets(args.budgets)
    data = read_plan_predictions(args.predictions)
    path, n = data["path"], len(data["ids"])
    labeled = np.flatnonzero(data["labeled"])
    if len(labeled) == 0:
        raise InputError(f"{path}: no row has a label; the planner needs a pilot of at least {MIN_PILOT} human "
                         "labels in the 'label' column")
    rng = np.random.default_rng(args.seed)
    if args.pilot is not None:
        if args.pilot > len(labeled):
            raise InputError(f"--pilot {args.pilot} is more than the {len(labeled)} labeled rows of {path}")
        labeled = np.sort(rng.choice(labeled, args.pilot, replace=False))
    if len(labeled) < MIN_PILOT:
        raise InputError(f"{path}: the pilot has {len(labeled)} labeled rows; the planner needs at least {MIN_PILOT}")
    if budgets is not None and max(budgets) >= n:
        raise InputError(f"--budgets: {max(budgets)} is not below the {n} rows of {path}")
    planner = BudgetPlanner(
        args.epsilon, args.delta, budgets=budgets, n_bootstrap=args.bootstrap, level=args.level,
        pac_prior=args.pac_prior, random_state=rng,
    )
    planner.fit(data["prediction"][labeled], data["confidence"][labeled], data["label"][labeled],
                data["confidence"], data["prediction"])
    df = planner.plan(target_coverage=args.target_coverage)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "plan.csv", df.to_csv(index=False))
    meta = {
        "predictions": str(path), "n_pool": n, "n_pilot": len(labeled), "pilot_error": planner.pilot_error_,
        "epsilon": args.epsilon, "delta": args.delta, "level": args.level, "n_bootstrap": args.bootstrap,
        "pac_prior": args.pac_prior, "seed": args.seed, "coverage": "model-labeled items / pool",
        "guarantees": GUARANTEES, "interval": INTERVAL_NOTE,
        "target": getattr(planner, "target_", None), "rows": df.to_dict(orient="records"),
    }
    atomic_write_text(out / "plan.json", json.dumps(meta, indent=2, default=float) + "\n")
    plot_plan(df, out / "plan.png", epsilon=args.epsilon, level=args.level)
    print(format_table(df, n_pool=n, n_pilot=len(labeled), pilot_error=planner.pilot_error_, epsilon=args.epsilon,
                       delta=args.delta, level=args.level))
    if args.target_coverage is not None:
        print(format_target(planner.target_, n_pilot=len(labeled)))
    print(f"\nwrote {out}/plan.csv, {out}/plan.json and {out}/plan.png")
    return 0


INTERVAL_NOTE = (
    "[low, high] is the central `level` percentile interval of B simulated runs: each bootstraps the pilot, fits "
    "P(wrong | confidence) on it, gives the drawn human-labeled items simulated wrong flags and runs the procedure "
    "on the pool's confidences. It approximates a prediction interval for ONE future run's coverage with m fresh "
    "human labels; it is not a guarantee. Assumes the pilot is a random sample of the pool, a fixed model "
    "(single round), correct human labels, and errors that depend on the data through the confidence only."
)


def format_table(df: Any, *, n_pool: int, n_pilot: int, pilot_error: float, epsilon: float, delta: float,
                 level: float) -> str:
    """The stdout table: one row per budget, one column per procedure (median [interval])."""
    from labelsieve.guarantees.planner import GUARANTEES

    procs = [p for p in ("tbal", "pac", "conformal") if p in set(df["procedure"])]
    lines = [
        (f"labelsieve plan: pool {n_pool} items, pilot {n_pilot} human labels (pilot error {pilot_error:.3f}), "
        f"epsilon {epsilon:g}, delta {delta:g}; coverage = model-labeled / pool, median [{level:.0%} interval]"),
    ]
    lines += [f"  {NAMES[p]:<22} {GUARANTEES[p]}" for p in procs]
    lines.append("  PAC: humans label every other item (total human labels in brackets after the interval)")
    head = f"{'human labels':>12} | " + " | ".join(f"{NAMES[p]:^26}" for p in procs)
    lines += [head, "-" * len(head)]
    for m, g in df.groupby("human_labels", sort=True):
        cells = []
        for p in procs:
            r = g[g["procedure"] == p].iloc[0]
            cell = f"{r['estimate']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"
            if p == "pac":
                cell += f" ({int(r['total_human_labels'])})"
            cells.append(f"{cell:^26}")
        lines.append(f"{int(m):>12} | " + " | ".join(cells))
    lines.append("interval: " + INTERVAL_NOTE)
    return "\n".join(lines)


def format_target(target: dict[str, dict[str, Any]], *, n_pilot: int) -> str:
    lines = []
    for p, t in target.items():
        c = t["target_coverage"]
        if t["budget"] is None:
            lines.append(f"  {NAMES[p]:<22} coverage {c:g} is not reached up to {t['max_budget']} human labels "
                         f"(best median {t['best_coverage']:.3f}, at {t['best_budget']})")
        else:
            conf = (f"; reached in most runs (interval low end) at {t['budget_confident']}"
                    if t["budget_confident"] is not None else "")
            lines.append(f"  {NAMES[p]:<22} coverage {c:g} at ~{t['budget']} human labels "
                         f"({t['more_labels']} more than the {n_pilot}-label pilot){conf}")
    return "target coverage (budgets on a geometric grid):\n" + "\n".join(lines)


def plot_plan(df: Any, path: str | Path, *, epsilon: float, level: float) -> Path:
    """Coverage against human labels for the three procedures, median line and interval band."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from labelsieve._atomic import atomic_write
    from labelsieve.guarantees.planner import GUARANTEES

    fig = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, p in enumerate(("tbal", "pac", "conformal")):
        g = df[df["procedure"] == p].sort_values("human_labels")
        if not len(g):
            continue
        m = g["human_labels"].to_numpy(dtype=np.float64)
        ax.fill_between(m, g["low"].to_numpy(dtype=np.float64), g["high"].to_numpy(dtype=np.float64),
                        color=f"C{i}", alpha=0.2, lw=0)
        ax.plot(m, g["estimate"].to_numpy(dtype=np.float64), "o-", color=f"C{i}",
                label=f"{NAMES[p]} — {GUARANTEES[p]}")
    ax.set_xscale("log")
    ax.set_xlabel("human labels (validation / audit / calibration sample)")
    ax.set_ylabel("coverage (model-labeled / pool)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"estimated coverage at epsilon = {epsilon:g}; bands: {level:.0%} intervals of simulated runs",
                 fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png"), binary=True)
