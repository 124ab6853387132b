"""The 20-method grid of Vishwakarma et al. (2024): train-time loss x post-hoc confidence function,
each run through the same TBAL loop with the same valid bound.

Cells: every train-time method (``ce``, ``squentropy``, ``crl``, ``fmfp``, see
:mod:`labelsieve.models.losses`) x every post-hoc function (temperature, histogram binning,
scaling-binning, Dirichlet, Colander) plus max-softmax. Each cell is run over several seeds; a
seed fixes the data split, the queried labels' randomness, the model and the calibrator.

Calibrators that need fitting get ``calibration_fraction`` of the validation points in the
certifying round (D_cal); the rest (D_th) certifies the thresholds. Max-softmax needs no fitting and
certifies on all of them, as in plain TBAL.

Scarce-data fallback (documented): when a round leaves a calibrator fewer points than it needs
(:class:`~labelsieve.errors.NotEnoughDataError`), that round uses max-softmax instead and the run
counts it in ``fallbacks``. Such rounds have too few threshold points to certify much anyway.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labelsieve._atomic import atomic_write_path
from labelsieve.confidence import CONFIDENCE_FUNCTIONS, make_confidence
from labelsieve.confidence.base import MaxSoftmax
from labelsieve.errors import InputError, NotEnoughDataError
from labelsieve.experiments._figure import subplots
from labelsieve.models.base import Scores

logger = logging.getLogger(__name__)

TRAIN_TIME = ("ce", "squentropy", "crl", "fmfp")
POST_HOC = ("softmax", "temperature", "histogram", "scaling-binning", "dirichlet", "colander")
#: How the TBAL loop spreads delta over rounds in every grid run (pinned so cells stay comparable):
#: the library default, one certification in the last round on validation data no earlier round used.
DELTA_SCHEDULE = "last"


@dataclass(frozen=True)
class GridPreset:
    """Per-data-set defaults: TBAL budget, rounds, share of the budget for validation, MLP width."""

    loader: str
    budget: int
    rounds: int = 3
    val_fraction: float = 0.5
    hidden: int = 64
    description: str = ""
    #: Size of a fresh sample from the same distribution, drawn where the data set is generated
    #: (waveform): the final rule's population error is then measured, not only its pool error.
    fresh: int = 0


#: Offline data sets for the grid. ``digits-few`` is the harder set: few training labels, so the
#: MLP is weak and its softmax overconfident.
PRESETS: dict[str, GridPreset] = {
    "digits": GridPreset("digits", budget=800, description="8x8 digits, 10 classes, 1797 items"),
    "digits-few": GridPreset(
        "digits", budget=700, val_fraction=0.7, description="digits with only 210 training labels"
    ),
    "waveform": GridPreset(
        "waveform", budget=1500, fresh=100_000, description="Breiman waveform, 3 classes, 5000 items"
    ),
    "breast-cancer": GridPreset(
        "breast-cancer", budget=300, rounds=2, description="Wisconsin breast cancer, 2 classes, 569 items"
    ),
    "fashion-mnist": GridPreset(
        "fashion-mnist", budget=2000, hidden=128,
        description="Fashion-MNIST test split, 5000-item seeded subset, 784 pixels, 10 classes",
    ),
    "20newsgroups": GridPreset(
        "20newsgroups", budget=1600, hidden=128,
        description="20 Newsgroups train split, 4000-post seeded subset, MiniLM embeddings (384-d), 20 classes",
    ),
}


def _load_named(loader: str) -> Any:
    """The data set behind a preset's ``loader`` name (all offline; see :mod:`labelsieve.data`)."""
    from labelsieve.data.embedded import EMBEDDED, load_fashion_mnist

    if loader == "fashion-mnist":
        return load_fashion_mnist("test", n=5000, random_state=0)
    if loader == "20newsgroups":
        import os

        from labelsieve.data.text import load_text_dataset
        from labelsieve.labelers.fewshot import embed_dataset
        from labelsieve.labelers.text import MiniLMEncoder

        text = load_text_dataset("20newsgroups", split="train", n=4000, random_state=0)
        cache = os.environ.get("LABELSIEVE_CACHE", os.path.expanduser("~/.cache/labelsieve/embeddings"))
        return embed_dataset(text, MiniLMEncoder(max_seq_length=128), cache_dir=cache, progress=True)
    return EMBEDDED[loader]()


