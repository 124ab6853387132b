"""PAC labeling speed: labelsieve's vectorised betting bound and threshold scan against a straightforward
port of the reference algorithm (tijana-zrnic/pac-labels: a Python loop over a 100,000-value grid of
the mean inside each bound, and a binary search over the sorted uncertainties of all n items).

    python benchmarks/bench_pac.py                 # 10k and 1M items (a few minutes)
    python benchmarks/bench_pac.py --sizes 10000   # quick

Our times are the best of 3 runs; the reference's loop runs once. Both sides see the same data and the same audit draws (uniform prior, so Z = 0-1 loss).
Columns:
* bound: the betting upper bounds the reference's binary search asks for (about log2(n) of them):
  reference = one grid loop per bound; ours = all of them in one vectorised call (grid-exact mode,
  the same 100,000-value grid, so the values are identical).
* threshold: the whole search. Reference: binary search (valid only if the bound were monotone
  in u); ours: the fixed-sequence scan over every distinct audit uncertainty (valid without it),
  i.e. many more bound tests, each a single capital evaluation at m = epsilon.
When the reference's loop would take too long (``--full-reference-below`` draws), its time is
the measured cost of one grid value times the number of grid values its loop visits for each
bound (known exactly from the grid-exact bound); the output says so.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from labelsieve.guarantees.pac import betting_upper, draw_audit, pac_sampling_probs, pac_threshold

REF_GRID = np.linspace(1e-5, 1 - 1e-5, 100_000)


# ------------------------------------------------------------------------------------------------
# a straightforward port of the reference algorithm (written from its description)
# ------------------------------------------------------------------------------------------------


def _ref_bets(x: np.ndarray, alpha: float) -> np.ndarray:
    k = len(x)
    t = np.arange(1, k + 1)
    mu = (0.5 + np.cumsum(x)) / (1 + t)
    s2 = (0.25 + np.cumsum((x - mu) ** 2)) / (1 + t)
    return np.sqrt(2 * np.log(2 / alpha) / (k * np.append(0.25, s2[:-1])))


def _ref_capital(x: np.ndarray, lam: np.ndarray, m: float, c: float = 0.75) -> np.ndarray:
    """Hedged capital with theta = 0, as the reference computes it (both sides, then the max)."""
    with np.errstate(over="ignore"):  # the reference's exp overflows to inf (= rejected) on long audits
        plus = np.exp(np.cumsum(np.log(1 + np.minimum(lam, c / m) * (x - m))))
        minus = np.exp(np.cumsum(np.log(1 - np.minimum(lam, c / (1 - m)) * (x - m))))
    return np.maximum(0.0 * plus, minus)


def ref_upper(x: np.ndarray, alpha: float, grid: np.ndarray = REF_GRID) -> tuple[float, int]:
    """Largest grid value whose capital stays below 1/alpha, one grid value per Python iteration.

    Returns (bound, grid values visited). Scans up from the smallest value and stops at the first
    rejected value after an accepted one (the acceptance set is an interval).
    """
    lam = _ref_bets(x, alpha)
    found, best, visited = False, None, 0
    for m in grid:
        visited += 1
        ok = bool(np.all(_ref_capital(x, lam, m) < 1 / alpha))
        if ok:
            found, best = True, m
        elif found:
            break
    return (float(grid[1]) if best is None else float(best)), visited


def ref_threshold(u: np.ndarray, idx: np.ndarray, z: np.ndarray, epsilon: float, alpha: float, upper_fn) -> tuple[float, list[np.ndarray]]:
    """The reference's binary search over the sorted uncertainties of all items (auto-label U < lam)."""
    lams = np.sort(u)
    lo, hi = 0, len(lams) - 1
    asked = []
    while lo <= hi:
        j = (lo + hi) // 2
        col = z * (u[idx] < lams[j])
        asked.append(col)
        if upper_fn(col) > epsilon:
            hi = j - 1
        else:
            lo = j + 1
    return float(lams[lo - 1]), asked


