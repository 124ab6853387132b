"""Does the budget planner's interval cover the coverage of real runs at its stated level?

For each data set and seed:

1. a logistic regression is trained on a small labeled split (the "model"); the rest is the pool
   (its confidence = max class probability, prediction = arg-max);
2. a pilot of 200 pool items with their true labels goes to :class:`BudgetPlanner`, which gives a
   median and a 90% percentile interval of each procedure's coverage (model-labeled / pool) at
   several budgets m;
3. the real procedures then run on the same pool with m FRESH human labels (an independent uniform
   draw, true labels as the human): TBAL's certifier (``certify_thresholds``, global, Clopper-Pearson),
   PAC labeling (``PACLabeler``, betting bound, uniform prior, audit K = m) and conformal labeling
   (``conformal_label``), each through its public API, not the planner's simulator;
4. we record whether the realised coverage lies in the planner's interval.

Printed: per data set x procedure, the share of (seed, budget) checks whose interval covers the
realised value (nominal 0.90) with a 95% Clopper-Pearson interval for that share, the share of
checks that are degenerate (interval [0, 0] and realised 0), the mean interval width and the mean
absolute error of the median. Also the realised data-set error of PAC and the realised wrong-label
share of conformal labeling (averaged over runs: only its mean is promised to be <= epsilon).

    python benchmarks/plan_calibration.py                       # 20 seeds, ~15-25 min on 2 cores
    python benchmarks/plan_calibration.py --seeds 3 --bootstrap 50   # quick look
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.stats import beta as beta_dist
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from labelsieve.autolabel.certify import certify_thresholds
from labelsieve.data.embedded import load_breast_cancer, load_digits
from labelsieve.data.waveform import make_waveform
from labelsieve.guarantees.conformal import conformal_label
from labelsieve.guarantees.pac import PACLabeler
from labelsieve.guarantees.planner import BudgetPlanner

SETS = {  # name: (loader(seed) -> (X, y), n_train, budgets)
    "digits": (lambda s: (load_digits().X, load_digits().y), 150, (100, 200, 400)),
    "breast-cancer": (lambda s: (load_breast_cancer().X, load_breast_cancer().y), 60, (50, 100, 200)),
    "waveform": (lambda s: _waveform(s), 150, (100, 200, 500, 1000)),
}
PILOT = 200
LEVEL = 0.9


def _waveform(seed: int) -> tuple[np.ndarray, np.ndarray]:
    ds = make_waveform(4000, noise=True, random_state=1000 + seed)
    return ds.X, ds.y


def model_outputs(X: np.ndarray, y: np.ndarray, n_train: int, rng: np.random.Generator):
    """Train LR on a random split of n_train; return the pool's (pred, conf, y)."""
    perm = rng.permutation(len(y))
    tr, pool = perm[:n_train], perm[n_train:]
    sc = StandardScaler().fit(X[tr])
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(sc.transform(X[tr]), y[tr])
    proba = clf.predict_proba(sc.transform(X[pool]))
    pred = clf.classes_[np.argmax(proba, axis=1)]
    return pred, proba.max(axis=1), y[pool]


def realised(proc: str, pred, conf, y, m: int, *, epsilon: float, delta: float, rng: np.random.Generator,
             n_classes: int) -> tuple[float, float]:
    """(coverage, error) of one real run with m fresh human labels; error = wrong share among
    auto-labels (tbal, conformal) or of the whole final data set (pac)."""
    n = len(y)
    if proc == "pac":
        lab = PACLabeler(epsilon=epsilon, alpha=delta, audit=m, random_state=rng).fit(pred, 1.0 - conf, lambda i: y[i])
        return float(lab.auto_mask_.sum() / n), float(np.mean(lab.labels_ != y))
    idx = rng.permutation(n)
    val, rest = idx[:m], idx[m:]
    if proc == "tbal":
        cert = certify_thresholds(pred[val], conf[val], y[val], n_classes=n_classes, epsilon=epsilon, delta=delta)
        sel = cert.accept(pred[rest], conf[rest])
    else:
        sel = conformal_label(pred[val], conf[val], y[val], conf[rest], epsilon=epsilon).selected
    err = float(np.mean(pred[rest][sel] != y[rest][sel])) if sel.any() else 0.0
    return float(sel.sum() / n), err


