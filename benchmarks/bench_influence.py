"""Influence of a 100k x 512 pool under all 10 labels: closed form vs a per-sample-gradient reference.

Run: ``python benchmarks/bench_influence.py [--n-pool 100000] [--dim 512] [--classes 10] [--ref-n N]``

Ours: :func:`labelsieve.active.influence.validation_loss_decrease` (one ``X~ [W | S]`` product).
Reference: for every pool point and every label, form the per-sample gradient
``x~ (p - e_c)^T`` explicitly (a ``(d+1) x C`` matrix) and take its inner product with
``S = H^{-1} g_val`` - the textbook recipe. It runs on the first ``--ref-n`` pool points (default
all); its time is reported for those points and, if a subset, extrapolated linearly. The numbers of
both are compared on the points the reference computed. The Hessian solve is shared by both and
timed separately (CG with Hessian-vector products: 513 x 10 = 5130 parameters).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.special import softmax

from labelsieve.active.influence import (
    augment,
    fit_softmax_regression,
    solve_hessian,
    validation_gradient,
    validation_loss_decrease,
)


def reference_loop(X_pool: np.ndarray, W: np.ndarray, S: np.ndarray, epsilon: float) -> np.ndarray:
    """Per-sample, per-label gradients (the straightforward way)."""
    n, k = len(X_pool), W.shape[1]
    out = np.empty((n, k))
    eye = np.eye(k)
    for i in range(n):
        x = np.append(X_pool[i].astype(np.float64), 1.0)
        p = softmax(x @ W)
        for c in range(k):
            grad = np.outer(x, p - eye[c])  # d CE(x, c) / dW
            out[i, c] = epsilon * np.sum(S * grad)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-pool", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--ref-n", type=int, default=None, help="reference on the first N pool points only")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    means = rng.normal(scale=0.15, size=(a.classes, a.dim))

    def draw(n):
        y = rng.integers(0, a.classes, n)
        return (means[y] + rng.normal(size=(n, a.dim))).astype(np.float32), y

    X, y = draw(a.n_train)
    Xv, yv = draw(1000)
    Xp, _ = draw(a.n_pool)
    t = time.perf_counter()
    W = fit_softmax_regression(X, y, n_classes=a.classes, C=1.0, tol=1e-6, max_iter=500)
    t_fit = time.perf_counter() - t
    t = time.perf_counter()
    G = validation_gradient(augment(Xv), yv, W)
    S = solve_hessian(augment(X), W, G, 1.0 / len(y), solver="cg", tol=1e-8)
    t_solve = time.perf_counter() - t
    eps = 1.0 / len(y)
    validation_loss_decrease(Xp[:1000], W, S, epsilon=eps)  # warm-up
    reps = []
    for _ in range(3):
        t = time.perf_counter()
        ours = validation_loss_decrease(Xp, W, S, epsilon=eps)
        reps.append(time.perf_counter() - t)
    t_ours = min(reps)
    n_ref = a.n_pool if a.ref_n is None else min(a.ref_n, a.n_pool)
    t = time.perf_counter()
    ref = reference_loop(Xp[:n_ref], W, S, eps)
    t_ref_part = time.perf_counter() - t
    t_ref = t_ref_part * a.n_pool / n_ref
    err = np.max(np.abs(ours[:n_ref] - ref)) / np.max(np.abs(ref))
    same_labels = np.mean(ours[:n_ref].argmax(1) == ref.argmax(1))
    print(f"pool {a.n_pool} x {a.dim} dims x {a.classes} labels; train {a.n_train} (fit {t_fit:.2f} s, "
          f"Hessian solve by CG {t_solve:.2f} s, shared)")
    print(f"{'method':<44}{'seconds':>10}")
    print(f"{'ours: closed form, one matrix product':<44}{t_ours:>10.3f}")
    lab = "reference: per-sample gradient loop" + ("" if n_ref == a.n_pool else f" ({n_ref} pts, extrapolated)")
    print(f"{lab:<44}{t_ref:>10.3f}")
    print(f"ratio reference / ours: {t_ref / t_ours:.0f}x   max relative difference {err:.1e}, "
          f"same salutary label {same_labels:.4f}")


if __name__ == "__main__":
    main()