# ------------------------------------------------------------------------------------------------


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated synthetic predictions (about 19% wrong): uncertainty and 0-1 loss per item."""
    rng = np.random.default_rng(seed)
    conf = np.clip(rng.beta(5, 1.2, n), 0.3, 1.0)
    wrong = rng.random(n) >= conf
    return 1.0 - conf, wrong.astype(np.float64)


def time_point(x: np.ndarray, alpha: float, reps: int = 50) -> float:
    """Seconds the reference spends on one grid value for samples x."""
    lam = _ref_bets(x, alpha)
    ms = REF_GRID[:: max(1, len(REF_GRID) // reps)][:reps]
    t0 = time.perf_counter()
    for m in ms:
        np.all(_ref_capital(x, lam, m) < 1 / alpha)
    return (time.perf_counter() - t0) / len(ms)


def run(n: int, k: int, *, epsilon: float, alpha: float, full_below: int, max_candidates: int | None) -> dict:
    u, loss = make_data(n)
    pi = pac_sampling_probs(u)
    idx = draw_audit(pi, k, 0)
    z = loss[idx]
    # ours: the whole threshold search
    t_ours = math.inf
    for _ in range(3):  # best of 3 (a shared machine)
        t0 = time.perf_counter()
        ours = pac_threshold(u, idx, z, pi, epsilon=epsilon, alpha=alpha, max_candidates=max_candidates)
        t_ours = min(t_ours, time.perf_counter() - t0)
    # the reference's search path (bounds from the grid-exact vectorised bound: identical values)
    exact = lambda col: betting_upper(col, alpha, grid=REF_GRID)
    lam_ref, asked = ref_threshold(u, idx, z, epsilon, alpha, exact)
    cols = np.stack(asked, axis=1)
    t_ours_bound = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        ours_bounds = betting_upper(cols, alpha, grid=REF_GRID)
        t_ours_bound = min(t_ours_bound, time.perf_counter() - t0)
    full = k < full_below
    if full:
        t0 = time.perf_counter()
        ref_vals = [ref_upper(c, alpha) for c in asked]
        t_ref = time.perf_counter() - t0
        assert np.array_equal(np.array([v for v, _ in ref_vals]), ours_bounds), "grid bounds differ"
        lam_loop, _ = ref_threshold(u, idx, z, epsilon, alpha, lambda col: ref_upper(col, alpha)[0])
        assert lam_loop == lam_ref
    else:
        per_point = time_point(asked[0], alpha)
        visited = [int(np.searchsorted(REF_GRID, b)) + 2 for b in ours_bounds]  # accepted ones + the first rejected
        t_ref = per_point * sum(visited)
    n_auto_ref = int(np.sum(u < lam_ref))
    n_auto_ours = int(np.sum(u <= ours.threshold))
    return {
        "n": n, "K": k, "t_ref": t_ref, "t_ours_bound": t_ours_bound, "t_ours": t_ours, "bounds": len(asked),
        "scan_tests": len(ours.candidates), "auto_ref": n_auto_ref, "auto_ours": n_auto_ours, "full": full,
        "thr_ref": lam_ref, "thr_ours": ours.threshold, "max_candidates": max_candidates,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,1000000", help="comma list of n")
    ap.add_argument("--audit", default="1000,10000", help="K per size (comma list, same length)")
    ap.add_argument("--epsilon", type=float, default=0.05)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--full-reference-below", type=int, default=5000,
                    help="run the reference's grid loop in full for audits smaller than this (else scale)")
    ap.add_argument("--extra-1m-full-audit", action="store_true",
                    help="also n = 1M with K = n/10 (the paper's protocol for large sets), max_candidates 2048")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    audits = [int(s) for s in args.audit.split(",")][: len(sizes)]
    plan = [(n, k, None) for n, k in zip(sizes, audits, strict=True)]
    if args.extra_1m_full_audit:
        plan.append((1_000_000, 100_000, 2048))
    print(f"PAC labeling speed, epsilon = {args.epsilon}, alpha = {args.alpha}, uniform prior, 0-1 loss, "
          f"reference grid {len(REF_GRID):,} values")
    head = (f"{'n':>9} {'K':>7} | {'bounds':>6} {'ref s':>9} {'ours s':>8} {'ratio':>7} | {'scan tests':>10} "
            f"{'ref s':>9} {'ours s':>8} {'ratio':>7} | {'auto ref':>9} {'auto ours':>9} same")
    print(head)
    print("-" * len(head))
    notes = []
    for n, k, mc in plan:
        r = run(n, k, epsilon=args.epsilon, alpha=args.alpha, full_below=args.full_reference_below, max_candidates=mc)
        star = "" if r["full"] else "*"
        same = "yes" if r["auto_ref"] == r["auto_ours"] else f"no ({r['auto_ours'] - r['auto_ref']:+d})"
        print(f"{n:>9,} {k:>7,} | {r['bounds']:>6} {r['t_ref']:>8.2f}{star} {r['t_ours_bound']:>8.3f} "
              f"{r['t_ref'] / r['t_ours_bound']:>6.0f}x | {r['scan_tests']:>10,} {r['t_ref']:>8.2f}{star} "
              f"{r['t_ours']:>8.3f} {r['t_ref'] / r['t_ours']:>6.0f}x | {r['auto_ref']:>9,} {r['auto_ours']:>9,} {same}"
              + (f"  (ours: max_candidates {mc})" if mc else ""), flush=True)
        if not r["full"]:
            notes.append(n)
    print("bounds: the betting bounds of the reference's binary search; ref = its grid loop per bound, ours = one "
          "vectorised call on the same grid (values asserted identical when the loop runs in full).")
    print("scan: ours = the whole fixed-sequence threshold search; ref = the whole binary search (its time is the "
          "bounds' time: everything else is negligible).")
    print("auto: items auto-labeled by each rule (reference: U < its threshold; ours: U <= ours).")
    if notes:
        print("* reference time estimated: the measured time of one grid value times the grid values its loop "
              "visits for each bound (exactly known from the grid-exact bound), not run in full.")


if __name__ == "__main__":
    main()
