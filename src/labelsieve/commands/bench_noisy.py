"""``labelsieve bench noisy``: the noise-aware guarantee audited over many seeds, and the cost table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any, bench: Any) -> None:
    p = bench.add_parser(
        "noisy",
        help="TBAL on crowd labels: noise-aware bound vs aggregated labels taken as truth, and the cost table",
    )
    p.add_argument("--dataset", default="digits", help="embedded name or path (needs ground truth)")
    p.add_argument("--seeds", type=int, default=200, help="seeds of the audit")
    p.add_argument("--cost-seeds", type=int, default=20, help="seeds of the cost table (0: skip it)")
    p.add_argument("--settings", nargs="+", default=["U(0.6,0.9)", "U(0.8,1.0)"],
                   choices=["U(0.6,0.9)", "U(0.8,1.0)"], help="labeler accuracy distributions")
    p.add_argument("--epsilon", type=float, default=0.05)
    p.add_argument("--delta", type=float, default=0.05, help="total, accuracy share included")
    p.add_argument("--delta-accuracy", type=float, default=0.01, help="share of delta spent on labeler accuracies")
    p.add_argument("--budget", type=int, default=800, help="items sent to the crowd in the audit")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--tau", type=float, default=0.999)
    p.add_argument("--kappa", type=int, default=7)
    p.add_argument("--gold-size", type=int, default=400, help="gold answers per labeler (from earlier tasks)")
    p.add_argument("--difficulty", type=float, default=0.75, help="item-difficulty strength (0: plain one-coin)")
    p.add_argument("--scope", choices=["global", "per-class"], default="global")
    p.add_argument("--delta-schedule", choices=["geometric", "uniform", "last"], default="geometric",
                   help="TBAL's split of delta over rounds (default geometric, as `labelsieve run`)")
    p.add_argument("--total-cost", type=float, default=4000.0, help="cost table: budget in crowd-answer units")
    p.add_argument("--expert-cost", type=float, default=10.0, help="price of an expert label")
    p.add_argument("--crowd-cost", type=float, default=1.0, help="price of one crowd answer")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", help="write audit_runs.csv, audit.csv, cost_runs.csv, cost.csv here")
    p.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    from labelsieve._atomic import atomic_write_text
    from labelsieve._validation import check_open_unit, check_positive_int
    from labelsieve.autolabel.crowd_oracle import reference_probabilities
    from labelsieve.data import load_dataset
    from labelsieve.errors import ParameterError
    from labelsieve.experiments.noisy_audit import (
        audit_runs,
        cost_table,
        format_audit,
        format_cost,
        summarize_audit,
        summarize_cost,
    )

    owner = "bench noisy"
    check_positive_int("seeds", args.seeds, owner=owner)
    check_positive_int("cost_seeds", args.cost_seeds, owner=owner, minimum=0)
    check_open_unit("epsilon", args.epsilon, owner=owner)
    check_open_unit("delta", args.delta, owner=owner)
    check_open_unit("delta_accuracy", args.delta_accuracy, owner=owner)
    if args.delta_accuracy >= args.delta:
        raise ParameterError(f"The 'delta_accuracy' parameter of {owner} must be < delta ({args.delta}). "
                             f"Got {args.delta_accuracy!r} instead.")
    ds = load_dataset(args.dataset)
    ref = reference_probabilities(ds, random_state=0)
    common = {"epsilon": args.epsilon, "delta": args.delta, "delta_accuracy": args.delta_accuracy,
              "rounds": args.rounds, "tau": args.tau, "kappa": args.kappa, "gold_size": args.gold_size,
              "difficulty": args.difficulty, "scope": args.scope, "delta_schedule": args.delta_schedule}
    settings = tuple(dict.fromkeys(args.settings))
    runs = audit_runs(ds, seeds=args.seeds, settings=settings, n_jobs=args.jobs, progress=True, reference=ref,
                      budget=args.budget, **common)
    audit = summarize_audit(runs, args.epsilon)
    print(f"Audit: TBAL on {ds.name} validated on GTX crowd labels (tau={args.tau}, kappa={args.kappa}, "
          f"{args.budget} items, {args.rounds} rounds ({args.delta_schedule}), {args.scope} scope, item difficulty "
          f"{args.difficulty}), {args.seeds} seeds")
    print(format_audit(audit, args.epsilon, args.delta))
    cost = None
    if args.cost_seeds:
        cost_runs = cost_table(ds, seeds=args.cost_seeds, settings=settings, n_jobs=args.jobs, reference=ref,
                               progress=True, total_cost=args.total_cost, expert_cost=args.expert_cost,
                               crowd_cost=args.crowd_cost, **common)
        cost = summarize_cost(cost_runs, args.epsilon)
        print()
        print(f"Cost table: coverage at eps={args.epsilon} for a total of {args.total_cost:g} "
              f"(expert label {args.expert_cost:g}, crowd answer {args.crowd_cost:g}; gold answers from earlier "
              f"tasks, not charged), {args.cost_seeds} seeds")
        print(format_cost(cost))
    if args.out:
        out = Path(args.out)
        atomic_write_text(out / "audit_runs.csv", runs.to_csv(index=False))
        atomic_write_text(out / "audit.csv", audit.to_csv(index=False))
        if cost is not None:
            atomic_write_text(out / "cost_runs.csv", cost_runs.to_csv(index=False))
            atomic_write_text(out / "cost.csv", cost.to_csv(index=False))
    return 0
