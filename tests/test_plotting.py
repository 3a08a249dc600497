"""plotting: every figure is drawn from result objects, headless, and shows what it claims."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

import grpo_dynamics as gd

T = np.arange(1.0, 201.0)


@pytest.fixture(scope="module")
def run() -> gd.Run:
    rng = np.random.default_rng(0)
    reward = gd.trajectory(T, 0.1, 0.8, 30.0, 1.0) + 0.03 * rng.standard_normal(T.size)
    return gd.Run.from_arrays(T.astype(int), reward)


def _lines(fig: Figure) -> dict[str, np.ndarray]:
    return {line.get_label(): np.asarray(line.get_ydata()) for line in fig.axes[0].get_lines()}


def test_plot_fit_draws_each_result_and_its_residuals(run, tmp_path):
    t, r = run.series("reward")
    fits = {"oscillator": gd.fit(t, r), "exponential": gd.fit(t, r, "exponential")}
    fig = gd.plot_fit(fits, run, title="x")
    lines = _lines(fig)
    np.testing.assert_array_equal(lines["data"], r)
    dense = np.linspace(t.min(), t.max(), 600)
    np.testing.assert_allclose(lines["oscillator"], fits["oscillator"].predict(dense))
    residuals = {ln.get_label(): ln.get_ydata() for ln in fig.axes[1].get_lines()}
    np.testing.assert_allclose(residuals["exponential"], r - fits["exponential"].predict(t))
    # one FitResult alone is labelled by its model
    assert "oscillator" in _lines(gd.plot_fit(fits["oscillator"], run))
    path = gd.save_figure(fig, tmp_path / "sub" / "fit.png")
    assert path.stat().st_size > 10_000


def test_plot_forecast_takes_the_forecast_and_the_run(run):
    fc = gd.forecast(run, upto=80.0)
    fig = gd.plot_forecast(fc, run)
    lines = _lines(fig)
    np.testing.assert_allclose(lines["forecast"], fc.mean)
    assert lines["fitted data"].size == 80 and lines["held-out data"].size == T.size - 80
    if fc.plateau_identified:
        assert fc.plateau is not None
        np.testing.assert_allclose(lines["plateau"], fc.plateau.estimate)
    else:
        assert fc.plateau_bound is not None
        side, value = fc.plateau_bound
        np.testing.assert_allclose(lines[f"plateau {side} {value:.3g}"], value)


def test_plot_phase_diagram_takes_a_grid():
    c = np.geomspace(1e-3, 0.1, 30)
    lags = np.arange(1.0, 40.0)
    grid = gd.stability_grid(0.9, c[:, None], lags[None, :])
    fig = gd.plot_phase_diagram(grid, point=(4.0, 0.01))
    ax = fig.axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any("exact" in s for s in labels) and any("continuum" in s for s in labels)
    assert ax.get_yscale() == "log"
    pair = gd.plot_phase_diagrams(grid)
    assert len(pair.axes) >= 2 and "paper" in pair.axes[1].get_title()
    with pytest.raises(ValueError, match=r"^grid: must be 2-D"):
        gd.plot_phase_diagram(gd.stability_grid(0.9, c, 4))
    with pytest.raises(ValueError, match=r"^grid: must hold one momentum"):
        gd.plot_phase_diagram(gd.stability_grid([[0.5], [0.9]], c[:2, None], lags[None, :]))
