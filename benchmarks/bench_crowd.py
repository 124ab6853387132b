"""Speed of labelsieve's crowd aggregators vs crowd-kit 1.4.2 on 1M labels, side by side.

Data: 100k tasks x 10 labels (10 distinct workers per task out of 499), 10 classes, one-coin
labelers with accuracy ~ U(0.5, 0.95) and errors uniform over the other classes.

Pairs compared (same input table, same number of EM iterations, time of ``fit`` on the pandas table):
- MajorityVote            vs crowdkit MajorityVote.fit_predict_proba
- GTX (true accuracies)   vs crowdkit's closest: one OneCoinDawidSkene E-step (``DawidSkene._e_step``)
                             with the error matrix built from the same accuracies (its set-up excluded)
- OneCoinDawidSkene       vs crowdkit OneCoinDawidSkene   (``--n-iter`` iterations, no early stop)
- DawidSkene (full)       vs crowdkit DawidSkene          (``--n-iter`` iterations, no early stop)

crowd-kit lives in its own virtualenv so it cannot change numpy/pandas here:

    python -m venv benchmarks/.venv-crowdkit --system-site-packages
    benchmarks/.venv-crowdkit/bin/pip install crowd-kit==1.4.2

Run: ``python benchmarks/bench_crowd.py`` (``--tasks 20000`` for a quick run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from labelsieve.crowd import GTX, DawidSkene, MajorityVote, OneCoinDawidSkene

HERE = Path(__file__).resolve().parent
VENV_PYTHON = HERE / ".venv-crowdkit" / "bin" / "python"
N_WORKERS = 499  # prime: worker (base + stride * j) % 499 is distinct for j < 499

CROWDKIT_SCRIPT = r"""
import json, sys, time, warnings
import numpy as np, pandas as pd
import crowdkit
from crowdkit.aggregation import DawidSkene, MajorityVote, OneCoinDawidSkene
warnings.simplefilter("ignore")
d = sys.argv[1]; n_iter = int(sys.argv[2])
data = pd.read_parquet(f"{d}/labels.parquet")
acc = pd.read_parquet(f"{d}/acc.parquet")["accuracy"]
times = {}
t = time.perf_counter(); mv = MajorityVote().fit_predict_proba(data); times["mv"] = time.perf_counter() - t
# GTX-equivalent: one one-coin E-step with the known accuracies and a uniform prior
t0 = time.perf_counter()
errors = OneCoinDawidSkene._process_skills_to_errors(data, mv, acc)
priors = pd.Series(1.0 / mv.shape[1], index=mv.columns)
t = time.perf_counter(); gtx = DawidSkene._e_step(data, priors, errors); times["gtx"] = time.perf_counter() - t
times["gtx_setup"] = t - t0
t = time.perf_counter(); oc = OneCoinDawidSkene(n_iter=n_iter, tol=float("-inf")).fit(data)
times["onecoin"] = time.perf_counter() - t
t = time.perf_counter(); ds = DawidSkene(n_iter=n_iter, tol=float("-inf")).fit(data)
times["ds"] = time.perf_counter() - t
for name, p in {"mv": mv, "gtx": gtx, "onecoin": oc.probas_, "ds": ds.probas_}.items():
    p = p.reindex(columns=sorted(p.columns))
    p.columns = [str(c) for c in p.columns]
    p.to_parquet(f"{d}/ck_{name}.parquet")