def load_grid_dataset(name: str) -> tuple[Any, GridPreset]:
    """The :class:`~labelsieve.data.Dataset` and preset for a grid data-set name."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in PRESETS:
        raise InputError(f"unknown grid data set {name!r}; choose one of {sorted(PRESETS)}.")
    preset = PRESETS[key]
    return _load_named(preset.loader), preset


def load_fresh(name: str) -> Any | None:
    """A fresh sample of the preset's distribution (``preset.fresh`` items), or None."""
    preset = PRESETS[str(name).strip().lower().replace("_", "-")]
    if not preset.fresh:
        return None
    from labelsieve.data.embedded import load_waveform

    return load_waveform(preset.fresh, random_state=10_000)  # the pool uses seed 0


class ScarceDataFallback:
    """Wraps a confidence function; a round whose calibration data are too few uses max-softmax.

    The fallback counter is shared by every deep copy (the TBAL loop copies the template each
    round), so the run can report how many rounds fell back.
    """

    requires_fit: bool = True

    def __init__(self, inner: Any, counter: list[int] | None = None) -> None:
        self.inner = inner
        self.counter = counter if counter is not None else [0]

    def __deepcopy__(self, memo: dict) -> ScarceDataFallback:
        return ScarceDataFallback(copy.deepcopy(self.inner, memo), self.counter)

    def fit(self, scores: Scores, y: np.ndarray) -> ScarceDataFallback:
        try:
            self.active_ = self.inner.fit(scores, y)
        except NotEnoughDataError as exc:
            logger.info("%s: %s; this round uses max-softmax", type(self.inner).__name__, exc)
            self.counter[0] += 1
            self.active_ = MaxSoftmax()
        return self

    def confidence(self, scores: Scores) -> tuple[np.ndarray, np.ndarray]:
        return self.active_.confidence(scores)


def make_cell_confidence(post_hoc: str, seed: int, colander_params: dict | None = None) -> Any:
    """Unfitted confidence function for a grid cell (None = TBAL's default max-softmax)."""
    if post_hoc == "softmax":
        return None
    params: dict[str, Any] = {"random_state": seed}
    if post_hoc == "colander" and colander_params:
        params.update(colander_params)
    return ScarceDataFallback(make_confidence(post_hoc, **params))


def run_cell(
    dataset: Any,
    train_time: str,
    post_hoc: str,
    seed: int,
    *,
    epsilon: float = 0.05,
    delta: float = 0.05,
    budget: int = 800,
    rounds: int = 3,
    val_fraction: float = 0.5,
    hidden: int = 64,
    epochs: int = 60,
    colander_params: dict | None = None,
    fresh: Any = None,
) -> dict[str, Any]:
    """One TBAL run; returns coverage, true auto-labeling error and bookkeeping.

    With ``fresh`` (a labeled sample of the same distribution, never seen by the run) the final
    rule is applied to it too: ``population_error`` is then the error the guarantee is about,
    up to that sample's own noise (``population_coverage`` the share it auto-labels).
    """
    from labelsieve.autolabel.tbal import TBAL
    from labelsieve.models import MLPClassifier

    model = MLPClassifier(
        n_classes=dataset.n_classes, hidden=(hidden,), epochs=epochs, loss=train_time, random_state=seed
    )
    cf = make_cell_confidence(post_hoc, seed, colander_params)
    t0 = time.perf_counter()
    res = TBAL(
        model=model,
        confidence=cf,
        epsilon=epsilon,
        delta=delta,
        budget=budget,
        rounds=rounds,
        val_fraction=val_fraction,
        bound="clopper-pearson",
        scan="fixed-sequence",
        delta_schedule=DELTA_SCHEDULE,
        random_state=seed,
    ).run(dataset)
    m = res.metrics
    err = m["auto_label_error"]
    pop: dict[str, float] = {}
    if fresh is not None:
        auto, codes, _ = res.apply(fresh.X)
        pop = {
            "population_coverage": float(auto.mean()),
            "population_error": float((codes[auto] != fresh.y[auto]).mean()) if auto.any() else 0.0,
        }
    return {
        "dataset": dataset.name,
        "train_time": train_time,
        "post_hoc": post_hoc,
        "seed": seed,
        "epsilon": epsilon,
        "delta": delta,
        "coverage": m["coverage"],
        "auto_label_error": 0.0 if err is None else float(err),  # nothing auto-labeled: no error
        "n_auto_labeled": m["n_auto_labeled"],
        "human_labels": m["human_labels"],
        "fallbacks": 0 if cf is None else cf.counter[0],
        **pop,
        "seconds": time.perf_counter() - t0,
    }


