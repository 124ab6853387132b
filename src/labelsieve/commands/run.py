"""``labelsieve run``: threshold-based auto-labeling of a pool, written to a run directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from labelsieve._registry import LazyChoices


def _bounds() -> tuple[str, ...]:
    from labelsieve.guarantees import bound_choices
    return bound_choices()


def register(sub: Any, bench: Any) -> None:
    p = sub.add_parser("run", help="auto-label a pool with a guaranteed error bound (TBAL)")
    p.add_argument(
        "--dataset", help="embedded name (digits, breast-cancer, waveform) or a CSV/Parquet/.npy path"
    )
    p.add_argument("--epsilon", type=float, default=None, help="target auto-labeling error (default 0.05)")
    p.add_argument(
        "--delta", type=float, default=None, help="failure probability of the guarantee (default 0.05)"
    )
    p.add_argument("--budget", type=int, default=None, help="human labels in all, validation included")
    p.add_argument("--seed", type=int, default=None)
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
    p.add_argument("--noise", type=float, default=None, help="simulated oracle's label-noise rate")
    p.add_argument("--scope", choices=["global", "per-class"], default=None)
    p.add_argument("--model", choices=["logreg", "mlp"], default=None)
    p.add_argument(
        "--strategy",
        choices=["random", "margin", "entropy", "least-confidence", "margin-random"],
        default=None,
    )
    p.add_argument(
        "--bound",
        choices=LazyChoices(_bounds),
        default=None,
        help="sigma and tbal-hoeffding are the TBAL authors' heuristics, not guarantees",
    )
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--val-fraction", type=float, default=None, help="share of the budget spent on validation")
    p.add_argument(
        "--delta-schedule",
        choices=["last", "geometric", "uniform"],
        default=None,
        help="last (default): certify once, in the final round; geometric/uniform: every round (see docs/guarantee.md)",
    )
    p.add_argument("--classes", default=None, help="comma-separated class names (required for a pool without labels)")
    p.add_argument(
        "--labeler",
        default=None,
        help="minilm | hashing | clip:PATH: run TBAL on this labeler's embeddings with a few-shot head",
    )
    p.add_argument("--text-column", default=None, help="text column of a CSV/Parquet pool for --labeler (default text)")
    p.add_argument("--label-column", default=None)
    p.add_argument("--id-column", default=None)
    g = p.add_argument_group("crowd oracle (--oracle crowd)")
    g.add_argument("--crowd-accuracy", default=None, help="labeler accuracies ~ U(low,high) (default 0.6,0.9)")
    g.add_argument("--crowd-table", help="CSV with columns labeler,accuracy: your own labelers instead of drawing")
    g.add_argument("--crowd-workers", type=int, default=None, help="labelers in the pool (default 10)")
    g.add_argument("--crowd-strategy", choices=["threshold", "uncertainty"], default=None,
                   help="GTX collection: confidence threshold (tau, kappa) or uncertainty sampling")
    g.add_argument("--tau", type=float, default=None, help="stop asking once the GTX posterior reaches tau")
    g.add_argument("--kappa", type=int, default=None, help="at most this many answers per item")
    g.add_argument("--answers-per-item", type=float, default=None, help="uncertainty strategy: answers per item")
    g.add_argument("--gold-size", type=int, default=None, help="gold items every labeler answers (accuracies)")
    g.add_argument("--delta-accuracy", type=float, default=None,
                   help="share of --delta spent on the labelers' accuracy limits (default 0.01)")
    g.add_argument("--difficulty", type=float, default=None, help="item difficulty shared with the model (0: none)")
    g.add_argument("--expert-cost", type=float, default=None, help="price of an expert label (default 10)")
    g.add_argument("--crowd-cost", type=float, default=None, help="price of one crowd answer (default 1)")
    g.add_argument("--no-expert-comparison", action="store_true",
                   help="skip the simulated expert run at the same cost reported in metrics.json")
    from labelsieve.engine import add_engine_arguments

    add_engine_arguments(p)
    p.add_argument("--resume", action="store_true", help="continue the run stored in --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


#: command-line dest -> RunConfig field, for every flag that defines a run
_FIELDS = {
    "dataset": "dataset", "epsilon": "epsilon", "delta": "delta", "budget": "budget", "seed": "seed",
    "oracle": "oracle", "noise": "noise", "scope": "scope", "model": "model", "strategy": "strategy",
    "bound": "bound", "rounds": "rounds", "val_fraction": "val_fraction", "delta_schedule": "delta_schedule",
    "label_column": "label_column", "id_column": "id_column", "classes": "classes", "labeler": "labeler",
    "text_column": "text_column", "crowd_accuracy": "crowd_accuracy", "crowd_table": "crowd_table",
    "crowd_workers": "n_workers", "crowd_strategy": "crowd_strategy", "tau": "tau", "kappa": "kappa",
    "answers_per_item": "answers_per_item", "gold_size": "gold_size", "delta_accuracy": "delta_accuracy",
    "difficulty": "difficulty", "expert_cost": "expert_cost", "crowd_cost": "crowd_cost",
}


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The run parameters the user gave explicitly (flags left out take RunConfig's defaults)."""
    out = {f: getattr(args, a) for a, f in _FIELDS.items() if getattr(args, a, None) is not None}
    if getattr(args, "no_expert_comparison", False):
        out["compare_expert"] = False
    return out


def _refuse_conflicts(out: Path, given: dict[str, Any]) -> None:
    """--resume continues the stored run; a flag that contradicts it is an error, not silently ignored."""
    from labelsieve.autolabel.rundir import RunConfig
    from labelsieve.errors import InputError

    cfg_path = out / "config.json"
    if not cfg_path.exists():
        raise InputError(f"{out}: no run to resume (missing config.json).")
    stored = RunConfig.from_json(cfg_path)
    diff = {k: (getattr(stored, k), v) for k, v in given.items() if getattr(stored, k) != v}
    if diff:
        shown = ", ".join(f"{k}: stored {a!r}, given {b!r}" for k, (a, b) in diff.items())
        raise InputError(f"{out}: --resume continues the stored run, but these flags differ from it: {shown}")


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
        from dataclasses import fields

        from labelsieve.autolabel.rundir import RunConfig

        oracle = args.oracle or "app"  # a project's humans answer in the web app
        defaults = {f.name: f.default for f in fields(RunConfig)}
        for a, f in _FIELDS.items():  # the project command reads plain values
            if getattr(args, a, None) is None and f in defaults:
                setattr(args, a, defaults[f])
        args.dir, args.new, args.oracle = args.project, False, oracle
        return _project_run(args)
    if not args.out:
        raise InputError("--out is required (or --project DIR)")
    if args.oracle == "app":
        raise InputError("--oracle app needs --project DIR")
    given = _given(args)
    cfg = None
    if args.resume:
        _refuse_conflicts(Path(args.out), given)
    else:
        if not args.dataset:
            raise InputError("--dataset is required (unless --resume)")
        cfg = RunConfig(**given)
    try:
        from labelsieve.engine import engine_from_args

        result = run_in_directory(
            cfg, args.out, resume=args.resume, progress=not args.no_progress, engine=engine_from_args(args)
        )
    except AwaitingAnswers as wait:
        print(f"waiting for human labels: {wait}")
        return 0
    print(summary_table(result))
    print(
        f"\nwrote {args.out}/labels.csv, labels.parquet, history.csv, rounds.png, metrics.json",
        file=sys.stdout,
    )
    return 0
