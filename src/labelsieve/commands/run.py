"""``labelsieve run``: threshold-based auto-labeling of a pool, written to a run directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any, bench: Any) -> None:
    p = sub.add_parser("run", help="auto-label a pool with a guaranteed error bound (TBAL)")
    p.add_argument(
        "--dataset", help="embedded name (digits, breast-cancer, waveform) or a CSV/Parquet/.npy path"
    )
    p.add_argument(
        "--out", help="run directory (required unless --project)"
    )
    p.add_argument(
        "--project", help="run against a labeling project (labelsieve init); events go to its store, not to --out"
    )
    from labelsieve.runs.spec import add_spec_arguments

    add_spec_arguments(p)
    from labelsieve.engine import add_engine_arguments

    add_engine_arguments(p)
    p.add_argument("--resume", action="store_true", help="continue the run stored in --out")
    p.add_argument("--new", action="store_true", help="with --project: run again even if a run with this "
                   "configuration completed")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def _refuse_conflicts(out: Path, given: dict[str, Any]) -> None:
    """--resume continues the stored run; a flag that contradicts it is an error, not silently ignored."""
    from labelsieve.errors import InputError
    from labelsieve.runs.directory import RunConfig

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
    from labelsieve.errors import InputError
    from labelsieve.runs.directory import RunConfig, run_in_directory, summary_table
    from labelsieve.runs.spec import DIR, PROJECT, check_sink, given

    values = given(args)
    if args.project:
        if args.out:
            raise InputError("--out and --project exclude each other: a run goes to a run directory or a project")
        if args.resume:
            raise InputError("--resume is for run directories; a project run resumes by running it again")
        check_sink(values, PROJECT)
        from labelsieve.commands.project import run_spec_on_project

        return run_spec_on_project(args.project, values, args)
    if not args.out:
        raise InputError("--out is required (or --project DIR)")
    check_sink(values, DIR)
    if args.new:
        raise InputError("--new is for --project runs; a run directory is new when --out is")
    given_ = values
    cfg = None
    if args.resume:
        _refuse_conflicts(Path(args.out), given_)
    else:
        if not args.dataset:
            raise InputError("--dataset is required (unless --resume)")
        cfg = RunConfig(**given_)
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