def _run_cell_task(args: tuple) -> dict[str, Any]:
    """Worker entry point of :func:`run_grid` with ``jobs > 1`` (one thread per process)."""
    import torch

    torch.set_num_threads(1)
    dataset, t, p, s, kw = args
    return run_cell(dataset, t, p, s, **kw)


def run_grid(
    dataset: Any,
    *,
    train_times: Sequence[str] = TRAIN_TIME,
    post_hocs: Sequence[str] = POST_HOC,
    seeds: Sequence[int] = range(5),
    epsilon: float = 0.05,
    on_run: Callable[[dict], None] | None = None,
    jobs: int = 1,
    **kw: Any,
) -> pd.DataFrame:
    """Every (train-time, post-hoc, seed) run; one row each (see :func:`run_cell`).

    ``jobs > 1`` runs cells in that many processes; every cell is seeded, so the rows equal the
    serial ones (returned in the serial order).
    """
    for t in train_times:
        if t not in TRAIN_TIME:
            raise InputError(f"unknown train-time method {t!r}; choose from {list(TRAIN_TIME)}.")
    for p in post_hocs:
        if p not in CONFIDENCE_FUNCTIONS:
            raise InputError(f"unknown post-hoc method {p!r}; choose from {list(POST_HOC)}.")
    tasks = [(dataset, t, p, int(s), {"epsilon": epsilon, **kw}) for t in train_times for p in post_hocs for s in seeds]
    if jobs <= 1:
        rows = []
        for task in tasks:
            rows.append(run_cell(task[0], task[1], task[2], task[3], **task[4]))
            if on_run:
                on_run(rows[-1])
        return pd.DataFrame(rows)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    out: list[dict | None] = [None] * len(tasks)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_run_cell_task, task): i for i, task in enumerate(tasks)}
        for fut in as_completed(futures):
            out[futures[fut]] = row = fut.result()
            if on_run:
                on_run(row)
    return pd.DataFrame(out)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds of coverage and true error per (data set, ε, train-time, post-hoc),
    plus the fraction of seeds whose true error exceeds ε."""
    has_pop = "population_error" in runs
    runs = runs.assign(
        over=runs["auto_label_error"] > runs["epsilon"],
        pop_over=(runs["population_error"] > runs["epsilon"]) if has_pop else False,
    )
    g = runs.groupby(["dataset", "epsilon", "train_time", "post_hoc"], sort=False)
    extra = {"population_error_mean": ("population_error", "mean"), "pop_seeds_over_eps": ("pop_over", "sum")}
    out = g.agg(
        coverage_mean=("coverage", "mean"),
        coverage_sd=("coverage", "std"),
        error_mean=("auto_label_error", "mean"),
        error_sd=("auto_label_error", "std"),
        frac_over_eps=("over", "mean"),
        seeds_over_eps=("over", "sum"),
        human_labels=("human_labels", "mean"),
        fallbacks=("fallbacks", "sum"),
        seeds=("seed", "nunique"),
        **(extra if has_pop else {}),
    ).reset_index()
    return out.fillna({"coverage_sd": 0.0, "error_sd": 0.0})


def format_table(summary: pd.DataFrame, *, header: str = "") -> str:
    """Plain-text table: one line per cell, the best post-hoc coverage per train-time marked *."""
    lines = [header] if header else []
    lines.append(
        f"{'train-time':<11}{'post-hoc':<16}{'coverage % (mean±sd)':>22}{'error % (mean±sd)':>20}"
        f"{'seeds>eps':>10}{'humans':>8}{'fallbk':>7}"
        + (f"{'pop err %':>10}{'pop>eps':>8}" if "population_error_mean" in summary else "")
    )
    for (_, _, t), part in summary.groupby(["dataset", "epsilon", "train_time"], sort=False):
        calibrated = part[part["post_hoc"] != "softmax"]
        best = calibrated["coverage_mean"].max() if len(calibrated) else math.nan
        for _, r in part.iterrows():
            mark = "*" if r["post_hoc"] != "softmax" and best > 0 and r["coverage_mean"] == best else " "
            lines.append(
                f"{t:<11}{r['post_hoc'] + mark:<16}"
                f"{100 * r['coverage_mean']:>13.1f} ± {100 * r['coverage_sd']:<6.1f}"
                f"{100 * r['error_mean']:>11.2f} ± {100 * r['error_sd']:<6.2f}"
                f"{int(r['seeds_over_eps']):>6d}/{int(r['seeds']):<3d}{r['human_labels']:>8.0f}{int(r['fallbacks']):>7d}"
                + (f"{100 * r['population_error_mean']:>10.2f}{int(r['pop_seeds_over_eps']):>4d}/{int(r['seeds']):<3d}"
                   if "population_error_mean" in summary else "")
            )
    return "\n".join(lines)


def validity_check(runs: pd.DataFrame, delta: float, *, column: str = "auto_label_error") -> str:
    """Does every cell keep its true error <= epsilon in >= 1 - delta of its seeds?

    Per cell the number of seeds over ε is compared with Binomial(seeds, δ), the count a bound
    that is valid *and tight* at level δ produces: the line reports the worst cell and the
    probability of a count at least that large under such a bound (one-sided exact binomial
    tail), and the pooled rate over all cells x seeds. Cells share their seeds' validation draws,
    so the pooled count is not a sum of independent cells; the per-cell tails are exact.
    """
    from scipy.stats import binom

    over = (runs[column] > runs["epsilon"]).groupby(
        [runs["dataset"], runs["epsilon"], runs["train_time"], runs["post_hoc"]], sort=False
    ).agg(["sum", "size"])
    k, n = over["sum"].to_numpy(), over["size"].to_numpy()
    tail = binom.sf(k - 1, n, delta)  # P(X >= k)
    worst = int(np.argmin(tail))
    ok = int((k <= np.floor(delta * n)).sum())
    return (
        f"{column}: {int(k.sum())}/{int(n.sum())} cell-seeds over epsilon (rate {k.sum() / n.sum():.3f}, delta {delta}); "
        f"{ok}/{len(k)} cells at or below delta; worst cell {'/'.join(map(str, over.index[worst][2:]))} "
        f"{int(k[worst])}/{int(n[worst])}, P(Binomial({int(n[worst])}, {delta}) >= {int(k[worst])}) = {tail[worst]:.3f}"
    )


def colander_comparison(runs: pd.DataFrame, *, method: str = "colander") -> pd.DataFrame:
    """``method`` against every other post-hoc function at the same train-time method and ε,
    paired by seed (same split, same human labels): mean coverage difference and the seeds where
    ``method`` covers more / less."""
    key = ["dataset", "epsilon", "train_time", "seed"]
    mine = runs[runs["post_hoc"] == method].set_index(key)["coverage"]
    rows = []
    for (d, e, t, p), part in runs[runs["post_hoc"] != method].groupby(
        ["dataset", "epsilon", "train_time", "post_hoc"], sort=False
    ):
        other = part.set_index(key)["coverage"]
        both = mine.index.intersection(other.index)
        if not len(both):
            continue
        diff = mine.loc[both].to_numpy() - other.loc[both].to_numpy()
        rows.append({
            "dataset": d, "epsilon": e, "train_time": t, "other": p,
            f"{method}_coverage": float(mine.loc[both].mean()), "other_coverage": float(other.loc[both].mean()),
            "difference": float(diff.mean()), "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()),
            "seeds": len(both),
        })
    return pd.DataFrame(rows)


def format_comparison(comp: pd.DataFrame, *, method: str = "colander") -> str:
    """One line per (train-time, other method): coverage of both, difference, paired wins/losses."""
    lines = [f"{method} vs each other post-hoc function (paired by seed)",
             f"{'train-time':<11}{'other':<16}{method + ' %':>12}{'other %':>9}{'diff':>8}{'wins/losses':>13}"]
    for _, r in comp.iterrows():
        lines.append(
            f"{r['train_time']:<11}{r['other']:<16}{100 * r[f'{method}_coverage']:>12.1f}"
            f"{100 * r['other_coverage']:>9.1f}{100 * r['difference']:>+8.1f}{int(r['wins']):>7d}/{int(r['losses'])}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- outputs


def save_csv(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` to ``path`` atomically."""
    atomic_write_path(path, lambda tmp: df.to_csv(tmp, index=False), suffix=".csv")


