"""Every figure of the package, drawn from result objects (docs/cli.md, "Plots").

Each ``plot_*`` function takes what the library returned (a :class:`FitResult`, a
:class:`Forecast`, a :class:`StabilityGrid`) plus the run it describes, and returns a
matplotlib Figure built without pyplot's global state, so it works headless (Agg), in threads
and in notebooks; :func:`save_figure` writes one as a PNG. Nothing here computes a model
quantity. matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray

from ._stability import REGIMES
from .io import Run, as_run

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ._fit import FitResult
    from ._forecast import Forecast
    from ._stability import StabilityGrid

__all__ = [
    "plot_fit",
    "plot_forecast",
    "plot_phase_diagram",
    "plot_phase_diagrams",
    "save_figure",
]

Curve = Callable[[NDArray[np.float64]], NDArray[np.float64]]


def _figure(width: float, height: float) -> Figure:
    # Figure + Agg canvas directly: no display, no pyplot global state to leak between calls
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parent directories created); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=dpi)
    return target


def _run_series(run: Run, column: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    t, r = as_run(run).series(column)
    if t.size == 0:
        raise ValueError(f"column: no finite {column!r} values to plot")
    return t, r


def plot_fit(
    results: FitResult | Mapping[str, FitResult],
    run: Run,
    *,
    column: str = "reward",
    title: str = "",
    truth: Curve | None = None,
) -> Figure:
    """The run with each fitted curve (top) and the residuals of each (bottom).

    ``results`` is one FitResult or a mapping label -> FitResult (e.g. the oscillator and the
    exponential); the first is drawn as the main fit. ``truth`` optionally draws a known
    curve (a simulated run's). Steps on the x axis, reward units on the y axis.
    """
    curves = {results.model: results} if not isinstance(results, Mapping) else dict(results)
    t, r = _run_series(run, column)
    fig = _figure(7.5, 6.4)
    ax, ax_res = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    ax.plot(t, r, ".", ms=3, color="0.55", label="data")
    dense = np.linspace(t.min(), t.max(), 600)
    if truth is not None:
        ax.plot(dense, truth(dense), ":", color="k", lw=1.2, label="truth")
    styles = ["-", "--", "-.", ":"]
    for i, (label, result) in enumerate(curves.items()):
        line = ax.plot(dense, result.predict(dense), styles[i % 4], lw=1.8, label=label)[0]
        ax_res.plot(t, r - result.predict(t), ".", ms=3, color=line.get_color(), label=label)
    ax_res.axhline(0.0, color="k", lw=0.8)
    ax.set_ylabel(column)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    ax_res.set_xlabel("optimizer step")
    ax_res.set_ylabel("residual")
    ax_res.legend(loc="best", fontsize=8)
    return fig


def plot_forecast(
    forecast: Forecast, run: Run, *, column: str = "reward", title: str = ""
) -> Figure:
    """The run (fitted part and held-out part), the forecast with its band, and the plateau.

    The band is the forecast's central interval at ``forecast.level``; an identified plateau
    is drawn as a dashed line with its interval shaded, a one-sided bound as a dotted line.
    """
    t, r = _run_series(run, column)
    fig = _figure(7.5, 4.0)
    ax = fig.add_subplot()
    seen = t <= forecast.upto
    ax.plot(t[seen], r[seen], ".", ms=3, color="C0", label="fitted data")
    ax.plot(t[~seen], r[~seen], ".", ms=3, color="0.65", label="held-out data")
    ax.fill_between(
        forecast.t,
        forecast.lower,
        forecast.upper,
        color="C1",
        alpha=0.25,
        label=f"{forecast.level:.0%} band",
    )
    ax.plot(forecast.t, forecast.mean, "-", color="C1", lw=1.8, label="forecast")
    plateau = forecast.plateau
    if forecast.plateau_identified and plateau is not None:
        ax.axhline(plateau.estimate, color="C3", lw=1.0, ls="--", label="plateau")
        ax.axhspan(plateau.lower, plateau.upper, color="C3", alpha=0.08)
    elif forecast.plateau_bound is not None:
        side, value = forecast.plateau_bound
        ax.axhline(value, color="C3", lw=1.0, ls=":", label=f"plateau {side} {value:.3g}")
    ax.axvline(forecast.upto, color="k", lw=0.8, ls=":")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(column)
    ax.set_title(title or f"forecast from step {forecast.upto:g}")
    ax.legend(loc="best", fontsize=8)
    return fig


def _plane(grid: StabilityGrid) -> tuple[float, float]:
    """(momentum, c_now) of a grid laid out as rows of c_lag by columns of lag_steps."""
    if grid.spectral_radius.ndim != 2 or min(grid.spectral_radius.shape) < 2:
        raise ValueError(
            "grid: must be 2-D (c_lag rows by lag_steps columns, each at least 2), got shape "
            f"{grid.spectral_radius.shape}"
        )
    momentum = np.unique(grid.momentum)
    c_now = np.unique(grid.c_now)
    if momentum.size != 1 or c_now.size != 1:
        raise ValueError("grid: must hold one momentum and one c_now (a plane of c_lag, lag)")
    if not 0.0 <= momentum[0] < 1.0:
        raise ValueError(f"grid: momentum must be in [0, 1), got {momentum[0]}")
    return float(momentum[0]), float(c_now[0])


def plot_phase_diagram(
    grid: StabilityGrid,
    *,
    lag_convention: Literal["mean", "paper"] = "mean",
    ax: Axes | None = None,
    point: tuple[float, float] | None = None,
) -> Figure:
    """Phase diagram in the (lag_steps, c_lag) plane of a :func:`stability_grid` result.

    ``grid`` comes from ``stability_grid(momentum, c_values[:, None], lags[None, :], ...)``:
    one momentum and c_now, c_lag down the rows, the refresh interval K or delay D across.
    Colours: exact regime. Solid line: exact boundary (rho = 1). Dashed: continuum boundary
    gamma = 0 with the chosen lag convention; dotted: continuum oscillation onset zeta = 1
    (docs/stability.md, "Grid and phase diagrams"). ``point`` (lag, c_lag) marks one setting
    with a star. Draws on ``ax`` when given, else on a new Figure; returns the Figure.
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    convention = lag_convention
    if convention not in ("mean", "paper"):
        raise ValueError(f"lag_convention: must be 'mean' or 'paper', got {convention!r}")
    beta, c_now = _plane(grid)
    lag_grid, c_grid = grid.lag_steps, grid.c_lag
    if ax is None:
        figure = _figure(6.0, 4.5)
        ax = figure.add_subplot()
    else:
        figure = ax.figure  # type: ignore[assignment]
    colours = ["#bbbbbb", "#8fd19e", "#ffd27f", "#f28e8e"]
    cmap = ListedColormap(colours)
    norm = BoundaryNorm([-1.5, -0.5, 0.5, 1.5, 2.5], cmap.N)
    ax.pcolormesh(lag_grid, c_grid, grid.regime_code, cmap=cmap, norm=norm, shading="nearest")
    ax.contour(lag_grid, c_grid, grid.spectral_radius, levels=[1.0], colors="black", linewidths=1.5)
    # continuum: gamma = (1 - beta) - c L, zeta from m = (1 + beta)/2 + c L^2 / 2, k = c + c_now
    if grid.lag_model == "delay" or convention == "paper":
        big_lag = lag_grid
    else:
        big_lag = (lag_grid - 1.0) / 2.0
    damping = (1.0 - beta) - c_grid * big_lag
    mass = (1.0 + beta) / 2.0 + c_grid * big_lag**2 / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        zeta = damping / (2.0 * np.sqrt(mass * (c_grid + c_now)))
    if damping.min() < 0.0 < damping.max():
        ax.contour(lag_grid, c_grid, damping, levels=[0.0], colors="tab:blue", linestyles="--")
    if np.nanmin(zeta) < 1.0 < np.nanmax(zeta):
        ax.contour(lag_grid, c_grid, zeta, levels=[1.0], colors="tab:purple", linestyles=":")
    c_min, c_max = float(c_grid.min()), float(c_grid.max())
    if c_min > 0.0 and c_max / c_min > 20.0:
        ax.set_yscale("log")
    if point is not None:
        ax.plot(*point, marker="*", ms=14, color="k", ls="none")
    ax.set_xlabel("refresh interval K" if grid.lag_model == "refresh" else "delay D")
    ax.set_ylabel("step stiffness c_lag = eta_eff kappa_lag")
    ax.set_title(f"momentum {beta:g}, c_now {c_now:g}")
    gamma_label = f"continuum gamma = 0 ({convention})"
    handles = [Patch(color=colours[i + 1], label=REGIMES[i]) for i in (0, 1, 2)] + [
        Line2D([], [], color="black", label="exact boundary (rho = 1)"),
        Line2D([], [], color="tab:blue", linestyle="--", label=gamma_label),
        Line2D([], [], color="tab:purple", linestyle=":", label="continuum zeta = 1"),
    ]
    # a fixed corner over the unstable region (large K and c_lag): loc="best" tests every quad
    # of the mesh against the legend box, ~0.7 s a panel
    ax.legend(handles=handles, fontsize="small", loc="upper right")
    return figure


def plot_phase_diagrams(grid: StabilityGrid, *, point: tuple[float, float] | None = None) -> Figure:
    """:func:`plot_phase_diagram` twice side by side, continuum lag "mean" then "paper"."""
    beta, c_now = _plane(grid)
    fig = _figure(12.0, 4.8)
    conventions: tuple[Literal["mean", "paper"], ...] = ("mean", "paper")
    for i, convention in enumerate(conventions):
        ax = fig.add_subplot(1, 2, i + 1)
        plot_phase_diagram(grid, lag_convention=convention, ax=ax, point=point)
        ax.set_title(f"momentum {beta:g}, c_now {c_now:g}; continuum lag '{convention}'")
    return fig
