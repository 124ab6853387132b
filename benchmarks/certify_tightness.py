"""How tight is the certified threshold? Violation rate of the fixed-sequence Clopper-Pearson scan
against a known error curve, by number of threshold points.

Scores s ~ U(0, 1) and P(wrong | s) = 0.3 (1 - s)^2, so the error of everything above t is
err(t) = 0.1 (1 - t)^2 (exact). A draw violates when err(certified threshold) > epsilon. A valid
bound keeps the rate <= delta; the closer to delta, the less coverage it leaves on the table.

    python benchmarks/certify_tightness.py [--draws 3000] [--epsilon 0.05] [--delta 0.05]
"""

from __future__ import annotations

import argparse

import numpy as np

from labelsieve.autolabel.certify import scan_threshold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=3000)
    ap.add_argument("--epsilon", type=float, default=0.05)
    ap.add_argument("--delta", type=float, default=0.05)
    ap.add_argument("--sizes", default="100,375,750,3000")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"epsilon {args.epsilon}, delta {args.delta}, {args.draws} draws per size; err(t) = 0.1 (1 - t)^2")
    print(f"{'n':>6}{'violation rate':>16}{'  (95% CI)':<18}{'certified share':>16}")
    for n in (int(x) for x in args.sizes.split(",")):
        viol = cert = 0
        for _ in range(args.draws):  # loop over independent draws, each scan is vectorised
            c = rng.random(n)
            w = rng.random(n) < 0.3 * (1 - c) ** 2
            t = scan_threshold(c, w, epsilon=args.epsilon, delta=args.delta).threshold
            if np.isfinite(t):
                cert += 1
                viol += 0.1 * (1 - t) ** 2 > args.epsilon
        p = viol / args.draws
        half = 1.96 * np.sqrt(p * (1 - p) / args.draws)
        print(f"{n:>6}{p:>16.4f}  [{max(p - half, 0):.4f}, {p + half:.4f}]{cert / args.draws:>16.3f}")


if __name__ == "__main__":
    main()