def plot_coverage_vs_epsilon(summary: pd.DataFrame, path: Path, *, train_time: str = "ce") -> None:
    """Mean coverage (± sd band) against ε, one line per post-hoc method."""
    part = summary[summary["train_time"] == train_time]
    fig, ax = subplots((6, 4))
    for p, d in part.groupby("post_hoc", sort=False):
        d = d.sort_values("epsilon")
        ax.plot(100 * d["epsilon"], 100 * d["coverage_mean"], marker="o", label=p)
        ax.fill_between(
            100 * d["epsilon"],
            100 * (d["coverage_mean"] - d["coverage_sd"]),
            100 * (d["coverage_mean"] + d["coverage_sd"]),
            alpha=0.15,
        )
    name = part["dataset"].iloc[0] if len(part) else ""
    ax.set(xlabel="target error ε (%)", ylabel="coverage (%)", title=f"{name}: TBAL coverage vs ε ({train_time})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_path(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"), suffix=".png")


def one_round_scores(
    dataset: Any,
    post_hoc: str,
    seed: int,
    *,
    train_time: str = "ce",
    epsilon: float = 0.05,
    delta: float = 0.05,
    budget: int = 800,
    val_fraction: float = 0.5,
    hidden: int = 64,
    epochs: int = 60,
    calibration_fraction: float = 0.5,
) -> dict[str, Any]:
    """One TBAL round by hand (the slides' experiment): train on the seed labels, fit the confidence
    function on D_cal, certify a global threshold on D_th, score the rest of the pool.

    Returns pool confidences, whether each pool prediction is correct, the threshold and coverage.
    """
    from labelsieve.guarantees import certify_thresholds
    from labelsieve.models import MLPClassifier

    rng = np.random.default_rng(seed)
    n = len(dataset)
    perm = rng.permutation(n)
    n_val = round(val_fraction * budget)
    val, train, pool = perm[:n_val], perm[n_val:budget], perm[budget:]
    model = MLPClassifier(
        n_classes=dataset.n_classes, hidden=(hidden,), epochs=epochs, loss=train_time, random_state=seed
    ).fit(dataset.X[train], dataset.y[train])
    vs, ps = model.scores(dataset.X[val]), model.scores(dataset.X[pool])
    cf = make_cell_confidence(post_hoc, seed) or MaxSoftmax()
    th = np.ones(n_val, dtype=bool)
    if getattr(cf, "requires_fit", False):
        cal = rng.random(n_val) < calibration_fraction
        cf.fit(vs.take(np.flatnonzero(cal)), dataset.y[val][cal])
        th = ~cal
    vp, vc = cf.confidence(vs)
    cert = certify_thresholds(
        vp[th], vc[th], dataset.y[val][th], n_classes=dataset.n_classes, epsilon=epsilon, delta=delta
    )
    pp, pc = cf.confidence(ps)
    acc = cert.accept(pp, pc)
    correct = pp == dataset.y[pool]
    return {
        "post_hoc": post_hoc,
        "confidence": pc,
        "correct": correct,
        "threshold": float(cert.thresholds[0]),
        "coverage": float(acc.mean()),
        "error": float((~correct[acc]).mean()) if acc.any() else 0.0,
        "accuracy": float(correct.mean()),
    }


