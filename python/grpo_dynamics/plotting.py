"""Pictures for the command line and the notebooks (docs/cli.md).

Every function draws on a matplotlib Figure built without pyplot's global state and writes
a PNG, so it works headless (Agg) and in threads. Nothing here computes a model quantity:
the callers pass arrays produced by trajectory / fit / forecast / stability.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_fit", "plot_forecast"]


def _new_figure(nrows: int = 1, height: float = 4.0) -> tuple[Figure, list]:
    # Figure + Agg canvas directly: no display, no pyplot global state to leak between calls.
    fig = Figure(figsize=(7.5, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, 1, i + 1) for i in range(nrows)]
    return fig, axes


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_fit(
    t: Sequence[float] | np.ndarray,
    r: Sequence[float] | np.ndarray,
    curves: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    path: str | Path,
    *,
    title: str = "",
    truth: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Path:
    """Data with each fitted curve beside it (top) and the residuals of each (bottom).

    curves maps a label (e.g. "oscillator", "exponential") to a predictor t -> r(t); the
    first entry is drawn as the main fit. Steps on the x axis, reward on the y axis.
    """
    t = np.asarray(t, dtype=float)
    r = np.asarray(r, dtype=float)
    fig, (ax, ax_res) = _new_figure(2, height=3.2)
    ax.plot(t, r, ".", ms=3, color="0.55", label="data")
    dense = np.linspace(t.min(), t.max(), 600)
    if truth is not None:
        ax.plot(dense, truth(dense), ":", color="k", lw=1.2, label="truth")
    styles = ["-", "--", "-.", ":"]
    for i, (label, predict) in enumerate(curves.items()):
        line = ax.plot(dense, predict(dense), styles[i % 4], lw=1.8, label=label)[0]
        ax_res.plot(t, r - predict(t), ".", ms=3, color=line.get_color(), label=label)
    ax_res.axhline(0.0, color="k", lw=0.8)
    ax.set_ylabel("reward")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    ax_res.set_xlabel("optimizer step")
    ax_res.set_ylabel("residual")
    ax_res.legend(loc="best", fontsize=8)
    return _save(fig, path)


def plot_forecast(
    t: np.ndarray,
    r: np.ndarray,
    upto: float,
    t_pred: np.ndarray,
    median: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    path: str | Path,
    *,
    level: float = 0.9,
    r_inf: tuple[float, float, float] | None = None,
    title: str = "",
) -> Path:
    """Data (fitted part and held-out part), the forecast and its band, and the plateau.

    r_inf is (estimate, lower, upper) of the plateau and is drawn as a horizontal band.
    """
    t = np.asarray(t, dtype=float)
    r = np.asarray(r, dtype=float)
    fig, (ax,) = _new_figure(1)
    seen = t <= upto
    ax.plot(t[seen], r[seen], ".", ms=3, color="C0", label="fitted data")
    ax.plot(t[~seen], r[~seen], ".", ms=3, color="0.65", label="held-out data")
    ax.fill_between(t_pred, lower, upper, color="C1", alpha=0.25, label=f"{level:.0%} band")
    ax.plot(t_pred, median, "-", color="C1", lw=1.8, label="forecast")
    if r_inf is not None:
        ax.axhline(r_inf[0], color="C3", lw=1.0, ls="--", label="plateau r_inf")
        ax.axhspan(r_inf[1], r_inf[2], color="C3", alpha=0.08)
    ax.axvline(upto, color="k", lw=0.8, ls=":")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("reward")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)
