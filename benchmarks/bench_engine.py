"""Engine benchmark: local vs Ray on this machine, printed as tables.

1. Pool scoring throughput (rows/s) from Parquet: a 384-dim embedding pool scored by a small MLP
   head (384 -> 256 -> 10, NumPy), local engine vs Ray with 1 and 2 workers (actors load the model
   once each). Ray start-up is reported separately, not in the rate.
2. Driver peak memory (VmHWM of a fresh process) scoring 100k vs 1M Parquet rows into Parquet
   shards (``out=``), local and Ray: flat means the driver never holds the pool.
3. Aggregation of N label rows (default 10M) with MV, GTX and Dawid-Skene (fixed 5 EM iterations),
   in process (no engine), local engine (blocks) and Ray.

Run: ``python benchmarks/bench_engine.py`` (``--quick`` for a smaller run). Needs ``labelsieve[ray]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


class MLPHead:
    """A fixed random 2-layer head: what a fine-tuned classifier on frozen embeddings costs."""

    def __init__(self, d: int, hidden: int = 256, k: int = 10, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.W1 = (rng.normal(size=(d, hidden)) / np.sqrt(d)).astype(np.float32)
        self.W2 = (rng.normal(size=(hidden, k)) / np.sqrt(hidden)).astype(np.float32)

    def scores(self, X):
        from labelsieve.models.base import Scores

        return Scores(np.maximum(X @ self.W1, 0) @ self.W2)


def write_pool(path: Path, n: int, d: int, seed: int = 0, chunk: int = 100_000) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer = None
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        X = rng.normal(size=(m, d)).astype(np.float32)
        t = pa.table({"id": np.arange(s, s + m), "embedding": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), d)})
        writer = writer or pq.ParquetWriter(path, t.schema)
        writer.write_table(t, row_group_size=50_000)
    assert writer is not None
    writer.close()
    return path


def engine_for(name: str, workers: int | None = None):
    from labelsieve.engine import get_engine

    if name == "local":
        return get_engine("local")
    return get_engine("ray", num_cpus=2, workers=workers)


def throughput(pool: Path, d: int, block: int) -> list[tuple[str, float, float, float]]:
    """(engine, rows/s end to end, rows/s steady state, fixed seconds per job).

    The fixed cost per job (Ray: starting the actor pool, loading the model) is measured by scoring
    one block; steady state = rows / (time - fixed cost).
    """
    from labelsieve.engine import ParquetSource

    src = ParquetSource([str(pool)], features=["embedding"])
    tiny = src.read(src.pieces(block)[0])["X"]  # one block, in memory
    head = MLPHead(d)
    rows = []

    def timed(eng) -> tuple[float, float, np.ndarray]:
        t0 = time.perf_counter()
        eng.score(head, tiny, block_size=len(tiny))
        fixed = time.perf_counter() - t0 - len(tiny) / 1e9
        t0 = time.perf_counter()
        s = eng.score(head, src, block_size=block)
        total = time.perf_counter() - t0
        return total, fixed, s.logits

    total, _, ref = timed(engine_for("local"))
    rows.append(("local", len(src) / total, len(src) / total, 0.0))
    t0 = time.perf_counter()
    ray_eng = engine_for("ray", workers=1)
    print(f"(Ray start-up, once per process: {time.perf_counter() - t0:.1f} s)")
    for w in (1, 2):
        ray_eng.workers = w
        total, fixed, logits = timed(ray_eng)
        # the one-block job also scored len(tiny) rows: count them at the local rate
        fixed = max(fixed - len(tiny) / rows[0][1], 0.0)
        rows.append((f"ray, {w} worker{'s' if w > 1 else ''}", len(src) / total,
                     len(src) / max(total - fixed, 1e-9), fixed))
        assert np.array_equal(logits, ref), "ray and local scores differ"
    ray_eng.close()
    return rows


def _memory_child(engine: str, pool: str, out: str, block: int) -> None:
    from labelsieve.engine import ParquetSource

    src = ParquetSource([pool], features=["embedding"])
    head = MLPHead(src.read(src.pieces(1)[0])["X"].shape[1])
    eng = engine_for(engine, workers=2)

    def fn(b):
        return {"logits": head.scores(b["X"]).logits}

    base = _peak_mb()
    t0 = time.perf_counter()
    eng.map_blocks(fn, src, block_size=block, out=out)
    print(json.dumps({"peak_mb": _peak_mb(), "before_mb": base, "seconds": time.perf_counter() - t0}))


def _peak_mb() -> float:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it is not inherited over fork+exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory(pools: dict[int, Path], tmp: Path, block: int, engines: list[str]) -> list[tuple[str, int, float, float]]:
    rows = []
    for eng in engines:
        for n, pool in pools.items():
            out = tmp / f"out-{eng}-{n}"
            proc = subprocess.run([sys.executable, __file__, "--memory-child", eng, str(pool), str(out), str(block)],
                                  capture_output=True, text=True, check=True)
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append((eng, n, res["peak_mb"], res["seconds"]))
    return rows


def crowd(n_labels: int, n_workers: int = 200, k: int = 2, labels_per_task: int = 5, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_tasks = n_labels // labels_per_task
    truth = rng.integers(0, k, n_tasks)
    acc = rng.uniform(0.55, 0.95, n_workers)
    task = np.repeat(np.arange(n_tasks), labels_per_task)
    worker = (rng.integers(0, n_workers - labels_per_task, n_tasks)[:, None] + np.arange(labels_per_task)).ravel()
    right = rng.random(task.size) < acc[worker]
    label = np.where(right, truth[task], rng.integers(0, k, task.size))
    df = pd.DataFrame({"task": task, "worker": worker, "label": label})
    return df, {w: float(a) for w, a in enumerate(acc)}


def aggregation(n_labels: int, block: int) -> list[tuple[str, str, float]]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from labelsieve.crowd import GTX, DawidSkene, MajorityVote

    df, accs = crowd(n_labels)
    makers = {"MV": lambda: MajorityVote(), "GTX": lambda: GTX(accuracies=accs),
              "DS (5 EM iterations)": lambda: DawidSkene(max_iter=5, tol=0.0)}
    rows = []
    ray_eng = engine_for("ray")
    for name, mk in makers.items():
        ref = None
        for label, engine in (("in process", None), ("local engine", "local"), ("ray (2 workers)", ray_eng)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                t0 = time.perf_counter()
                agg = mk().fit(df, engine=engine, block_size=block)
                dt = time.perf_counter() - t0
            if ref is None:
                ref = agg
            else:
                assert (agg.labels_ == ref.labels_).all()
                assert np.abs(agg.probas_.to_numpy() - ref.probas_.to_numpy()).max() < 1e-9
            rows.append((name, label, dt))
    ray_eng.close()
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        _memory_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a minute or two)")
    ap.add_argument("--rows", type=int, default=200_000, help="pool rows for the throughput run (384-dim)")
    ap.add_argument("--labels", type=int, default=10_000_000, help="label rows for the aggregation run")
    ap.add_argument("--mem-dim", type=int, default=32, help="feature dimension of the memory run's pools")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: throughput,memory,aggregation")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.labels = 50_000, 1_000_000
    skip = set(filter(None, args.skip.split(",")))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared; rates are lower bounds)")
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        if "throughput" not in skip:
            pool = write_pool(tmp / "pool384.parquet", args.rows, 384)
            print(f"\n1. scoring {args.rows} x 384 Parquet rows, MLP head 384-256-10, blocks of 8192")
            print(f"{'engine':<18}{'rows/s':>10}{'steady rows/s':>15}{'per core':>10}{'fixed s/job':>13}"
                  f"{'vs local':>10}")
            res = throughput(pool, 384, 8192)
            base = res[0][1]
            for name, rate, steady, fixed in res:
                cores = 2 if name == "ray, 2 workers" else 1
                print(f"{name:<18}{rate:>10,.0f}{steady:>15,.0f}{steady / cores:>10,.0f}{fixed:>13.1f}"
                      f"{steady / base:>10.2f}")
        if "memory" not in skip:
            sizes = (100_000, 1_000_000)
            pools = {n: write_pool(tmp / f"pool{n}.parquet", n, args.mem_dim) for n in sizes}
            print(f"\n2. driver peak memory scoring {args.mem_dim}-dim Parquet pools into Parquet shards "
                  f"(fresh process each, blocks of 65536)")
            print(f"{'engine':<8}{'rows':>10}{'pool MB':>9}{'peak RSS MB':>13}{'seconds':>9}")
            for eng, n, mb, sec in memory(pools, tmp, 65_536, ["local", "ray"]):
                print(f"{eng:<8}{n:>10,}{n * args.mem_dim * 4 / 2**20:>9.0f}{mb:>13.0f}{sec:>9.1f}")
        if "aggregation" not in skip:
            print(f"\n3. aggregating {args.labels:,} label rows (5 per task, 200 workers, 2 classes), "
                  f"blocks of 1M labels; identical labels, posteriors within 1e-9 checked")
            print(f"{'method':<22}{'path':<18}{'seconds':>9}{'labels/s':>13}")
            for name, path, dt in aggregation(args.labels, 1_000_000):
                print(f"{name:<22}{path:<18}{dt:>9.1f}{args.labels / dt:>13,.0f}")


if __name__ == "__main__":
    main()
