"""Figures 1 and 2 of the GTX paper from our simulation results (standalone Agg figures, atomic PNG writes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from labelsieve._atomic import atomic_write
from labelsieve.crowd.simulator import METHODS
from labelsieve.experiments._figure import subplots

_COLORS = {"MV": "tab:blue", "WMV": "tab:orange", "SV": "tab:green", "GTX": "tab:red"}


def _save(fig, path: str | Path) -> Path:
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=120, bbox_inches="tight"), binary=True)


def plot_figure1(raw: pd.DataFrame, path: str | Path, *, title: str = "more accurate labelers") -> Path:
    """Error rate against labels per example: every trial (dots) and the mean per k or tau (line)."""
    fig, ax = subplots((6, 4), constrained_layout=True)
    for method in METHODS:
        sub = raw[raw["method"] == method]
        ax.scatter(sub["avg_k"], 100 * sub["error"], s=4, alpha=0.15, color=_COLORS[method])
        mean = sub.groupby(["tau", "kappa"], dropna=False)[["avg_k", "error"]].mean().sort_values("avg_k")
        ax.plot(mean["avg_k"], 100 * mean["error"], "-o", ms=3, color=_COLORS[method], label=method)
    ax.set_xlabel("labels per example k = B / N")
    ax.set_ylabel("error rate (%)")
    ax.set_yscale("log")
    ax.set_title(f"Figure 1: efficiency of label aggregation ({title})")
    ax.legend()
    return _save(fig, path)


def plot_figure2(traces: dict[str, dict[str, np.ndarray]], path: str | Path, *, n_items: int) -> Path:
    """Error rate and MAE after each label under uncertainty sampling, mean ± standard error.

    ``traces``: setting -> method -> array (repeats, 2, budget) from ``simulate_table2``.
    """
    fig, axes = subplots((10, 3.8 * len(traces)), len(traces), 2, squeeze=False, constrained_layout=True)
    for row, (setting, by_method) in enumerate(traces.items()):
        for method, arr in by_method.items():
            x = np.arange(1, arr.shape[2] + 1)
            keep = x >= n_items
            for col, name in enumerate(("error rate (%)", "MAE (%)")):
                ys = 100 * arr[:, col, keep]
                mean = ys.mean(axis=0)
                se = ys.std(axis=0, ddof=1) / np.sqrt(ys.shape[0]) if ys.shape[0] > 1 else np.zeros_like(mean)
                ax = axes[row, col]
                ax.plot(x[keep], mean, color=_COLORS[method], label=method)
                ax.fill_between(x[keep], mean - se, mean + se, color=_COLORS[method], alpha=0.2)
                ax.set_ylabel(name)
                ax.set_xlabel("labels collected")
                ax.set_title(f"{setting.replace('_', ' ')} labelers")
        axes[row, 0].legend()
    fig.suptitle("Figure 2: dynamics of uncertainty sampling")
    return _save(fig, path)
