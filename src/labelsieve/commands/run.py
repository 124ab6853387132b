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
        choices=["simulated", "file", "app", "crowd"],
        default=None,
        help="who answers: simulated (ground truth; default), file (CSV round trips), app (project: the web app), "
        "crowd (simulated labelers aggregated by GTX; certified against the true labels by the noise-aware bound)",
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
    g = p.add_argument_group("crowd oracle (--oracle crowd)")
    g.add_argument("--crowd-accuracy", default="0.6,0.9", help="labeler accuracies ~ U(low,high) (default 0.6,0.9)")
    g.add_argument("--crowd-table", help="CSV with columns labeler,accuracy: your own labelers instead of drawing")
    g.add_argument("--crowd-workers", type=int, default=10, help="labelers in the pool (default 10)")
    g.add_argument("--crowd-strategy", choices=["threshold", "uncertainty"], default="threshold",
                   help="GTX collection: confidence threshold (tau, kappa) or uncertainty sampling")
    g.add_argument("--tau", type=float, default=0.999, help="stop asking once the GTX posterior reaches tau")
    g.add_argument("--kappa", type=int, default=7, help="at most this many answers per item")
    g.add_argument("--answers-per-item", type=float, default=3.0, help="uncertainty strategy: answers per item")
    g.add_argument("--gold-size", type=int, default=200, help="gold items every labeler answers (accuracies)")
    g.add_argument("--delta-accuracy", type=float, default=0.01,
                   help="share of --delta spent on the labelers' accuracy limits (default 0.01)")
    g.add_argument("--difficulty", type=float, default=0.75, help="item difficulty shared with the model (0: none)")
    g.add_argument("--expert-cost", type=float, default=10.0, help="price of an expert label (default 10)")
    g.add_argument("--crowd-cost", type=float, default=1.0, help="price of one crowd answer (default 1)")
    g.add_argument("--no-expert-comparison", action="store_true",
                   help="skip the simulated expert run at the same cost reported in metrics.json")
    p.add_argument("--resume", action="store_true", help="continue the run stored in --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from labelsieve.autolabel.oracles import AwaitingAnswers
    from labelsieve.autolabel.rundir import RunConfig, run_in_directory, summary_table
    from labelsieve.errors import InputError

    if args.project:
        from labelsieve.commands.project import _project_run

        if args.oracle == "crowd":
            raise InputError("--oracle crowd is for run directories (--out); a project's crowd answers in the web app")
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
            crowd_accuracy=args.crowd_accuracy,
            crowd_table=args.crowd_table,
            n_workers=args.crowd_workers,
            crowd_strategy=args.crowd_strategy,
            tau=args.tau,
            kappa=args.kappa,
            answers_per_item=args.answers_per_item,
            gold_size=args.gold_size,
            delta_accuracy=args.delta_accuracy,
            difficulty=args.difficulty,
            expert_cost=args.expert_cost,
            crowd_cost=args.crowd_cost,
            compare_expert=not args.no_expert_comparison,
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
