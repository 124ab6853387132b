"""The salutary-labeling paper's experimental protocol (Sec. 5.1-5.3) on any labeled table.

* split 60/20/20 into train/validation/test once (``split_seed``); per seed, ``n_init`` random
  training points form the initial labeled set, the rest of the training split is the pool;
* features are standardised with the training split's mean and standard deviation;
* model: :class:`~labelsieve.active.surrogate.SoftmaxRegression` (L2, ``C=1`` as scikit-learn);
* ``rounds`` rounds of ``batch`` queries; the test accuracy after every re-fit is recorded
  (round 0 = the initial model). Baselines get the true labels of what they query; "ours-sl" adds
  its salutary labels (no human), "ours-gt" the same selection rule with the true labels.

Table 2 variant (:func:`run_table2`): salutary labeling until half the pool is labeled, keeping the
round with the best validation accuracy, beside fully supervised and self-training references.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labelsieve._atomic import atomic_write_bytes
from labelsieve._validation import check_finite_2d, check_interval, check_positive_int
from labelsieve.active.base import QueryState
from labelsieve.active.influence import LogisticInfluence, fit_softmax_regression, validation_loss
from labelsieve.errors import InputError, NotEnoughDataError, ParameterError

logger = logging.getLogger(__name__)

#: Strategy names in table order; "uncertainty" of the paper is least-confidence. "ours-*2" use the
#: second-order correction (not in the paper; see docs/salutary.md).
PROTOCOL_STRATEGIES: tuple[str, ...] = (
    "random", "entropy", "margin", "least-confidence", "isal", "ibds", "coreset", "batchbald", "badge",
    "ours-gt", "ours-sl", "ours-gt2", "ours-sl2",
)
#: Cheap default set for the CLI (the paper's Table 1 columns we reproduce first).
DEFAULT_STRATEGIES: tuple[str, ...] = PROTOCOL_STRATEGIES

#: The paper's Table 1 (test accuracy % after 10 rounds, mean of 5 runs), columns we can match.
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "waveform": {
        "init": 79.11, "random": 81.10, "entropy": 83.23, "margin": 82.26, "least-confidence": 83.33,
        "isal": 79.40, "ibds": 82.91, "coreset": 80.70, "batchbald": 81.83, "badge": 81.21,
        "ours-gt": 83.74, "ours-sl": 84.21, "diff": 8,
    },
    "wine": {
        "init": 44.76, "random": 46.31, "entropy": 45.00, "margin": 47.30, "least-confidence": 44.53,
        "isal": 47.15, "ibds": 44.84, "coreset": 47.61, "batchbald": 46.69, "badge": 46.87,
        "ours-gt": 48.23, "ours-sl": 49.92, "diff": 7,
    },
    "mnist": {
        "init": 77.75, "random": 80.93, "entropy": 83.77, "margin": 83.72, "least-confidence": 83.63,
        "isal": 79.35, "ibds": 80.05, "coreset": 81.26, "batchbald": 82.05, "badge": 84.24,
        "ours-gt": 86.12, "ours-sl": 86.68, "diff": 8,
    },
}
#: The paper's Table 2 (accuracy % after querying 50% of the pool, best validation round).
PAPER_TABLE2: dict[str, dict[str, float]] = {
    "waveform": {"fully-supervised": 85.60, "self-training": 83.50, "fixmatch": 82.85, "ours-sl": 85.50},
    "wine": {"fully-supervised": 52.53, "self-training": 46.84, "fixmatch": 47.65, "ours-sl": 52.38},
    "mnist": {"fully-supervised": 95.30, "fixmatch": 82.38, "ours-sl": 92.06},
}


@dataclass(frozen=True)
class Split:
    """Standardised train/validation/test arrays (train = initial set + pool)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


def split_data(
    X: np.ndarray, y: np.ndarray, *, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    random_state: int = 0, standardize: bool = True
) -> Split:
    """Random 60/20/20 split (``fractions``), standardised with the training split's statistics."""
    X = check_finite_2d(X, what="features")
    y = np.asarray(y)
    if y.shape != (len(X),):
        raise InputError(f"labels have shape {y.shape}; expected ({len(X)},).")
    if (y < 0).any():
        r = int(np.flatnonzero(y < 0)[0])
        raise InputError(f"label {y[r]} at row {r}: every row needs a class code >= 0 for the protocol.")
    n = len(X)
    perm = np.random.default_rng(random_state).permutation(n)
    n_tr, n_va = round(fractions[0] * n), round(fractions[1] * n)
    tr, va, te = perm[:n_tr], perm[n_tr:n_tr + n_va], perm[n_tr + n_va:]
    X = X.astype(np.float64)
    if standardize:
        mu, sd = X[tr].mean(axis=0), X[tr].std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        X = (X - mu) / sd
    return Split(X[tr], y[tr], X[va], y[va], X[te], y[te], int(y.max()) + 1)