def run(seeds: int, n_bootstrap: int, epsilon: float, delta: float, sets: list[str], curve: str = "platt",
        prior_strength: float = 1.0) -> list[dict]:
    rows = []
    for name in sets:
        loader, n_train, budgets = SETS[name]
        for s in range(seeds):
            t0 = time.time()
            rng = np.random.default_rng(s)
            X, y_all = loader(s)
            pred, conf, y = model_outputs(np.asarray(X, dtype=np.float64), np.asarray(y_all), n_train, rng)
            pilot = rng.choice(len(y), PILOT, replace=False)
            planner = BudgetPlanner(epsilon, delta, budgets=list(budgets), n_bootstrap=n_bootstrap, level=LEVEL,
                                    curve=curve, prior_strength=prior_strength, random_state=s)
            df = planner.fit(pred[pilot], conf[pilot], y[pilot], conf, pred).plan()
            run_rng = np.random.default_rng(10_000 + s)  # the real runs: independent of pilot and planner
            for r in df.itertuples():
                cov, err = realised(r.procedure, pred, conf, y, int(r.human_labels), epsilon=epsilon, delta=delta,
                                    rng=run_rng, n_classes=int(y_all.max()) + 1)
                rows.append({"set": name, "seed": s, "procedure": r.procedure, "m": int(r.human_labels),
                             "estimate": r.estimate, "low": r.low, "high": r.high, "realised": cov, "error": err,
                             "accuracy": float(np.mean(pred == y)), "pilot_error": planner.pilot_error_,
                             "covered": bool(r.low - 1e-12 <= cov <= r.high + 1e-12),
                             "degenerate": bool(r.high == 0 and cov == 0)})
            print(f"  {name} seed {s}: accuracy {np.mean(pred == y):.3f}, {time.time() - t0:.1f}s", flush=True)
    return rows


