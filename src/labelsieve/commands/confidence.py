"""``labelsieve bench confidence``: the train-time x post-hoc confidence-function grid (Colander paper)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def register(sub: Any, bench: Any) -> None:
    from labelsieve.experiments.confidence_grid import POST_HOC, PRESETS, TRAIN_TIME

    b = bench.add_parser(
        "confidence",
        help="coverage of TBAL with every train-time x post-hoc confidence function (Colander grid)",
        description="Runs TBAL (MLP classifier, Clopper-Pearson bound, fixed-sequence scan) for every "
        "train-time loss x post-hoc confidence function over several seeds and prints coverage and true "
        "auto-labeling error (mean ± sd) per cell and the share of seeds whose error exceeds epsilon. "
        "Saves runs.csv, summary.csv, coverage_vs_epsilon.png and score_density.png in --out.",
    )
    b.add_argument("--dataset", required=True, choices=sorted(PRESETS), help="offline data set")
    b.add_argument("--seeds", type=int, default=5, help="seeds per cell (default 5)")
    b.add_argument("--first-seed", type=int, default=0,
                   help="seeds run are FIRST_SEED .. FIRST_SEED + SEEDS - 1 (to extend a finished grid)")
    b.add_argument("--epsilon", type=float, default=0.05, help="target auto-labeling error (default 0.05)")
    b.add_argument("--delta", type=float, default=0.05)
    b.add_argument("--budget", type=int, help="human labels in all (default: the data set's preset)")
    b.add_argument("--rounds", type=int, help="TBAL rounds (default: the preset)")
    b.add_argument("--train-time", default=",".join(TRAIN_TIME), help="comma list of " + ",".join(TRAIN_TIME))
    b.add_argument("--post-hoc", default=",".join(POST_HOC), help="comma list of " + ",".join(POST_HOC))
    b.add_argument("--epochs", type=int, default=60, help="MLP epochs per round (default 60)")
    b.add_argument(
        "--eps-grid", default="0.02,0.05,0.1,0.2",
        help="epsilons for the coverage-vs-epsilon plot (train-time 'ce', up to 3 seeds; '' to skip)",
    )
    b.add_argument("--jobs", type=int, default=1, help="cells run in this many processes (default 1)")
    b.add_argument("--no-colander-search", dest="colander_search", action="store_false",
                   help="train Colander with its default lam only (default: choose lam in {1, 10, 100} on "
                   "the held-out selection part of the calibration data, never on threshold or pool data)")
    b.add_argument("--from-runs", type=Path, nargs="+", metavar="RUNS_CSV",
                   help="print the tables of finished grids from their runs.csv files, merged (no runs); "
                   "with --out, save the merged runs.csv, summary.csv and colander_comparison.csv")
    b.add_argument("--out", type=Path, help="directory for CSVs and plots (default: print only)")
    b.set_defaults(func=_bench_confidence)


def _progress(row: dict) -> None:
    print(
        f"  {row['train_time']:<10} {row['post_hoc']:<16} seed {row['seed']}: coverage {100 * row['coverage']:5.1f}% "
        f"error {100 * row['auto_label_error']:5.2f}% ({row['seconds']:.1f}s)",
        file=sys.stderr,
        flush=True,
    )


def _report(grid: Any, runs: Any, delta: float) -> tuple[Any, Any]:
    """Print the grid table, the validity check and Colander against each method."""
    summary = grid.summarize(runs)
    has_pop = "population_error" in runs
    print(grid.format_table(summary))
    print("* = highest coverage among the calibrated post-hoc methods of that train-time method; "
          "seeds>eps = seeds whose auto-labels' true error exceeds epsilon"
          + ("; pop = the final rule's error on the fresh sample" if has_pop else ""))
    print(grid.validity_check(runs, delta))
    if has_pop:
        print(grid.validity_check(runs, delta, column="population_error"))
    comp = grid.colander_comparison(runs)
    if len(comp):
        print(grid.format_comparison(comp))
    return summary, comp


def _bench_confidence(args: argparse.Namespace) -> int:
    from labelsieve.errors import InputError
    from labelsieve.experiments import confidence_grid as grid

    if args.from_runs is not None:
        runs = grid.pd.concat([grid.pd.read_csv(f) for f in args.from_runs], ignore_index=True)
        if "delta" not in runs:  # grids saved before the column existed ran at --delta
            runs["delta"] = args.delta
        runs["delta"] = runs["delta"].fillna(args.delta)
        runs = runs.drop_duplicates(["dataset", "epsilon", "train_time", "post_hoc", "seed"], keep="last")
        summary, comp = _report(grid, runs, float(runs["delta"].iloc[0]))
        if args.out is not None:
            for name, df in (("runs", runs), ("summary", summary), ("colander_comparison", comp)):
                grid.save_csv(df, args.out / f"{name}.csv")
        return 0
    ds, preset = grid.load_grid_dataset(args.dataset)
    if args.seeds < 1:
        raise InputError(f"--seeds must be >= 1; got {args.seeds}.")
    if args.jobs < 1:
        raise InputError(f"--jobs must be >= 1; got {args.jobs}.")
    kw = {
        "delta": args.delta,
        "budget": args.budget or preset.budget,
        "rounds": args.rounds or preset.rounds,
        "val_fraction": preset.val_fraction,
        "hidden": preset.hidden,
        "epochs": args.epochs,
        "fresh": grid.load_fresh(args.dataset),
        "colander_params": {"search": {"lam": [1, 10, 100]}} if args.colander_search else None,
    }
    train_times, post_hocs = _csv_list(args.train_time), _csv_list(args.post_hoc)
    print(
        f"dataset {ds.name} ({args.dataset}: {preset.description}); human budget {kw['budget']} "
        f"(validation share {preset.val_fraction}), {kw['rounds']} rounds, epsilon {args.epsilon}, "
        f"delta {args.delta} ({grid.DELTA_SCHEDULE} over rounds), Clopper-Pearson fixed-sequence bound, MLP({preset.hidden}), {args.seeds} seeds"
        + (f"; population error measured on a fresh sample of {len(kw['fresh'])}" if kw["fresh"] is not None else "")
        + ("; Colander's lam chosen in {1, 10, 100} on held-out calibration data" if args.colander_search else ""),
        flush=True,
    )
    runs = grid.run_grid(
        ds, train_times=train_times, post_hocs=post_hocs, seeds=range(args.first_seed, args.first_seed + args.seeds),
        epsilon=args.epsilon,
        on_run=_progress, jobs=args.jobs, **kw,
    )
    summary, comp = _report(grid, runs, args.delta)
    if args.out is None:
        return 0
    out: Path = args.out
    grid.save_csv(runs, out / "runs.csv")
    grid.save_csv(summary, out / "summary.csv")
    written = ["runs.csv", "summary.csv"]
    if len(comp):
        grid.save_csv(comp, out / "colander_comparison.csv")
        written.append("colander_comparison.csv")
    eps_grid = [float(e) for e in _csv_list(args.eps_grid)]
    if eps_grid:
        t0 = train_times[0]
        parts = [runs[runs["train_time"] == t0]] if args.epsilon in eps_grid else []
        for e in eps_grid:
            if e != args.epsilon:
                parts.append(grid.run_grid(
                    ds, train_times=[t0], post_hocs=post_hocs, seeds=range(min(args.seeds, 3)), epsilon=e,
                    jobs=args.jobs, **kw
                ))
        eps_summary = grid.summarize(grid.pd.concat(parts, ignore_index=True))
        grid.save_csv(eps_summary, out / "coverage_vs_epsilon.csv")
        grid.plot_coverage_vs_epsilon(eps_summary, out / "coverage_vs_epsilon.png", train_time=t0)
        written += ["coverage_vs_epsilon.csv", "coverage_vs_epsilon.png"]
    shown = [p for p in ("softmax", "temperature", "colander") if p in post_hocs] or post_hocs[:1]
    rounds = [
        grid.one_round_scores(
            ds, p, 0, train_time=train_times[0], epsilon=args.epsilon, delta=args.delta,
            budget=kw["budget"], val_fraction=preset.val_fraction, hidden=preset.hidden, epochs=args.epochs,
        )
        for p in shown
    ]
    grid.plot_score_density(
        rounds, out / "score_density.png",
        title=f"{ds.name}: one TBAL round, pool scores ({train_times[0]}, accuracy {100 * rounds[0]['accuracy']:.1f}%)",
    )
    written.append("score_density.png")
    print(f"wrote {', '.join(written)} in {out}")
    return 0