def make_strategy(name: str, split: Split, *, C: float):
    """Instantiate a strategy by protocol name (influence-based ones get the validation set)."""
    from labelsieve.active import ALL_STRATEGIES

    order = 2 if name in ("ours-gt2", "ours-sl2") else 1
    if name in ("ours-gt", "ours-sl", "ours-gt2", "ours-sl2"):
        name = "salutary"
    if name not in ALL_STRATEGIES:
        raise ParameterError(
            f"Unknown strategy {name!r}; choose from {', '.join(PROTOCOL_STRATEGIES + tuple(ALL_STRATEGIES))}."
        )
    cls = ALL_STRATEGIES[name]
    if name == "salutary":
        return cls(X_val=split.X_val, y_val=split.y_val, C=C, order=order)
    if name in ("isal", "ibds"):
        return cls(X_val=split.X_val, y_val=split.y_val, C=C)
    if name == "batchbald":
        return cls(C=C)
    return cls()


def _seed_for(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _check_protocol(split: Split, *, n_init: int, rounds: int, batch: int) -> None:
    check_positive_int("n_init", n_init, owner="run_protocol", minimum=2)
    check_positive_int("rounds", rounds, owner="run_protocol", minimum=0)
    check_positive_int("batch", batch, owner="run_protocol")
    n_pool = len(split.y_train) - n_init
    if n_pool <= 0:
        raise NotEnoughDataError(
            f"the training split has {len(split.y_train)} points; n_init={n_init} leaves no pool."
        )
    if rounds * batch > n_pool:
        raise ParameterError(
            f"The 'batch' parameter of run_protocol must satisfy rounds * batch <= pool size {n_pool}. "
            f"Got batch={batch} with rounds={rounds} instead."
        )


def _initial_set(split: Split, n_init: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    for _ in range(100):  # the initial set must contain at least two classes
        init = rng.choice(len(split.y_train), size=n_init, replace=False)
        if len(np.unique(split.y_train[init])) >= 2:
            return init
    raise NotEnoughDataError(f"could not draw an initial set of {n_init} points with two classes.")


def run_strategy(
    name: str, split: Split, *, seed: int, rounds: int = 10, batch: int = 10, n_init: int = 300, C: float = 1.0,
) -> list[dict]:
    """One active-learning run; one row per round: strategy, seed, round, test/val accuracy, ..."""
    from labelsieve.active.surrogate import SoftmaxRegression

    _check_protocol(split, n_init=n_init, rounds=rounds, batch=batch)
    init = _initial_set(split, n_init, seed)
    in_pool = np.ones(len(split.y_train), dtype=bool)
    in_pool[init] = False
    X_lab, y_lab = split.X_train[init], split.y_train[init]
    strategy = make_strategy(name, split, C=C)
    rng = _seed_for(seed, name)
    rows: list[dict] = []
    n_diff = 0
    for r in range(rounds + 1):
        model = SoftmaxRegression(n_classes=split.n_classes, C=C).fit(X_lab, y_lab)
        rows.append({
            "strategy": name, "seed": seed, "round": r,
            "test_accuracy": float(np.mean(model.predict(split.X_test) == split.y_test)),
            "val_accuracy": float(np.mean(model.predict(split.X_val) == split.y_val)),
            "n_labeled": len(y_lab), "n_diff": n_diff,
        })
        if r == rounds:
            break
        pool_idx = np.flatnonzero(in_pool)
        X_pool = split.X_train[pool_idx]
        state = QueryState(model, X_pool, model.scores(X_pool), X_lab, y_lab)
        if name.startswith("ours-"):
            pos, sal = strategy.query_with_labels(state, batch, rng)
            truth = split.y_train[pool_idx[pos]]
            n_diff += int(np.sum(sal != truth))
            labels = sal if name.startswith("ours-sl") else truth
        else:
            pos = strategy.query(state, batch, rng)
            labels = split.y_train[pool_idx[pos]]
        if len(np.unique(pos)) != len(pos):
            raise RuntimeError(f"strategy {name} returned repeated positions")  # pragma: no cover
        X_lab = np.vstack([X_lab, X_pool[pos]])
        y_lab = np.concatenate([y_lab, labels])
        in_pool[pool_idx[pos]] = False
    return rows


def run_protocol(
    split: Split, *, strategies: Sequence[str] = DEFAULT_STRATEGIES, seeds: int = 5, rounds: int = 10,
    batch: int = 10, n_init: int = 300, C: float = 1.0, progress: bool = False,
):
    """All strategies x seeds; a DataFrame with ``strategy, seed, round, test_accuracy`` (+ extras)."""
    import pandas as pd

    check_positive_int("seeds", seeds, owner="run_protocol")
    check_interval("C", C, owner="run_protocol", low=0.0, high=np.inf, closed="neither")
    for name in strategies:
        make_strategy(name, split, C=C)  # fail fast on unknown names
    _check_protocol(split, n_init=n_init, rounds=rounds, batch=batch)
    rows: list[dict] = []
    jobs = [(s, n) for s in range(seeds) for n in strategies]
    it = jobs
    if progress:
        from tqdm import tqdm

        it = tqdm(jobs, desc="salutary protocol", unit="run")
    for seed, name in it:
        rows.extend(run_strategy(name, split, seed=seed, rounds=rounds, batch=batch, n_init=n_init, C=C))
    return pd.DataFrame(rows)


def summarize(results, *, paper: dict[str, float] | None = None):
    """Table 1 rows: Init and each strategy's final-round accuracy (%) as mean and std over seeds."""
    import pandas as pd

    last = results["round"].max()
    out = []
    init = results[results["round"] == 0].groupby("seed")["test_accuracy"].mean() * 100
    out.append({"method": "init", "mean": init.mean(), "std": init.std(ddof=0), "n_seeds": len(init)})
    for name, g in results[results["round"] == last].groupby("strategy", sort=False):
        acc = g["test_accuracy"] * 100
        out.append({"method": name, "mean": acc.mean(), "std": acc.std(ddof=0), "n_seeds": len(acc)})
    for name, label in (("ours-sl", "diff"), ("ours-sl2", "diff2")):
        sl = results[(results["strategy"] == name) & (results["round"] == last)]
        if len(sl):
            out.append({"method": label, "mean": sl["n_diff"].mean(), "std": sl["n_diff"].std(ddof=0),
                        "n_seeds": len(sl)})
    table = pd.DataFrame(out)
    if paper is not None:
        table["paper"] = [paper.get(m, np.nan) for m in table["method"]]
    return table


def format_table(table, *, title: str) -> str:
    """Human-readable Table 1: ours (mean ± std) beside the paper's value."""
    lines = [title, f"{'method':<18}{'ours':>16}{'paper':>10}"]
    for row in table.itertuples(index=False):
        paper = getattr(row, "paper", np.nan)
        ptxt = "" if paper is None or np.isnan(paper) else (f"{paper:.0f}" if row.method == "diff" else f"{paper:.2f}")
        if row.method.startswith("diff"):
            ours = f"{row.mean:.1f} ± {row.std:.1f}"
        else:
            ours = f"{row.mean:.2f} ± {row.std:.2f}"
        lines.append(f"{row.method:<18}{ours:>16}{ptxt:>10}")
    return "\n".join(lines)


def plot_rounds(results, path: str, *, title: str = "") -> None:
    """Figure 2: mean test accuracy per round with a ±1 std band per strategy (PNG, atomic)."""
    import io

    import matplotlib

    from labelsieve.experiments._figure import subplots

    fig, ax = subplots((6.5, 4.2))
    # matplotlib's stubs type colormaps[name] as the base Colormap; "tab10" is a ListedColormap with .colors
    palette = iter(matplotlib.colormaps["tab10"].colors)  # type: ignore[attr-defined]
    fixed = {"ours-sl": "black", "ours-gt": "dimgray", "ours-sl2": "darkred", "ours-gt2": "lightcoral"}
    for name, g in results.groupby("strategy", sort=False):
        stats = g.groupby("round")["test_accuracy"].agg(["mean", "std"]).fillna(0.0) * 100
        ours = name in fixed
        color = fixed.get(name) or next(palette, "tab:olive")
        ax.plot(stats.index, stats["mean"], marker="o", ms=3, label=name, color=color,
                lw=2.2 if ours else 1.2, ls="--" if ours else "-")
        ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.1,
                        color=color)
    ax.set_xlabel("round (0 = initial model)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    atomic_write_bytes(path, buf.getvalue())


def run_table2(
    split: Split, *, seeds: int = 5, batch: int = 10, n_init: int = 300, C: float = 1.0, fraction: float = 0.5,
):
    """Table 2: salutary labeling up to ``fraction`` of the pool (best validation round kept),
    fully supervised (initial set + whole pool with true labels) and self-training references.

    Returns a DataFrame with ``method, seed, test_accuracy`` (and ``best_round`` for ours-sl).
    """
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import SelfTrainingClassifier

    from labelsieve.active.surrogate import SoftmaxRegression

    check_interval("fraction", fraction, owner="run_table2", low=0.0, high=1.0, closed="right")
    rows = []
    full = SoftmaxRegression(n_classes=split.n_classes, C=C).fit(split.X_train, split.y_train)
    full_acc = float(np.mean(full.predict(split.X_test) == split.y_test))
    for seed in range(seeds):
        init = _initial_set(split, n_init, seed)
        in_pool = np.ones(len(split.y_train), dtype=bool)
        in_pool[init] = False
        n_pool = int(in_pool.sum())
        rounds = int(fraction * n_pool) // batch
        _check_protocol(split, n_init=n_init, rounds=rounds, batch=batch)
        for order, method in ((1, "ours-sl"), (2, "ours-sl2")):
            best = _table2_run(split, init, rounds, batch, C, order, _seed_for(seed, "table2"))
            rows.append({"method": method, "seed": seed, "test_accuracy": best[1], "best_round": best[2]})
        rows.append({"method": "fully-supervised", "seed": seed, "test_accuracy": full_acc, "best_round": -1})
        y_semi = np.where(np.isin(np.arange(len(split.y_train)), init), split.y_train, -1)
        st = SelfTrainingClassifier(LogisticRegression(C=C, max_iter=2000)).fit(split.X_train, y_semi)
        rows.append({"method": "self-training", "seed": seed,
                     "test_accuracy": float(np.mean(st.predict(split.X_test) == split.y_test)), "best_round": -1})
    return pd.DataFrame(rows)


def _table2_run(split: Split, init: np.ndarray, rounds: int, batch: int, C: float, order: int,
                rng: np.random.Generator) -> tuple[float, float, int]:
    """Salutary labeling for ``rounds`` rounds; (best val accuracy, its test accuracy, its round)."""
    from labelsieve.active.salutary import salutary_select

    in_pool = np.ones(len(split.y_train), dtype=bool)
    in_pool[init] = False
    X_lab, y_lab = split.X_train[init], split.y_train[init]
    best = (-1.0, 0.0, 0)
    W = None
    for r in range(rounds + 1):
        W = fit_softmax_regression(X_lab, y_lab, n_classes=split.n_classes, C=C, W0=W, tol=1e-8)
        inf = LogisticInfluence(C=C, n_classes=split.n_classes, order=order).fit(
            X_lab, y_lab, split.X_val, split.y_val, W=W)
        val_acc = float(np.mean(np.argmax(inf.predict_proba(split.X_val), 1) == split.y_val))
        if val_acc > best[0]:
            test_acc = float(np.mean(np.argmax(inf.predict_proba(split.X_test), 1) == split.y_test))
            best = (val_acc, test_acc, r)
        if r == rounds:
            break
        pool_idx = np.flatnonzero(in_pool)
        pos, sal, _ = salutary_select(inf.loss_decrease(split.X_train[pool_idx]), batch, rng)
        X_lab = np.vstack([X_lab, split.X_train[pool_idx[pos]]])
        y_lab = np.concatenate([y_lab, sal])
        in_pool[pool_idx[pos]] = False
    return best


def influence_check(
    split: Split, *, n_init: int = 300, n_points: int = 300, C: float = 1.0, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Figure 3: predicted vs actual validation-loss *decrease* of add-one-in retraining.

    Trains on ``n_init`` points, predicts the decrease for ``n_points`` random pool points with
    their true labels, then re-trains with each point added (warm start, tight tolerance).
    Returns ``(predicted, actual, spearman_r)``.
    """
    from scipy.stats import spearmanr

    init = _initial_set(split, n_init, seed)
    rest = np.setdiff1d(np.arange(len(split.y_train)), init)
    rng = np.random.default_rng(seed)
    pts = rng.choice(rest, size=min(n_points, len(rest)), replace=False)
    X0, y0 = split.X_train[init], split.y_train[init]
    inf = LogisticInfluence(C=C, n_classes=split.n_classes).fit(X0, y0, split.X_val, split.y_val)
    pred = inf.loss_decrease_labeled(split.X_train[pts], split.y_train[pts])
    base = validation_loss(split.X_val, split.y_val, inf.W_)
    actual = np.empty(len(pts))
    for t, j in enumerate(pts):  # one re-fit per added point is the experiment itself
        W1 = fit_softmax_regression(
            np.vstack([X0, split.X_train[j:j + 1]]), np.append(y0, split.y_train[j]),
            n_classes=split.n_classes, C=C, W0=inf.W_, tol=1e-12,
        )
        actual[t] = base - validation_loss(split.X_val, split.y_val, W1)
    return pred, actual, float(spearmanr(pred, actual).statistic)