json.dump({"times": times, "version": crowdkit.__version__}, open(f"{d}/ck_times.json", "w"))
"""


def make_data(n_tasks: int, per_task: int, n_classes: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    acc = rng.uniform(0.5, 0.95, N_WORKERS)
    truth = rng.integers(0, n_classes, n_tasks)
    base = rng.integers(0, N_WORKERS, n_tasks)
    stride = rng.integers(1, N_WORKERS, n_tasks)
    worker = (base[:, None] + stride[:, None] * np.arange(per_task)) % N_WORKERS
    correct = rng.random(worker.shape) < acc[worker]
    wrong = (truth[:, None] + rng.integers(1, n_classes, worker.shape)) % n_classes
    label = np.where(correct, truth[:, None], wrong)
    data = pd.DataFrame({
        "task": np.repeat(np.arange(n_tasks), per_task),
        "worker": worker.ravel(),
        "label": label.ravel(),
    })
    return data, pd.Series(acc, index=pd.RangeIndex(N_WORKERS, name="worker"), name="accuracy")


def timed(fn, repeat: int = 1):  # type: ignore[no-untyped-def]
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--per-task", type=int, default=10)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--n-iter", type=int, default=10, help="EM iterations for both implementations")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    data, acc = make_data(args.tasks, args.per_task, args.classes, args.seed)
    print(f"{len(data):,} labels: {args.tasks:,} tasks x {args.per_task}, {args.classes} classes, "
          f"{N_WORKERS} workers; EM: {args.n_iter} iterations, no early stop")
    ours: dict[str, tuple[float, pd.DataFrame]] = {}
    warnings.simplefilter("ignore")
    ours["mv"] = timed(lambda: MajorityVote().fit_predict_proba(data), repeat=3)
    ours["gtx"] = timed(lambda: GTX(accuracies=acc, classes=range(args.classes)).fit_predict_proba(data), repeat=3)
    ours["onecoin"] = timed(lambda: OneCoinDawidSkene(max_iter=args.n_iter, tol=0.0).fit_predict_proba(data))
    ours["ds"] = timed(lambda: DawidSkene(max_iter=args.n_iter, tol=0.0).fit_predict_proba(data))

    ck_times: dict[str, float] = {}
    ck: dict[str, pd.DataFrame] = {}
    version = "not installed"
    if VENV_PYTHON.exists():
        with tempfile.TemporaryDirectory() as d:
            data.to_parquet(f"{d}/labels.parquet")
            acc.to_frame().to_parquet(f"{d}/acc.parquet")
            subprocess.run([str(VENV_PYTHON), "-c", CROWDKIT_SCRIPT, d, str(args.n_iter)], check=True)
            info = json.loads(Path(f"{d}/ck_times.json").read_text())
            ck_times, version = info["times"], info["version"]
            for name in ours:
                p = pd.read_parquet(f"{d}/ck_{name}.parquet")
                p.columns = [int(c) for c in p.columns]
                ck[name] = p
    else:
        print(f"crowd-kit venv missing ({VENV_PYTHON}); see the module docstring", file=sys.stderr)

    labels = {"mv": "MajorityVote", "gtx": "GTX  | ck: one OneCoinDS E-step", "onecoin": "OneCoinDawidSkene",
              "ds": "DawidSkene (full)"}
    rows = []
    for name, (t_ours, p_ours) in ours.items():
        row = {"method": labels[name], "labelsieve s": round(t_ours, 3)}
        if name in ck:
            p_ck = ck[name].reindex(index=p_ours.index, columns=p_ours.columns)
            row.update({
                f"crowd-kit {version} s": round(ck_times[name], 3),
                "speed-up": round(ck_times[name] / t_ours, 1),
                "same hard label": float(np.mean(p_ours.to_numpy().argmax(1) == p_ck.to_numpy().argmax(1))),
                "max |posterior diff|": float(np.abs(p_ours.to_numpy() - p_ck.to_numpy()).max()),
            })
        rows.append(row)
    pd.set_option("display.width", 200)
    print(pd.DataFrame(rows).to_string(index=False))
    if "gtx_setup" in ck_times:
        full = ck_times["gtx_setup"] + ck_times["gtx"]
        print(f"crowd-kit has no GTX: building its one-coin error matrix from the accuracies takes "
              f"{ck_times['gtx_setup']:.3f} s more (set-up + E-step {full:.3f} s = "
              f"{full / ours['gtx'][0]:.1f}x our GTX fit); GTX vs crowd-kit MajorityVote: "
              f"{ck_times['mv'] / ours['gtx'][0]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
