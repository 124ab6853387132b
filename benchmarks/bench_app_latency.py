"""Answer-to-next-item latency of the label page's API on a large project (issue 16).

    python benchmarks/bench_app_latency.py [--items 100000] [--answers 60] [--labelers 1 10]

Builds a project of ``--items`` synthetic items (Gaussian features, 10 classes) through the store
APIs (:func:`~labelsieve.store.project.init_project`), serves it with uvicorn in a subprocess
(``labelsieve serve``, the production path) and lets 1 and then 10 simulated labelers (threads,
httpx, with the ``Origin`` header) loop ``POST /api/label`` (the answer) + ``POST /api/next``
(the next item). The latency of one answer is the time from sending the answer to receiving the
next item. Prints the median and p95 per concurrency as a table and as JSON (``--json`` also
writes it to a file).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(path: Path, n: int, seed: int = 0) -> tuple[float, list[str]]:
    from labelsieve.data import Dataset
    from labelsieve.store.project import init_project

    rng = np.random.default_rng(seed)
    k, d = 10, 16
    y = rng.integers(0, k, n)
    X = (rng.normal(size=(k, d))[y] * 2 + rng.normal(size=(n, d))).astype(np.float32)
    ids = np.array([f"it{i:06d}" for i in range(n)], dtype=object)
    t0 = time.perf_counter()
    p = init_project(path, Dataset(ids=ids, X=X, classes=tuple(f"c{j}" for j in range(k)), y=y, name="synthetic"))
    for j in range(10):
        p.store.add_labeler(f"lab{j}")
    classes = list(p.classes)
    p.close()
    return time.perf_counter() - t0, classes


def labeler(base: str, who: str, classes: list[str], n_answers: int, seed: int, out: list[float],
            errors: list[str], start: threading.Barrier) -> None:
    rng = np.random.default_rng(seed)
    with httpx.Client(base_url=base, headers={"Origin": base}, timeout=60) as c:
        got = c.post("/api/next", json={"labeler": who}).json()
        start.wait()
        for _ in range(n_answers):
            if got.get("done") or got.get("item") is None:
                return
            t0 = time.perf_counter()
            r = c.post("/api/label", json={"labeler": who, "id": got["item"]["id"],
                                           "label": classes[int(rng.integers(len(classes)))],
                                           "request_id": got.get("request_id") or uuid.uuid4().hex})
            if r.status_code != 200:
                errors.append(f"label {r.status_code}: {r.text[:200]}")
            nxt = c.post("/api/next", json={"labeler": who})
            out.append(time.perf_counter() - t0)
            if nxt.status_code != 200:
                errors.append(f"next {nxt.status_code}: {nxt.text[:200]}")
                return
            got = nxt.json()


def measure(base: str, classes: list[str], n_lab: int, n_answers: int, offset: int) -> dict[str, float]:
    lat: list[float] = []
    errors: list[str] = []
    bar = threading.Barrier(n_lab)
    ths = [threading.Thread(target=labeler, args=(base, f"lab{(offset + j) % 10}", classes, n_answers, j, lat,
                                                 errors, bar)) for j in range(n_lab)]
    t0 = time.perf_counter()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, first: {errors[0]}")
    a = np.asarray(lat)
    return {"labelers": n_lab, "answers": len(a), "median_s": float(np.median(a)),
            "p95_s": float(np.percentile(a, 95)), "mean_s": float(a.mean()), "answers_per_s": len(a) / wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--answers", type=int, default=60, help="answers per labeler")
    ap.add_argument("--labelers", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--dir", default=None)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-app-"))
    proj = work / "proj"
    build_s, classes = build(proj, args.items)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "labelsieve", "serve", str(proj), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        t0 = time.perf_counter()
        while True:
            try:
                if httpx.get(base + "/api/project", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.perf_counter() - t0 > 300:
                raise SystemExit("the server did not start: " + (server.stderr.read().decode()[-500:]
                                                                 if server.stderr else ""))
            time.sleep(0.2)
        startup = time.perf_counter() - t0
        measure(base, classes, 1, 5, 9)  # warm-up (caches, first queries)
        rows = [measure(base, classes, k, args.answers, 0) for k in args.labelers]
    finally:
        server.terminate()
        server.wait(10)
    res = {"items": args.items, "build_s": round(build_s, 2), "server_start_s": round(startup, 2), "results": rows}
    print(f"{args.items} items (built in {build_s:.1f} s, server up in {startup:.1f} s)")
    print("| labelers | answers | median (s) | p95 (s) | answers/s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['labelers']} | {r['answers']} | {r['median_s']:.3f} | {r['p95_s']:.3f} | {r['answers_per_s']:.1f} |")
    print(json.dumps(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
