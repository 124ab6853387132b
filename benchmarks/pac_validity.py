"""PAC labeling validity and savings over seeds (issue 18, "What must be shown").

    python benchmarks/pac_validity.py --jobs 2            # all sets, 200 seeds (tens of minutes)
    python benchmarks/pac_validity.py --sets synthetic,digits --seeds 50

For every data set and seed: a fresh random split (a small training set for a logistic regression,
the rest is the pool to label; the synthetic set redraws its labels from its known posterior), then
PAC labeling with both bounds and both priors at epsilon = alpha = 0.05, the audit size of the
paper's protocol (K = 500 for sets of up to ~3,000 items, n/10 above), and, on the same pool:

* the naive rule: keep the model's label when confidence >= 1 - epsilon, humans label the rest;
* TBAL at the same human budget H (H = the PAC run's human labels, uniform prior, betting bound):
  H uniform validation labels certify a subset-error threshold (Clopper-Pearson, fixed-sequence
  scan, ``certify_thresholds``); coverage = auto-labeled / n. Its guarantee is on the auto-labeled
  subset only and it leaves the rest unlabeled.

Validity: the share of seeds whose final data-set error exceeds epsilon, with the binomial test's
p-value P(Bin(seeds, alpha) >= failures) (small = evidence of invalidity).
The table is printed and written to benchmarks/results/pac_validity.txt. MiniLM embeddings of the
text sets are cached in benchmarks/.cache (computed once, offline).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"
RESULTS = Path(__file__).resolve().parent / "results" / "pac_validity.txt"
#: MiniLM input truncation (word pieces) for the text sets: long 20 Newsgroups posts are cut here
MAX_SEQ_LENGTH = 128
EPSILON = ALPHA = 0.05
CONFIGS = [("betting", "uniform"), ("betting", "uncertainty"), ("clt", "uniform"), ("clt", "uncertainty")]
#: training-set size of the logistic regression per data set (the rest is the pool)
TRAIN = {"digits": 150, "breast-cancer": 60, "waveform": 150, "r8": 300, "20newsgroups": 1000, "rotten-tomatoes": 300}
SETS = ["synthetic", "digits", "breast-cancer", "waveform", "r8", "20newsgroups", "rotten-tomatoes"]


def text_embeddings(name: str) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM embeddings and labels of a named text set (train + test), cached in benchmarks/.cache."""
    path = CACHE / f"{name}_minilm_msl{MAX_SEQ_LENGTH}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as f:
            return f["X"], f["y"]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from labelsieve.data.text import load_text_dataset
    from labelsieve.labelers.text import MiniLMEncoder

    ds = load_text_dataset(name, split="all")
    print(f"embedding {len(ds)} texts of {name} with MiniLM (once; cached in {CACHE}) ...", file=sys.stderr, flush=True)
    X = np.asarray(MiniLMEncoder(max_seq_length=MAX_SEQ_LENGTH).encode_items(ds.raw), dtype=np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, X=X, y=ds.y)
    tmp.replace(path)
    return X, ds.y


