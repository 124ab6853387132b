"""``labelsieve bench tbal``: the guarantee over many seeds (coverage and true error per scope)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any, bench: Any) -> None:
    p = bench.add_parser("tbal", help="TBAL over many seeds: coverage and whether error <= eps holds")
    p.add_argument("--dataset", nargs="+", default=["digits"], help="one or more embedded names or paths")
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--scope", choices=["global", "per-class", "both"], default="both")
    p.add_argument("--epsilon", type=float, default=0.05)
    p.add_argument("--delta", type=float, default=0.05)
    p.add_argument("--budget", type=int, default=400)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--val-fraction", type=float, default=0.4)
    p.add_argument("--delta-schedule", choices=["last", "geometric", "uniform"], default="last")
    p.add_argument("--model", choices=["logreg", "mlp"], default="logreg")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", help="write runs.csv and summary.csv here")
    p.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    import pandas as pd

    from labelsieve._atomic import atomic_write_text
    from labelsieve.experiments.tbal_seeds import format_summary, guarantee_runs, summarize

    scopes = ("global", "per-class") if args.scope == "both" else (args.scope,)
    runs = pd.concat(
        [
            guarantee_runs(
                d,
                seeds=args.seeds,
                scopes=scopes,
                model=args.model,
                n_jobs=args.jobs,
                progress=True,
                epsilon=args.epsilon,
                delta=args.delta,
                budget=args.budget,
                rounds=args.rounds,
                val_fraction=args.val_fraction,
                delta_schedule=args.delta_schedule,
            )
            for d in args.dataset
        ],
        ignore_index=True,
    )
    summary = summarize(runs, args.epsilon)
    print(format_summary(summary, args.epsilon, args.delta))
    print(
        f"budget={args.budget} human labels (validation included), {args.rounds} rounds, "
        f"val_fraction={args.val_fraction}, delta schedule={args.delta_schedule}, model={args.model}, "
        "Clopper-Pearson bound with fixed-sequence scan"
    )
    if args.out:
        out = Path(args.out)
        atomic_write_text(out / "runs.csv", runs.to_csv(index=False))
        atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    return 0
