"""Standalone figures for the experiments: no backend selection, no pyplot state."""

from __future__ import annotations

from typing import Any


def new_figure(figsize: tuple[float, float], **kw: Any) -> Any:
    """A ``matplotlib.figure.Figure`` bound to its own Agg canvas.

    Same defaults as ``pyplot.figure`` (rcParams), but the caller's pyplot backend and figure
    manager are never touched and nothing has to be closed: the figure is freed with its last
    reference. Works headless (``MPLBACKEND`` unset, no display).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, **kw)
    FigureCanvasAgg(fig)
    return fig


def subplots(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Any, Any]:
    """``(figure, axes)`` as ``pyplot.subplots`` returns them; ``squeeze`` and figure keywords
    (``constrained_layout``, ``layout``, ``dpi``) as there."""
    squeeze = kw.pop("squeeze", True)
    fig = new_figure(figsize, **kw)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)