def load_features(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name in ("digits", "breast-cancer", "waveform"):
        from labelsieve.data import load_dataset

        ds = load_dataset(name, seed=0)
        return np.asarray(ds.X, dtype=np.float64), np.asarray(ds.y)
    return text_embeddings(name)


def synthetic(seed: int, n: int = 2000, k: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Known posterior: confidences c ~ Beta(15, 1) (fixed), P(prediction correct | c) = c^6 —
    overconfident, so trusting confidence >= 0.95 is wrong about 14% of the time there."""
    conf = np.clip(np.random.default_rng(12345).beta(15, 1, n), 1 / k, 1.0)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < conf**6, y, (y + 1 + rng.integers(0, k - 1, n)) % k)
    return pred, conf, y


def predictions(name: str, seed: int, data: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prediction, confidence, truth) on the pool for this seed's split."""
    if name == "synthetic":
        return synthetic(seed)
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y = data
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    tr, pool = order[: TRAIN[name]], order[TRAIN[name] :]
    scaler = StandardScaler().fit(X[tr])
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(scaler.transform(X[tr]), y[tr])
    proba = clf.predict_proba(scaler.transform(X[pool]))
    return clf.classes_[proba.argmax(1)], proba.max(1), y[pool]


def audit_size(n: int) -> int:
    return 500 if n <= 3000 else n // 10


def one_seed(job: tuple[str, int]) -> dict:
    from labelsieve.autolabel.certify import certify_thresholds
    from labelsieve.guarantees.pac import PACLabeler

    name, seed = job
    data = None if name == "synthetic" else load_features(name)
    pred, conf, y = predictions(name, seed, data)
    n = len(y)
    k = audit_size(n)
    u = 1.0 - conf
    row: dict = {"n": n, "K": k, "base_error": float(np.mean(pred != y))}
    for bound, prior in CONFIGS:
        lab = PACLabeler(epsilon=EPSILON, alpha=ALPHA, audit=k, prior=prior, bound=bound, random_state=seed)
        lab.fit(pred, u, lambda i: y[i])
        row[f"{bound}/{prior}/error"] = float(np.mean(lab.labels_ != y))
        row[f"{bound}/{prior}/saved"] = float(lab.auto_mask_.mean())
        row[f"{bound}/{prior}/human"] = int(lab.certificate_.human_labels)
    auto = conf >= 1 - EPSILON
    row["naive/error"] = float(np.mean(pred[auto] != y[auto]) * auto.mean())
    row["naive/saved"] = float(auto.mean())
    h = min(row["betting/uniform/human"], n - 1)
    rng = np.random.default_rng(10_000 + seed)
    val = rng.choice(n, h, replace=False)
    classes = np.unique(np.concatenate([pred, y]))
    code = {c: i for i, c in enumerate(classes)}
    pc, yc = np.array([code[c] for c in pred]), np.array([code[c] for c in y])
    cert = certify_thresholds(pc[val], conf[val], yc[val], n_classes=len(classes), epsilon=EPSILON, delta=ALPHA)
    rest = np.setdiff1d(np.arange(n), val)
    acc = cert.accept(pc[rest], conf[rest])
    row["tbal/coverage"] = float(acc.sum() / n)
    row["tbal/subset_error"] = float(np.mean(pc[rest][acc] != yc[rest][acc])) if acc.any() else 0.0
    return row


def binom_p(fails: int, seeds: int, alpha: float = ALPHA) -> float:
    from scipy.stats import binom

    return float(binom.sf(fails - 1, seeds, alpha))


def tables(results: dict[str, list[dict]], seeds: int, seconds: dict[str, float]) -> str:
    lines = [(f"PAC labeling over {seeds} seeds, epsilon = alpha = {EPSILON}; fail = share of seeds whose final data-set "
             "error > epsilon; p = P(Bin(seeds, alpha) >= fails) (validity is rejected when p is small)"), ""]
    head = f"{'data set':<16} {'n':>6} {'K':>5} {'model err':>9} |" + "".join(
        f" {b + '/' + p[:4]:>14} {'p':>6} |" for b, p in CONFIGS) + f" {'naive rule':>10} {'p':>8}"
    lines += ["VALIDITY (fail share)", head, "-" * len(head)]
    for name, rows in results.items():
        n, k = rows[0]["n"], rows[0]["K"]
        s = f"{name:<16} {n:>6} {k:>5} {np.mean([r['base_error'] for r in rows]):>9.3f} |"
        for b, p in CONFIGS:
            f = sum(r[f"{b}/{p}/error"] > EPSILON for r in rows)
            s += f" {f / len(rows):>14.3f} {binom_p(f, len(rows)):>6.3f} |"
        f = sum(r["naive/error"] > EPSILON for r in rows)
        s += f" {f / len(rows):>10.3f} {binom_p(f, len(rows)):>8.2g}"
        lines.append(s)
    lines += ["", "SAVINGS (mean over seeds; saved = model labels kept / n, the rest human-labeled)"]
    head = (f"{'data set':<16} |" + "".join(f" {b + '/' + p[:4]:>14} |" for b, p in CONFIGS)
            + f" {'humans (bet/unif)':>17} | {'TBAL cov. same H':>16} {'TBAL sub-err':>12} | {'naive saved':>11} "
            f"{'naive err':>9} | {'s/seed':>6}")
    lines += [head, "-" * len(head)]
    for name, rows in results.items():
        s = f"{name:<16} |"
        for b, p in CONFIGS:
            s += f" {np.mean([r[f'{b}/{p}/saved'] for r in rows]):>14.3f} |"
        s += f" {np.mean([r['betting/uniform/human'] for r in rows]):>17.0f} |"
        s += f" {np.mean([r['tbal/coverage'] for r in rows]):>16.3f} {np.mean([r['tbal/subset_error'] for r in rows]):>12.4f} |"
        s += f" {np.mean([r['naive/saved'] for r in rows]):>11.3f} {np.mean([r['naive/error'] for r in rows]):>9.4f} |"
        s += f" {seconds[name] / len(rows):>6.2f}"
        lines.append(s)
    lines += [
        "",
        "synthetic: n = 2,000, 5 classes, confidence ~ Beta(15, 1), P(correct | c) = c^6 (known posterior, overconfident);",
        (f"real sets: logistic regression trained on {TRAIN} random items per seed (MiniLM embeddings, "
        f"max_seq_length {MAX_SEQ_LENGTH}, for the text sets); pool = the rest."),
        ("TBAL column: subset coverage with H = the PAC (betting, uniform) run's human labels as uniform validation "
        "labels; its items outside the subset stay unlabeled. naive rule: model label when confidence >= 0.95."),
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description="PAC labeling validity and savings over seeds")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--fresh", action="store_true", help="rerun sets whose results are cached in benchmarks/.cache")
    args = ap.parse_args()
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    for name in names:
        if name not in SETS:
            raise SystemExit(f"unknown set {name!r}; choose from {', '.join(SETS)}")
        if name not in ("synthetic",):
            load_features(name)  # embed (once) before the workers start
    results: dict[str, list[dict]] = {}
    seconds: dict[str, float] = {}
    for name in names:
        done = CACHE / f"pac_validity_{name}_seeds{args.seeds}.json"  # a finished set is not rerun
        if done.exists() and not args.fresh:
            stored = json.loads(done.read_text())
            results[name], seconds[name] = stored["rows"], stored["seconds"]
            print(f"{name}: {args.seeds} seeds read from {done} (--fresh to rerun)", file=sys.stderr, flush=True)
            continue
        t0 = time.perf_counter()
        jobs = [(name, s) for s in range(args.seeds)]
        if args.jobs > 1:
            with Pool(args.jobs) as pool:
                results[name] = pool.map(one_seed, jobs, chunksize=max(1, args.seeds // (4 * args.jobs)))
        else:
            results[name] = [one_seed(j) for j in jobs]
        seconds[name] = (time.perf_counter() - t0) * args.jobs
        CACHE.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps({"rows": results[name], "seconds": seconds[name]}))
        print(f"{name}: {args.seeds} seeds in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    text = tables(results, args.seeds, seconds)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(text + "\n")
    tmp.replace(args.out)
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
