"""Speed of the confidence functions: fit on 10k validation points x 10 classes, score a 1M pool.

Each row also times a straightforward reference fit of the same model (scikit-learn / scipy
without our analytic gradients) and prints the ratio reference / ours. Colander has no reference.

    python benchmarks/bench_confidence.py [--n-fit 10000] [--n-pool 1000000] [--classes 10]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from labelsieve.confidence import (
    Colander,
    DirichletCalibration,
    HistogramBinning,
    MaxSoftmax,
    ScalingBinning,
    TemperatureScaling,
)
from labelsieve.models.base import Scores


def synthetic(n: int, k: int, h: int, rng: np.random.Generator) -> tuple[Scores, np.ndarray]:
    z = (rng.normal(size=(n, k)) * 4).astype(np.float32)
    p = softmax(z / 2.5, axis=1)
    y = np.minimum((rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(1), k - 1)
    emb = rng.normal(size=(n, h)).astype(np.float32)
    return Scores(z, emb), y


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


# ---------------------------------------------------------------- references (plain library calls)
def ref_temperature(z, y):
    rows = np.arange(len(y))
    return minimize_scalar(
        lambda t: -np.mean(log_softmax(z / t, axis=1)[rows, y]), bounds=(0.01, 100), method="bounded"
    ).x


def ref_histogram(z, y, n_bins=10):
    from sklearn.preprocessing import KBinsDiscretizer

    pred = z.argmax(1)
    s = softmax(z, axis=1).max(1)
    for c in range(z.shape[1]):
        m = pred == c
        kb = KBinsDiscretizer(n_bins=n_bins, encode="ordinal", strategy="quantile").fit(s[m, None])
        b = kb.transform(s[m, None]).ravel().astype(int)
        np.bincount(b, weights=(y[m] == c).astype(float)) / np.maximum(np.bincount(b), 1)


def ref_scaling_binning(z, y, n_bins=10):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import KBinsDiscretizer

    p = softmax(z, axis=1).max(1)
    u = np.log(p / np.clip(1 - p, 1e-300, None))[:, None]
    correct = z.argmax(1) == y
    half = len(y) // 2
    lr = LogisticRegression(C=1e4).fit(u[:half], correct[:half])
    g = lr.predict_proba(u[half:])[:, 1:2]
    KBinsDiscretizer(n_bins=n_bins, encode="ordinal", strategy="quantile").fit(g)


def ref_dirichlet(z, y):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=100.0, max_iter=500).fit(log_softmax(z, axis=1), y)


REFS = {
    "temperature": ref_temperature,
    "histogram": ref_histogram,
    "scaling-binning": ref_scaling_binning,
    "dirichlet": ref_dirichlet,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-fit", type=int, default=10_000)
    ap.add_argument("--n-pool", type=int, default=1_000_000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--embed", type=int, default=16, help="embedding width given to Colander")
    ap.add_argument("--colander-epochs", type=int, default=60)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    fit_s, fit_y = synthetic(args.n_fit, args.classes, args.embed, rng)
    pool, _ = synthetic(args.n_pool, args.classes, args.embed, rng)
    funcs = {
        "softmax": MaxSoftmax(),
        "temperature": TemperatureScaling(),
        "histogram": HistogramBinning(),
        "scaling-binning": ScalingBinning(random_state=0),
        "dirichlet": DirichletCalibration(),
        "colander": Colander(epochs=args.colander_epochs, random_state=0),
    }
    print(f"fit: {args.n_fit} x {args.classes} classes (+{args.embed} embedding dims for Colander); "
          f"score: {args.n_pool} pool points. CPU, times in seconds.")
    print(f"{'method':<16}{'fit ours':>10}{'fit ref':>10}{'ref/ours':>10}{'score 1M':>10}")
    z64 = np.asarray(fit_s.logits, dtype=np.float64)
    for name, cf in funcs.items():
        t_fit, _ = timed(lambda cf=cf: cf.fit(fit_s, fit_y))
        ref = REFS.get(name)
        if ref is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t_ref, _ = timed(lambda ref=ref: ref(z64, fit_y))
            ref_txt, ratio = f"{t_ref:10.3f}", f"{t_ref / t_fit:10.1f}"
        else:
            ref_txt, ratio = f"{'-':>10}", f"{'-':>10}"
        t_score, _ = timed(lambda cf=cf: cf.confidence(pool))
        print(f"{name:<16}{t_fit:10.3f}{ref_txt}{ratio}{t_score:10.3f}")


if __name__ == "__main__":
    main()