def cp_interval(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    lo = 0.0 if k == 0 else beta_dist.ppf(alpha / 2, k, n - k + 1)
    hi = 1.0 if k == n else beta_dist.ppf(1 - alpha / 2, k + 1, n - k)
    return float(lo), float(hi)


def report(rows: list[dict], seeds: int, n_bootstrap: int, epsilon: float, delta: float, curve: str = "platt") -> str:
    import pandas as pd

    df = pd.DataFrame(rows)
    lines = [
        (f"planner calibration: {seeds} seeds per set, pilot {PILOT} labels, B = {n_bootstrap} simulated runs, "
        f"{LEVEL:.0%} percentile intervals, epsilon = {epsilon}, delta = {delta}, error curve {curve}"),
        "model: logistic regression on a small random split; pool = the rest; coverage = model-labeled / pool",
        ("real runs: m fresh uniform human labels (true labels), public APIs (certify_thresholds, PACLabeler, "
        "conformal_label)"),
        "",
        (f"{'set':<14} {'procedure':<10} {'checks':>6} {'covered':>8} {'95% CI of share':>17} {'degen.':>7} "
        f"{'width':>6} {'|med-real|':>10} {'real cov':>8} {'error':>7}"),
    ]
    for (s, p), g in df.groupby(["set", "procedure"], sort=False):
        k, n = int(g["covered"].sum()), len(g)
        lo, hi = cp_interval(k, n)
        lines.append(
            f"{s:<14} {p:<10} {n:>6} {k / n:>8.3f} {f'[{lo:.3f}, {hi:.3f}]':>17} {g['degenerate'].mean():>7.2f} "
            f"{(g['high'] - g['low']).mean():>6.3f} {(g['estimate'] - g['realised']).abs().mean():>10.3f} "
            f"{g['realised'].mean():>8.3f} {g['error'].mean():>7.4f}"
        )
    lines.append("")
    for p, g in df.groupby("procedure", sort=False):
        k, n = int(g["covered"].sum()), len(g)
        lo, hi = cp_interval(k, n)
        nd = g[~g["degenerate"]]
        lines.append(f"all sets, {p:<10}: {k}/{n} = {k / n:.3f} covered [{lo:.3f}, {hi:.3f}]; "
                     f"non-degenerate checks {int(nd['covered'].sum())}/{len(nd)}")
    k, n = int(df["covered"].sum()), len(df)
    lo, hi = cp_interval(k, n)
    lines.append(f"all sets, all procedures: {k}/{n} = {k / n:.3f} covered [{lo:.3f}, {hi:.3f}] (nominal {LEVEL})")
    lines.append("")
    lines.append("per budget (all sets):")
    for (p, m), g in df.groupby(["procedure", "m"], sort=True):
        lines.append(f"  {p:<10} m={m:<5} covered {g['covered'].mean():.3f} of {len(g)}  "
                     f"median est {g['estimate'].mean():.3f} realised {g['realised'].mean():.3f}")
    lines.append("")
    lines.append(f"promise vs realised error over the real runs (epsilon = {epsilon}):")
    for p, g in df.groupby("procedure", sort=False):
        over = g["error"] > epsilon
        what = {"tbal": f"subset error > eps in {over.mean():.3f} of runs (promise: <= delta = {delta})",
                "pac": f"whole-data-set error > eps in {over.mean():.3f} of runs (promise: <= delta = {delta})",
                "conformal": f"mean wrong share among auto-labels {g['error'].mean():.4f} (promise: <= eps); "
                             f"single runs above eps: {over.mean():.3f} (allowed)"}[p]
        lines.append(f"  {p:<10} {what}")
    lines.append("")
    lines.append("error column: tbal/conformal = wrong share among auto-labels (mean over runs); pac = error of the "
                 "whole final data set. Conformal's promise is on the mean only.")
    return "\n".join(lines)


def fdr_synthetic(seeds: int = 2000, n_cal: int = 150, m: int = 400) -> str:
    """Conformal labeling's mean FDP over many seeds on two synthetic models, and the naive rule."""
    from labelsieve.guarantees.conformal import conformal_label

    def overconfident(rng, n):
        c = rng.uniform(0.5, 1.0, n)
        return c, rng.random(n) < np.minimum(2.5 * (1.0 - c), 0.95)

    def calibrated(rng, n):
        c = rng.uniform(0.3, 1.0, n)
        return c, rng.random(n) > c

    lines = [f"conformal labeling FDR, synthetic ({seeds} seeds, {n_cal} calibration labels, pool {m}):",
             (f"  {'model':<14} {'eps':>5} {'FDR (mean FDP)':>16} {'P(FDP > eps)':>13} {'coverage':>9} "
             f"{'naive FDR':>10}")]
    for name, model in (("overconfident", overconfident), ("calibrated", calibrated)):
        for eps in (0.05, 0.1, 0.2):
            fdp, naive, cov = np.empty(seeds), np.empty(seeds), np.empty(seeds)
            for s in range(seeds):
                rng = np.random.default_rng(s)
                c, w = model(rng, n_cal + m)
                sel = conformal_label(np.zeros(n_cal), c[:n_cal], w[:n_cal].astype(int), c[n_cal:],
                                      epsilon=eps).selected
                fdp[s] = w[n_cal:][sel].mean() if sel.any() else 0.0
                cov[s] = sel.mean()
                nv = c[n_cal:] >= 1.0 - eps  # naive: auto-label when confidence >= 1 - eps
                naive[s] = w[n_cal:][nv].mean() if nv.any() else 0.0
            se = fdp.std(ddof=1) / np.sqrt(seeds)
            lines.append(f"  {name:<14} {eps:>5} {f'{fdp.mean():.4f} ± {se:.4f}':>16} {np.mean(fdp > eps):>13.2f} "
                         f"{cov.mean():>9.3f} {naive.mean():>10.4f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--epsilon", type=float, default=0.05)
    ap.add_argument("--delta", type=float, default=0.05)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--curve", default="platt", help="planner error curve: platt or isotonic")
    ap.add_argument("--prior-strength", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "plan_calibration.txt")
    ap.add_argument("--csv", type=Path, help="also save the per-check rows")
    ap.add_argument("--from-csv", type=Path, help="report saved rows (from --csv) instead of running")
    a = ap.parse_args()
    t0 = time.time()
    if a.from_csv:
        import pandas as pd

        rows = pd.read_csv(a.from_csv).to_dict(orient="records")
    else:
        rows = run(a.seeds, a.bootstrap, a.epsilon, a.delta, [s.strip() for s in a.sets.split(",") if s.strip()],
                   a.curve, a.prior_strength)
    text = report(rows, a.seeds, a.bootstrap, a.epsilon, a.delta, a.curve)
    text += "\n\n" + fdr_synthetic() + f"\n\nwall time {time.time() - t0:.0f}s\n"
    print(text)
    if a.csv and not a.from_csv:
        import pandas as pd

        pd.DataFrame(rows).to_csv(a.csv, index=False)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\ncommand: python benchmarks/plan_calibration.py " +
                         f"--seeds {a.seeds} --bootstrap {a.bootstrap} --epsilon {a.epsilon} --delta {a.delta} --curve {a.curve}"
                         + (f" --from-csv {a.from_csv}  (rows saved by the same command with --csv)" if a.from_csv
                            else "") + "\n")


if __name__ == "__main__":
    main()
