"""``labelsieve aggregate`` (crowd labels -> one label per task) and ``labelsieve bench gtx``."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

from labelsieve._registry import LazyChoices

if TYPE_CHECKING:
    from labelsieve.crowd._base import AdditiveAggregator, Aggregator

logger = logging.getLogger(__name__)


def _aggregator_names() -> tuple[str, ...]:
    from labelsieve.crowd import AGGREGATORS

    return AGGREGATORS.names()


#: ``--method`` choices: the aggregator registry, read when the command line is parsed.
METHODS = LazyChoices(_aggregator_names)
#: Default repeats of ``bench gtx`` (the paper's counts: 100 for Table 1, 10 for Table 2).
DEFAULT_REPEATS = {1: 100, 2: 10}


def register(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "aggregate",
        help="aggregate crowd labels (task,worker,label CSV) into one label per task",
        description="Aggregate LABELS.csv (columns task,worker,label) into OUT.csv with columns "
        "task,label,confidence,n_labels. wmv/sv/gtx need labeler accuracies: --accuracies ACC.csv "
        "(worker,accuracy) or --gold GOLD.csv (task,label), from which each labeler's accuracy is the "
        "Beta(1,1) posterior mean. ds/onecoin learn them by EM.",
    )
    p.add_argument("labels", type=Path, metavar="LABELS.csv")
    p.add_argument("--method", choices=METHODS, default="gtx")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--gold", type=Path, metavar="GOLD.csv", help="true labels of some tasks (task,label)")
    src.add_argument("--accuracies", type=Path, metavar="ACC.csv", help="labeler accuracies (worker,accuracy)")
    p.add_argument("--out", type=Path, required=True, metavar="OUT.csv")
    p.add_argument("--classes", help="comma-separated class names (default: the sorted labels found)")
    p.add_argument("--unknown-worker", choices=("prior", "error"), default="prior",
                   help="a labeler without accuracy gets accuracy 0.5 (prior, default) or is an error")
    from labelsieve.engine import add_engine_arguments

    add_engine_arguments(p)
    p.set_defaults(func=_aggregate)

    b = bench.add_parser(
        "gtx",
        help="reproduce Tables 1-2 and Figures 1-2 of the GTX paper (simulation)",
        description="Simulate the GTX paper's section 3 and print our numbers beside the paper's.",
    )
    b.add_argument("--table", type=int, choices=(1, 2), required=True)
    b.add_argument("--repeats", type=int, default=None,
                   help="simulations per setting (default: the paper's, 100 for table 1, 10 for table 2)")
    b.add_argument("--out", type=Path, default=Path("gtx_results"), help="directory for the PNG and CSV files")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=_bench_gtx)


def _aggregate(args: argparse.Namespace) -> int:
    from labelsieve.crowd import accuracies_from_estimate, encode_table, estimate_accuracies, get_aggregator
    from labelsieve.crowd._io import CSV_LINE_OFFSET, read_accuracies_csv, read_csv_table, write_csv_atomic
    from labelsieve.engine import engine_from_args
    from labelsieve.errors import InputError

    engine = engine_from_args(args)  # before reading anything: a bad address fails fast, nothing written
    labels = read_csv_table(args.labels, ("task", "worker", "label"))
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    table = encode_table(labels, classes=classes, source=str(args.labels), line_offset=CSV_LINE_OFFSET)
    accuracies = None
    if args.accuracies is not None:
        accuracies = read_accuracies_csv(args.accuracies)
    elif args.gold is not None:
        gold = read_csv_table(args.gold, ("task", "label"))
        est = estimate_accuracies(labels, gold, classes=classes, source=(str(args.labels), str(args.gold)),
                                  line_offset=CSV_LINE_OFFSET)
        logger.info("accuracies from %d gold tasks: %s", len(gold), est.to_dict("records"))
        accuracies = accuracies_from_estimate(est)
    agg_cls = get_aggregator(args.method)
    if agg_cls.uses_accuracies:
        if accuracies is None:
            from labelsieve.crowd import AGGREGATORS

            free = [n for n in AGGREGATORS.names() if not AGGREGATORS[n].uses_accuracies]
            raise InputError(f"--method {args.method} needs labeler accuracies: give --gold GOLD.csv or "
                             f"--accuracies ACC.csv (or use --method {', '.join(free[:-1])} or {free[-1]}).")
        unknown = table.workers.difference(accuracies.index)
        if len(unknown):
            logger.warning("%d worker(s) without accuracy (%s); unknown_worker=%s", len(unknown),
                           ", ".join(map(str, unknown[:5])), args.unknown_worker)
        acc_cls = cast("type[AdditiveAggregator]", agg_cls)  # only additive aggregators set uses_accuracies
        agg: Aggregator = acc_cls(accuracies=accuracies, classes=list(table.classes),
                                  unknown_worker=args.unknown_worker)
    else:
        if accuracies is not None:
            logger.warning("--method %s does not use labeler accuracies; --gold/--accuracies ignored", args.method)
        agg = agg_cls(classes=list(table.classes))
    agg.fit(labels, engine=engine, block_size=args.block_size)
    out = agg.labels_.rename("label").to_frame()
    out["confidence"] = agg.confidence_
    out["n_labels"] = agg.n_labels_
    out = out.reset_index()
    write_csv_atomic(out, args.out)
    print(f"aggregated {table.n_labels} labels of {table.n_workers} workers into {len(out)} tasks "
          f"({args.method}); wrote {args.out}")
    return 0


def _bench_gtx(args: argparse.Namespace) -> int:
    import pandas as pd

    from labelsieve._validation import check_positive_int
    from labelsieve.crowd._io import write_csv_atomic
    from labelsieve.crowd.simulator import SETTINGS
    from labelsieve.experiments.gtx_figures import plot_figure1, plot_figure2
    from labelsieve.experiments.gtx_tables import (
        simulate_table1,
        simulate_table2,
        summarize_table1,
        summarize_table2,
        table1_report,
        table2_report,
    )

    repeats = DEFAULT_REPEATS[args.table] if args.repeats is None else args.repeats
    check_positive_int("repeats", repeats, owner="bench gtx")
    out_dir: Path = args.out
    pd.set_option("display.width", 200)
    t0 = time.perf_counter()
    if args.table == 1:
        print(f"GTX paper Table 1 (confidence threshold, B=15000, kappa=5, 10 labelers), {repeats} repeats; "
              f"± = standard error over repeats (ours and, we read, the paper's)")
        raws = []
        for setting in SETTINGS:
            raw = simulate_table1(setting, repeats=repeats, seed=args.seed)
            raws.append(raw.assign(setting=setting))
            summary = summarize_table1(raw)
            print(f"\n[{setting}: alpha ~ U{SETTINGS[setting]}]")
            print(table1_report(summary, setting).to_string(index=False))
            write_csv_atomic(summary.assign(setting=setting), out_dir / f"table1_{setting}.csv")
            if setting == "more_accurate":
                fig = plot_figure1(raw, out_dir / "figure1.png")
        write_csv_atomic(pd.concat(raws), out_dir / "table1_raw.csv")
    else:
        print(f"GTX paper Table 2 (uncertainty sampling, 5000 items, B=15000, 10 labelers), {repeats} repeats; "
              f"± = standard error over repeats")
        traces = {}
        for setting in SETTINGS:
            traces[setting] = simulate_table2(setting, repeats=repeats, seed=args.seed)
            summary = summarize_table2(traces[setting])
            print(f"\n[{setting}: alpha ~ U{SETTINGS[setting]}]")
            print(table2_report(summary, setting).to_string(index=False))
            write_csv_atomic(summary.assign(setting=setting), out_dir / f"table2_{setting}.csv")
        fig = plot_figure2(traces, out_dir / "figure2.png", n_items=5000)
    print(f"\nsaved {fig} and CSVs in {out_dir} ({time.perf_counter() - t0:.1f} s)")
    return 0
