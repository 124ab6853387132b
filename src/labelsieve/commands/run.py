"""``labelsieve run``: threshold-based auto-labeling of a pool, written to a run directory."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any, bench: Any) -> None:
    p = sub.add_parser("run", help="auto-label a pool with a guaranteed error bound (TBAL)")
    p.add_argument(
        "--dataset", help="embedded name (digits, breast-cancer, waveform) or a CSV/Parquet/.npy path"
    )
    p.add_argument("--epsilon", type=float, default=0.05, help="target auto-labeling error (default 0.05)")
    p.add_argument(
        "--delta", type=float, default=0.05, help="failure probability of the guarantee (default 0.05)"
    )
    p.add_argument("--budget", type=int, default=400, help="human labels in all, validation included")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="run directory (required unless --project)")
    p.add_argument(
        "--project", help="run against a labeling project (labelsieve init); events go to its store, not to --out"
    )
    p.add_argument(
        "--oracle",
        choices=["simulated", "file", "app"],
        default=None,
        help="who answers: simulated (ground truth; default), file (CSV round trips), app (project: the web app)",
    )
    p.add_argument("--noise", type=float, default=0.0, help="simulated oracle's label-noise rate")
    p.add_argument("--scope", choices=["global", "per-class"], default="global")
    p.add_argument("--model", choices=["logreg", "mlp"], default="logreg")
    p.add_argument(
        "--strategy",
        choices=["random", "margin", "entropy", "least-confidence", "margin-random"],
        default="margin-random",
    )
    p.add_argument(
        "--bound",
        choices=["clopper-pearson", "hoeffding", "sigma", "tbal-hoeffding"],
        default="clopper-pearson",
        help="sigma and tbal-hoeffding are the TBAL authors' heuristics, not guarantees",
    )
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--val-fraction", type=float, default=0.4, help="share of the budget spent on validation")
    p.add_argument("--delta-schedule", choices=["uniform", "geometric", "last"], default="geometric")
    p.add_argument("--label-column", default="label")
    p.add_argument("--id-column", default="id")
    p.add_argument("--resume", action="store_true", help="continue the run stored in --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from labelsieve.autolabel.oracles import AwaitingAnswers
    from labelsieve.autolabel.rundir import RunConfig, run_in_directory, summary_table
    from labelsieve.errors import InputError

    if args.project:
        from labelsieve.commands.project import _project_run

        if args.oracle == "file":
            raise InputError("--oracle file is for run directories; a project's humans answer in the web app (--oracle app)")
        args.dir, args.new = args.project, False
        args.oracle = args.oracle or "app"
        return _project_run(args)
    if not args.out:
        raise InputError("--out is required (or --project DIR)")
    if args.oracle == "app":
        raise InputError("--oracle app needs --project DIR")
    args.oracle = args.oracle or "simulated"
    cfg = None
    if not args.resume or args.dataset:
        if not args.dataset:
            raise InputError("--dataset is required (unless --resume)")
        cfg = RunConfig(
            dataset=args.dataset,
            epsilon=args.epsilon,
            delta=args.delta,
            budget=args.budget,
            seed=args.seed,
            oracle=args.oracle,
            noise=args.noise,
            scope=args.scope,
            model=args.model,
            strategy=args.strategy,
            bound=args.bound,
            rounds=args.rounds,
            val_fraction=args.val_fraction,
            delta_schedule=args.delta_schedule,
            label_column=args.label_column,
            id_column=args.id_column,
        )
    try:
        result = run_in_directory(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    except AwaitingAnswers as wait:
        print(f"waiting for human labels: {wait}")
        return 0
    print(summary_table(result))
    print(
        f"\nwrote {args.out}/labels.csv, labels.parquet, history.csv, rounds.png, metrics.json",
        file=sys.stdout,
    )
    return 0