def plot_score_density(rounds: Sequence[dict[str, Any]], path: Path, *, title: str = "") -> None:
    """Density of pool scores for correct vs incorrect predictions, auto-labeling region shaded,
    one panel per confidence function (the slides' figure)."""
    from scipy.stats import gaussian_kde

    fig, axes = subplots((4.2 * len(rounds), 3.4), 1, len(rounds), squeeze=False)
    for ax, r in zip(axes[0], rounds):
        c, ok = r["confidence"], r["correct"]
        lo, hi = float(c.min()), float(c.max())
        grid = np.linspace(lo, hi if hi > lo else lo + 1e-6, 400)
        for mask, label, color in ((ok, "correct", "tab:blue"), (~ok, "incorrect", "tab:red")):
            vals = c[mask]
            if vals.size >= 2 and np.ptp(vals) > 0:
                dens = gaussian_kde(vals)(grid) * vals.size / c.size
                ax.plot(grid, dens, color=color, label=f"{label} ({vals.size})")
                ax.fill_between(grid, dens, color=color, alpha=0.2)
        if np.isfinite(r["threshold"]):
            ax.axvspan(r["threshold"], hi, color="green", alpha=0.12, label="auto-labeling region")
        ax.set(
            title=f"{r['post_hoc']}: cov {100 * r['coverage']:.1f}%, err {100 * r['error']:.1f}%",
            xlabel="confidence score",
        )
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("density (scaled by share)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write_path(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"), suffix=".png")
