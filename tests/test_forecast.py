"""forecast: gain steps against an ODE solver, coverage of the bands on simulated runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp
from scipy.stats import binom

from grpo_dynamics.forecast import forecast, gain_step, trajectory_fn


def _ode_first_crossing(fraction: float, tau: float, mu: float) -> float:
    """First t with (r - r0)/(r_inf - r0) = fraction, from the ODE mu tau^2 x'' + tau x' + x = 0."""
    if mu == 0.0:
        return -tau * math.log(1 - fraction)

    def rhs(_t, y):
        return [y[1], -(tau * y[1] + y[0]) / (mu * tau * tau)]

    def event(_t, y):
        return y[0] - (1 - fraction)  # x0 = 1: the gain fraction reached is 1 - x

    event.terminal = True
    event.direction = -1
    sol = solve_ivp(
        rhs,
        (0, 200 * tau * (1 + mu)),
        [1.0, 0.0],
        method="DOP853",
        events=event,
        rtol=1e-11,
        atol=1e-13,
    )
    return float(sol.t_events[0][0])


@settings(max_examples=25, deadline=None)
@given(
    fraction=st.sampled_from([0.5, 0.8, 0.9, 0.95]),
    tau=st.floats(0.5, 200.0),
    mu=st.one_of(st.just(0.0), st.floats(0.02, 0.24), st.floats(0.26, 30.0)),
)
def test_gain_step_matches_ode_event(fraction, tau, mu):
    assert gain_step(fraction, tau, mu) == pytest.approx(
        _ode_first_crossing(fraction, tau, mu), rel=1e-6
    )


def test_gain_step_offset_and_bad_input():
    assert gain_step(0.9, 10.0, 0.0, t0=5.0) == pytest.approx(5.0 + 10.0 * math.log(10.0))
    with pytest.raises(ValueError, match="fraction"):
        gain_step(1.0, 10.0, 0.5)
    with pytest.raises(ValueError, match="tau"):
        gain_step(0.5, -1.0, 0.5)


TRUTH = {"r0": 0.1, "r_inf": 0.8, "tau": 30.0, "mu": 1.0}
STEPS = np.arange(0.0, 400.0)


def _noisy_run(seed: int, noise: float = 0.05) -> np.ndarray:
    clean = np.asarray(trajectory_fn()(STEPS, **TRUTH), dtype=float)
    return clean + noise * np.random.default_rng(seed).standard_normal(STEPS.size)


def test_inputs_arrays_dataframe_and_fraction_agree():
    r = _noisy_run(0)
    a = forecast(STEPS, r, upto=150, n_samples=200)
    frame = pd.DataFrame({"reward": r}, index=pd.Index(STEPS, name="step"))
    b = forecast(frame, upto=150, n_samples=200)
    c = forecast(frame.reset_index(), fraction=151 / 400, n_samples=200)
    assert a.r_inf == b.r_inf == c.r_inf
    assert a.n_fit == 151 and a.upto == 150
    d = a.to_dict()
    assert set(d["gain_steps"]) == {"0.8", "0.9", "0.95"}
    assert d["r_inf"]["lower"] <= d["r_inf"]["estimate"] <= d["r_inf"]["upper"]
    np.testing.assert_allclose(a.predict(STEPS[:5]), a.fit.predict(STEPS[:5]))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"upto": 3}, "upto"),
        ({"model": "logistic"}, "model"),
        ({"method": "magic"}, "method"),
        ({"level": 1.5}, "level"),
        ({"gains": (0.5, 1.0)}, "gains"),
        ({"upto": 100, "fraction": 0.5}, "upto"),
        ({"fraction": 0.0}, "fraction"),
        ({"column": "nope"}, "column"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, name):
    frame = pd.DataFrame({"reward": _noisy_run(1)}, index=pd.Index(STEPS, name="step"))
    with pytest.raises(ValueError, match=name):
        forecast(frame, **kwargs)


def _binomial_ok(hits: int, n: int, p: float) -> bool:
    # two-sided 99.9 % acceptance region of Binomial(n, p): fails only on a real miscalibration
    lo, hi = binom.ppf(0.0005, n, p), binom.ppf(0.9995, n, p)
    return bool(lo <= hits <= hi)


@pytest.mark.slow
def test_band_covers_truth_at_nominal_rate():
    """Honest evaluation of the default (bootstrap) band: fit only the first 121 of 400 steps
    (up to the first overshoot), then count
    how often the 90 % bands contain the true plateau, the true 90 %-gain step and the true
    curve at the last held-out step."""
    n_runs, level = 60, 0.9
    step90 = gain_step(0.9, TRUTH["tau"], TRUTH["mu"])
    last_true = float(trajectory_fn()(np.array([399.0]), **TRUTH)[0])
    hits = {"r_inf": 0, "step90": 0, "curve": 0}
    for seed in range(n_runs):
        fc = forecast(STEPS, _noisy_run(seed), upto=120, level=level, n_samples=200, seed=seed)
        hits["r_inf"] += fc.r_inf.covers(TRUTH["r_inf"])
        hits["step90"] += fc.gain_steps[0.9].covers(step90)
        hits["curve"] += fc.lower[-1] <= last_true <= fc.upper[-1]
    for key, count in hits.items():
        assert _binomial_ok(count, n_runs, level), (key, count, n_runs)


def test_bootstrap_band_agrees_with_covariance_band():
    r = _noisy_run(3)
    cov = forecast(STEPS, r, upto=200, method="covariance", n_samples=400)
    boot = forecast(STEPS, r, upto=200, method="bootstrap", n_samples=100)
    # same point estimate; once the overshoot is seen both bands have about the same width
    assert boot.r_inf.estimate == cov.r_inf.estimate
    width_cov = cov.r_inf.upper - cov.r_inf.lower
    width_boot = boot.r_inf.upper - boot.r_inf.lower
    assert 0.5 < width_boot / width_cov < 2.0


def test_warnings_say_what_the_fitted_part_cannot_tell():
    good = forecast(STEPS, _noisy_run(4), upto=150, n_samples=100)
    assert good.warnings == [] and good.to_dict()["warnings"] == []
    flat = 0.4 + 0.05 * np.random.default_rng(5).standard_normal(STEPS.size)
    fc = forecast(STEPS, flat, upto=150, n_samples=100)
    assert any("no trend" in w for w in fc.warnings)
    assert fc.to_dict()["fit_status"] == str(fc.fit.status)


@settings(max_examples=12, deadline=None)
@given(
    tau=st.floats(5.0, 80.0),
    mu=st.one_of(st.just(0.0), st.floats(0.05, 5.0)),
    noise=st.floats(0.005, 0.1),
    fraction=st.floats(0.2, 1.0),
    seed=st.integers(0, 1000),
)
def test_forecast_is_well_formed_on_any_simulated_run(tau, mu, noise, fraction, seed):
    clean = np.asarray(trajectory_fn()(STEPS, 0.1, 0.7, tau, mu), dtype=float)
    r = clean + noise * np.random.default_rng(seed).standard_normal(STEPS.size)
    fc = forecast(STEPS, r, fraction=fraction, n_samples=60, seed=seed)
    for iv in (fc.r0, fc.r_inf, fc.tau, fc.mu, *fc.gain_steps.values()):
        assert iv.lower <= iv.upper
    assert np.all(fc.lower <= fc.upper)
    json.dumps(fc.to_dict(), allow_nan=False)
