"""``labelsieve bench salutary``: the salutary-labeling paper's protocol (Tables 1-2, Figures 2-3)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub, bench) -> None:
    p = bench.add_parser(
        "salutary",
        help="salutary labeling vs active-learning baselines (paper's Table 1/2, Figure 2/3)",
        description="Run the salutary-labeling protocol: 60/20/20 split, --init labeled points, --rounds "
        "rounds of --batch queries, logistic regression; writes DIR/results.csv "
        "(strategy,seed,round,test_accuracy) and DIR/figure2.png and prints Table 1 beside the paper.",
    )
    p.add_argument("--dataset", required=True,
                   help="waveform, digits, breast-cancer, or a CSV/Parquet file with numeric feature "
                        "columns and a 'label' column")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--init", type=int, default=300)
    p.add_argument("--C", type=float, default=1.0, help="inverse L2 strength, as scikit-learn's C")
    p.add_argument("--strategies", default=None,
                   help="comma-separated subset of: random, entropy, margin, least-confidence, isal, ibds, "
                        "coreset, batchbald, badge, ours-gt, ours-sl, ours-gt2, ours-sl2 (default: all; '*2' = "
                        "second-order correction, not in the paper)")
    p.add_argument("--table2", action="store_true",
                   help="also run Table 2: salutary labeling up to 50%% of the pool, best validation round, "
                        "beside fully supervised and self-training")
    p.add_argument("--influence-check", action="store_true",
                   help="also run Figure 3: predicted vs actual add-one-in validation-loss change (300 points)")
    p.add_argument("--out", required=True, help="output directory (created if missing)")
    p.set_defaults(func=_handler)

    from labelsieve.engine import add_engine_arguments

    q = sub.add_parser(
        "influence",
        help="score a pool by salutary influence (loss decrease per label) and pick the top b",
        description="Fit L2 logistic regression on TRAIN, solve H^-1 g_val on VAL (on this machine: both "
        "are small), then score every row of POOL (Parquet file(s)/directory with the same feature columns, "
        "streamed block by block, optionally on Ray). Writes OUT/scores/part-*.parquet (_row, decrease, "
        "label, gain), committed only when every block is done, and OUT/top.csv (the --top rows with the "
        "largest salutary gain: row, id, salutary_label, gain).",
    )
    q.add_argument("--train", required=True, help="CSV/Parquet with numeric features and a 'label' column")
    q.add_argument("--val", required=True, help="validation CSV/Parquet, same columns")
    q.add_argument("--pool", required=True, nargs="+", help="Parquet file(s) or a directory of *.parquet")
    q.add_argument("--top", type=int, default=100, help="number of rows to select (default 100)")
    q.add_argument("--C", type=float, default=1.0, help="inverse L2 strength, as scikit-learn's C")
    q.add_argument("--out", required=True, help="output directory")
    add_engine_arguments(q)
    q.set_defaults(func=_influence)


def load_table(spec: str):
    """An embedded data set by name, or a CSV/Parquet file with a ``label`` column; returns (X, y, name)."""
    import numpy as np

    from labelsieve.data.embedded import EMBEDDED, embedded_key
    from labelsieve.errors import InputError

    key = embedded_key(spec)
    if key is not None:
        ds = EMBEDDED[key]()
        return ds.X, ds.y, key
    if not os.path.exists(spec):
        raise InputError(f"--dataset {spec!r}: not an embedded data set ({', '.join(EMBEDDED)}) nor an "
                         f"existing file.")
    import pandas as pd

    try:
        df = pd.read_parquet(spec) if spec.lower().endswith((".parquet", ".pq")) else pd.read_csv(spec)
    except Exception as exc:
        raise InputError(f"{spec}: cannot read as CSV/Parquet ({exc}).") from exc
    if "label" not in df.columns:
        raise InputError(f"{spec}: no 'label' column; columns are {list(df.columns)[:10]}.")
    feats = [c for c in df.columns if c != "label"]
    if not feats:
        raise InputError(f"{spec}: no feature columns besides 'label'.")
    for c in feats:
        if not pd.api.types.is_numeric_dtype(df[c]):
            bad = pd.to_numeric(df[c], errors="coerce").isna() & df[c].notna()
            row = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
            raise InputError(f"{spec}: column {c!r} is not numeric (row {row}: value {df[c].iloc[row]!r}).")
    X = df[feats].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(f"{spec}: missing or non-finite value at row {r}, column {feats[c]!r}.")
    if df["label"].isna().any():
        r = int(np.flatnonzero(df["label"].isna().to_numpy())[0])
        raise InputError(f"{spec}: empty label at row {r}.")
    classes, y = np.unique(df["label"].astype(str).to_numpy(), return_inverse=True)
    if len(classes) < 2:
        raise InputError(f"{spec}: column 'label' holds a single class {classes.tolist()}.")
    name = os.path.splitext(os.path.basename(spec))[0]
    return X, y.astype(np.int64), name


def _handler(args: argparse.Namespace) -> int:
    from labelsieve.errors import ParameterError
    from labelsieve.experiments.salutary_protocol import (
        PAPER_TABLE1,
        PAPER_TABLE2,
        PROTOCOL_STRATEGIES,
        atomic_write_bytes,
        format_table,
        influence_check,
        plot_rounds,
        run_protocol,
        run_table2,
        split_data,
        summarize,
    )

    strategies = PROTOCOL_STRATEGIES
    if args.strategies:
        strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
        unknown = [s for s in strategies if s not in PROTOCOL_STRATEGIES]
        if unknown:
            raise ParameterError(
                f"--strategies: unknown {unknown}; choose from {', '.join(PROTOCOL_STRATEGIES)}."
            )
    for flag in ("seeds", "rounds", "batch", "init"):
        if getattr(args, flag) < (0 if flag == "rounds" else 1):
            raise ParameterError(f"--{flag} must be a positive integer. Got {getattr(args, flag)} instead.")
    if not args.C > 0:
        raise ParameterError(f"--C must be > 0. Got {args.C} instead.")
    X, y, name = load_table(args.dataset)
    split = split_data(X, y)
    os.makedirs(args.out, exist_ok=True)
    results = run_protocol(split, strategies=strategies, seeds=args.seeds, rounds=args.rounds, batch=args.batch,
                           n_init=args.init, C=args.C, progress=True)
    cols = ["strategy", "seed", "round", "test_accuracy", "val_accuracy", "n_labeled", "n_diff"]
    atomic_write_bytes(os.path.join(args.out, "results.csv"), results[cols].to_csv(index=False).encode())
    table = summarize(results, paper=PAPER_TABLE1.get(name))
    atomic_write_bytes(os.path.join(args.out, "table1.csv"), table.to_csv(index=False).encode())
    print(format_table(table, title=f"Table 1 ({name}): test accuracy (%) after {args.rounds} rounds x "
                                    f"{args.batch} queries, {args.seeds} seeds (mean ± std)"))
    plot_rounds(results, os.path.join(args.out, "figure2.png"), title=f"{name}: accuracy per round")
    print(f"wrote {os.path.join(args.out, 'results.csv')} and figure2.png")
    if args.table2:
        t2 = run_table2(split, seeds=args.seeds, batch=args.batch, n_init=args.init, C=args.C)
        atomic_write_bytes(os.path.join(args.out, "table2.csv"), t2.to_csv(index=False).encode())
        paper2 = PAPER_TABLE2.get(name, {})
        print(f"\nTable 2 ({name}): test accuracy (%) after labeling up to 50% of the pool (best val round)")
        print(f"{'method':<18}{'ours':>16}{'paper':>10}")
        for method, g in t2.groupby("method", sort=False):
            acc = g["test_accuracy"] * 100
            pv = paper2.get(method)
            print(f"{method:<18}{f'{acc.mean():.2f} ± {acc.std(ddof=0):.2f}':>16}"
                  f"{'' if pv is None else f'{pv:.2f}':>10}")
    if args.influence_check:
        pred, actual, r = influence_check(split, n_init=args.init, n_points=300, C=args.C)
        import pandas as pd

        df = pd.DataFrame({"predicted_decrease": pred, "actual_decrease": actual})
        atomic_write_bytes(os.path.join(args.out, "influence_check.csv"), df.to_csv(index=False).encode())
        print(f"\nFigure 3 ({name}): predicted vs actual add-one-in validation-loss decrease, "
              f"{len(pred)} points: Spearman r = {r:.3f}")
    return 0


def _feature_names(spec: str) -> list[str]:
    import pandas as pd

    df = pd.read_parquet(spec) if spec.lower().endswith((".parquet", ".pq")) else pd.read_csv(spec, nrows=0)
    return [c for c in df.columns if c != "label"]


def _influence(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from labelsieve.active.influence import LogisticInfluence
    from labelsieve.crowd._io import write_csv_atomic
    from labelsieve.engine import DEFAULT_BLOCK_SIZE, LocalEngine, ParquetSource, as_source, engine_from_args
    from labelsieve.engine.shards import ShardedOutput
    from labelsieve.errors import InputError, ParameterError

    if args.top < 1:
        raise ParameterError(f"--top must be a positive integer. Got {args.top} instead.")
    if not args.C > 0:
        raise ParameterError(f"--C must be > 0. Got {args.C} instead.")
    engine = engine_from_args(args) or LocalEngine()
    block = args.block_size or DEFAULT_BLOCK_SIZE
    X, y, _ = load_table(args.train)
    X_val, y_val, _ = load_table(args.val)
    feats = _feature_names(args.train)
    if _feature_names(args.val) != feats:
        raise InputError(f"{args.val}: feature columns differ from {args.train}'s {feats[:10]}.")
    raw = pd.read_csv(args.train, usecols=["label"]) if not args.train.lower().endswith((".parquet", ".pq")) \
        else pd.read_parquet(args.train, columns=["label"])
    classes = np.unique(raw["label"].astype(str).to_numpy())
    val_raw = pd.read_csv(args.val, usecols=["label"]) if not args.val.lower().endswith((".parquet", ".pq")) \
        else pd.read_parquet(args.val, columns=["label"])
    val_names = val_raw["label"].astype(str).to_numpy()
    unknown = ~np.isin(val_names, classes)
    if unknown.any():
        r = int(np.flatnonzero(unknown)[0])
        raise InputError(f"{args.val}: label {val_names[r]!r} at row {r} is not a class of {args.train}.")
    y_val = np.searchsorted(classes, val_names).astype(np.int64)
    pool = as_source(args.pool, features=feats)
    assert isinstance(pool, ParquetSource)
    if args.top > len(pool):
        raise ParameterError(f"--top {args.top} exceeds the pool size {len(pool)}.")
    inf = LogisticInfluence(C=args.C, n_classes=len(classes)).fit(X, y, X_val, y_val)

    def block_scores(b: dict) -> dict:
        dec = inf.loss_decrease(b["X"])
        lab = np.argmax(dec, axis=1)
        out = {"decrease": dec, "label": lab.astype(np.int64), "gain": dec[np.arange(len(lab)), lab]}
        if "id" in b:
            out["id"] = b["id"]
        return out

    os.makedirs(os.path.dirname(os.path.abspath(args.out)) or ".", exist_ok=True)
    with ShardedOutput(args.out) as staging:
        scores_dir = os.path.join(staging, "scores")
        engine.map_blocks(block_scores, pool, block_size=block, out=scores_dir)
        # distributed top-k over the committed shards: only (gain, label, id) of b rows per block come back
        shards = ParquetSource([str(p) for p in sorted(Path(scores_dir).glob("part-*.parquet"))], features=[],
                               id_column="id", keep=["label", "gain"])
        top = engine.top_k(lambda b: {k: v for k, v in b.items() if k != "_row"}, shards, args.top, "gain",
                           block_size=block)
        table = pd.DataFrame({"row": top["_row"], "salutary_label": classes[top["label"]], "gain": top["gain"]})
        if "id" in top:
            table.insert(1, "id", top["id"])
        write_csv_atomic(table, Path(staging) / "top.csv")
    print(f"scored {len(pool)} pool rows ({engine.name} engine, {len(classes)} classes); top {args.top} "
          f"salutary rows in {os.path.join(args.out, 'top.csv')}")
    return 0
