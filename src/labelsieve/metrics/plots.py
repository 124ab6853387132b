"""PNG figures for auto-labeling runs.

Figures are drawn on a standalone ``matplotlib.figure.Figure`` with the Agg canvas, so the
caller's pyplot backend and global state are never touched (works headless), and every file is
written atomically (temporary file in the target directory, then ``os.replace``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from labelsieve._atomic import atomic_write
from labelsieve.errors import InputError
from labelsieve.metrics.core import _conf_correct, reliability_curve

_ROUND_COLUMNS = ("round", "coverage", "auto_label_error")


def _new_figure(width: float, height: float, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # Agg backend bound to this figure only
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _save_atomic(fig: Any, path: str | os.PathLike[str]) -> Path:
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png"), binary=True)


def plot_rounds(history: Any, path: str | os.PathLike[str], *, epsilon: float | None = None) -> Path:
    """Coverage and auto-labeling error per round, as one PNG.

    Parameters
    ----------
    history : pandas.DataFrame
        Columns ``round``, ``coverage``, ``auto_label_error`` (required) and ``error_bound``,
        ``human_labels`` (drawn when present). NaN errors (nothing auto-labeled yet) are gaps.
    path : path of the PNG
    epsilon : float, optional
        Target error, drawn as a horizontal line on the error panel.

    Returns
    -------
    Path of the written file.
    """
    missing = [c for c in _ROUND_COLUMNS if c not in getattr(history, "columns", ())]
    if missing:
        cols = list(getattr(history, "columns", []))
        raise InputError(f"plot_rounds: history lacks column(s) {missing}; it has {cols}.")
    r = history["round"].to_numpy(dtype=np.float64)
    fig, (ax_cov, ax_err) = _new_figure(10, 4, ncols=2)
    ax_cov.plot(r, history["coverage"].to_numpy(dtype=np.float64), "o-", color="C0", label="coverage")
    ax_cov.set_xlabel("round")
    ax_cov.set_ylabel("coverage (auto-labeled / pool)")
    ax_cov.set_ylim(0, 1.02)
    if "human_labels" in history.columns:
        ax_h = ax_cov.twinx()
        ax_h.plot(
            r, history["human_labels"].to_numpy(dtype=np.float64), "s--", color="C2", label="human labels"
        )
        ax_h.set_ylabel("human labels (cumulative)")
        ax_h.legend(loc="lower right")
    ax_cov.legend(loc="upper left")
    ax_err.plot(
        r, history["auto_label_error"].to_numpy(dtype=np.float64), "o-", color="C3", label="true error"
    )
    if "error_bound" in history.columns:
        ax_err.plot(
            r, history["error_bound"].to_numpy(dtype=np.float64), "^--", color="C1", label="error bound"
        )
    if epsilon is not None:
        ax_err.axhline(float(epsilon), color="k", ls=":", label=f"ε = {float(epsilon):g}")
    ax_err.set_xlabel("round")
    ax_err.set_ylabel("auto-labeling error")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_cov, ax_err):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_err.set_ylim(bottom=0)
    ax_err.legend(loc="best")
    return _save_atomic(fig, path)


def plot_reliability(confidence: Any, correct: Any, path: str | os.PathLike[str], n_bins: int = 15) -> Path:
    """Reliability diagram (accuracy vs mean confidence per bin, bar width = bin) with the ECE."""
    rc = reliability_curve(confidence, correct, n_bins=n_bins)
    n = max(int(rc.count.sum()), 1)
    ece = float(np.nansum(rc.count / n * np.abs(rc.accuracy - rc.confidence)))
    fig, (ax,) = _new_figure(5, 5)
    left, width = rc.edges[:-1], np.diff(rc.edges)
    filled = rc.count > 0
    ax.bar(
        left[filled],
        rc.accuracy[filled],
        width=width[filled],
        align="edge",
        edgecolor="k",
        color="C0",
        alpha=0.8,
        label="accuracy",
    )
    ax.bar(
        left[filled],
        (rc.confidence - rc.accuracy)[filled],
        bottom=rc.accuracy[filled],
        width=width[filled],
        align="edge",
        color="C3",
        alpha=0.35,
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"ECE = {ece:.3f} ({n_bins} bins, n = {int(rc.count.sum())})")
    ax.legend(loc="upper left")
    return _save_atomic(fig, path)


def plot_score_density(
    conf: Any, correct: Any, path: str | os.PathLike[str], threshold: float | None = None, bins: int = 40
) -> Path:
    """Histograms (as densities) of scores for correct vs incorrect predictions.

    With ``threshold`` the auto-labeling region (scores >= threshold) is shaded.
    """
    c, k = _conf_correct(conf, correct, "plot_score_density")
    lo = float(min(c.min(), threshold if threshold is not None else 1.0)) if c.size else 0.0
    hi = float(max(c.max(), threshold if threshold is not None else 0.0)) if c.size else 1.0
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    fig, (ax,) = _new_figure(6, 4)
    for mask, label, color in ((k == 1, "correct", "C0"), (k == 0, "incorrect", "C3")):
        if mask.any():
            ax.hist(
                c[mask],
                bins=edges,
                density=True,
                histtype="stepfilled",
                alpha=0.45,
                color=color,
                label=f"{label} (n = {int(mask.sum())})",
            )
    if threshold is not None:
        ax.axvspan(
            float(threshold), hi, color="C2", alpha=0.12, label=f"auto-labeled (score ≥ {threshold:g})"
        )
        ax.axvline(float(threshold), color="C2", lw=1.5)
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.legend(loc="best")
    return _save_atomic(fig, path)
