"""forecast: gain steps against an ODE solver; bands, plateaus and inputs on simulated runs.

References are independent of the code under test: scipy's ODE solver for the gain steps,
closed forms of the simulated curves, numpy means of the simulated data, binomial acceptance
regions for coverage counts.
"""

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

from grpo_dynamics import trajectory
from grpo_dynamics._curves import FAMILIES, fit_family_batch
from grpo_dynamics._forecast import CANDIDATES, Forecast, forecast, gain_step
from grpo_dynamics.io import Run


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
    with pytest.raises(ValueError, match="mu"):
        gain_step(0.5, 1.0, -0.5)


# --------------------------------------------------------------------------------------------
# simulated runs: closed-form mean curves plus Gaussian noise

N = 80
STEPS = np.arange(float(N))


def _sim(kind: str, seed: int, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(noisy rewards, true mean curve) of a sigmoid or saturating-exponential run."""
    rng = np.random.default_rng(seed)
    lo, hi = rng.uniform(0.05, 0.3), rng.uniform(0.6, 0.9)
    if kind == "sigmoid":
        k, mid = rng.uniform(0.08, 0.25), rng.uniform(15, 35)
        mean = lo + (hi - lo) / (1 + np.exp(-k * (STEPS - mid)))
    else:
        tau = rng.uniform(8, 30)
        mean = hi - (hi - lo) * np.exp(-STEPS / tau)
    return mean + noise * rng.standard_normal(N), mean


def test_inputs_arrays_dataframe_run_and_fraction_agree():
    r, _ = _sim("sigmoid", 0)
    a = forecast(STEPS, r, upto=39)
    frame = pd.DataFrame({"reward": r}, index=pd.Index(STEPS.astype(int), name="step"))
    b = forecast(frame, upto=39)
    c = forecast(frame.reset_index(), fraction=40 / N)
    d = forecast(Run.from_arrays(STEPS.astype(int), r), upto=39)
    assert a.end == b.end == c.end == d.end
    assert a.n_fit == 40 and a.upto == 39 and a.horizon == N - 1
    assert math.isclose(sum(a.weights.values()), 1.0) and set(a.weights) <= set(CANDIDATES)
    doc = a.to_dict()
    json.dumps(doc, allow_nan=False)
    assert doc["end"]["lower"] <= doc["end"]["estimate"] <= doc["end"]["upper"]
    assert "\n" not in repr(a) and len(repr(a)) < 300


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"upto": 2}, "upto"),
        ({"level": 1.5}, "level"),
        ({"upto": 40, "fraction": 0.5}, "upto"),
        ({"fraction": 0.0}, "fraction"),
        ({"column": "nope"}, "column"),
        ({"reward_range": (1.0, 0.0)}, "reward_range"),
        ({"reward_range": "0-1"}, "reward_range"),
        ({"candidates": ("level", "spline")}, "candidates"),
        ({"upto": 40, "horizon": 10.0}, "horizon"),
        ({"window": -1.0}, "window"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, name):
    frame = pd.DataFrame({"reward": _sim("sigmoid", 1)[0]}, index=pd.Index(STEPS.astype(int)))
    frame.index.name = "step"
    with pytest.raises(ValueError, match=f"^{name}: "):
        forecast(frame, **kwargs)


def test_last_level_alone_is_the_recent_mean():
    r, _ = _sim("exponential", 2)
    fc = forecast(STEPS, r, upto=49, candidates=("level",))
    assert fc.weights == {"level": 1.0}
    # the last 20 % of the 50 fitted points, computed directly
    assert fc.end.estimate == pytest.approx(float(np.mean(r[40:50])), abs=1e-12)


def _binomial_ok(hits: int, n: int, p: float) -> bool:
    # two-sided 99.9 % acceptance region of Binomial(n, p): fails only on a real miscalibration
    lo, hi = binom.ppf(0.0005, n, p), binom.ppf(0.9995, n, p)
    return bool(lo <= hits <= hi)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sigmoid", "exponential"])
def test_end_band_covers_at_near_nominal_rate(kind):
    """Fit the first half of simulated runs; the 90 % band of the mean over the last 8 logged
    points must cover the realised mean at a rate the binomial law allows for 0.9."""
    n_runs, window = 24, 8.0
    hits = 0
    for seed in range(n_runs):
        r, _ = _sim(kind, seed)
        fc = forecast(STEPS, r, upto=39, window=window, seed=seed)
        hits += fc.end.covers(float(np.mean(r[-8:])))
    assert _binomial_ok(hits, n_runs, 0.9), (kind, hits, n_runs)


def test_plateau_not_identified_while_still_rising():
    rng = np.random.default_rng(3)
    truth = 0.1 + 0.7 * (1 - np.exp(-STEPS / 150.0))  # far from its plateau 0.8 at step 79
    r = truth + 0.01 * rng.standard_normal(N)
    fc = forecast(STEPS, r)
    assert fc.progress == "rising"
    assert not fc.plateau_identified and fc.plateau is None
    assert fc.plateau_bound is not None and fc.plateau_bound[0] == "at least"
    # the one-sided bound sits at (just below) the current level, and below the true plateau
    assert fc.plateau_bound[1] <= float(np.mean(r[-16:])) <= 0.8
    assert fc.plateau_bound[1] > float(np.mean(r[-16:])) - 0.05
    assert fc.step_90 is None
    assert fc.to_dict()["plateau"] is None


def test_no_lower_bound_when_the_prefix_fit_overshoots():
    # the demo's underdamped run (closed form, docs/model.md, plus noise) seen up to step 100,
    # still rising towards its overshoot peak 0.93 at step ~130 and settling at 0.78: the
    # current level (0.86) is not a lower bound on the plateau, and the oscillator fitted to
    # the prefix says so (the old rule stated "at least 0.828")
    t = np.arange(1.0, 301.0)
    r_inf = 0.78
    truth = np.asarray(trajectory(t - 1.0, 0.15, r_inf, 30.0, 1.5))
    r = truth + np.random.default_rng(0).normal(0.0, 0.03, t.size)
    fc = forecast(t, r, upto=100)
    assert fc.progress == "rising" and not fc.plateau_identified
    assert fc.plateau_bound is None or fc.plateau_bound[1] <= r_inf
    assert any("overshoots" in w for w in fc.warnings)


def test_plateau_identified_after_saturation_and_step_90():
    rng = np.random.default_rng(4)
    steps = np.arange(200.0)
    tau = 15.0
    r = 0.8 - 0.6 * np.exp(-steps / tau) + 0.02 * rng.standard_normal(steps.size)
    fc = forecast(steps, r, horizon=400.0)
    assert fc.plateau_identified and fc.plateau is not None
    assert fc.plateau.covers(0.8)
    assert fc.plateau.upper - fc.plateau.lower < 0.1
    # 90 % of the gain of 0.2 + 0.6 (1 - e^{-t/tau}) is reached at tau ln 10 (closed form)
    assert fc.step_90 == pytest.approx(tau * math.log(10.0), abs=6.0)


def test_reward_range_is_respected():
    rng = np.random.default_rng(5)
    truth = 0.3 + 0.69 * (1 - np.exp(-STEPS / 60.0))  # heads for 0.99, near the top of [0, 1]
    r = truth + 0.03 * rng.standard_normal(N)
    free = forecast(STEPS, r, upto=39, horizon=300.0)
    held = forecast(STEPS, r, upto=39, horizon=300.0, reward_range=(0.0, 1.0))
    assert free.end.upper > 1.0  # without the range the band runs past the possible maximum
    assert held.end.upper <= 1.0 and np.all(held.upper <= 1.0) and np.all(held.lower >= 0.0)
    if held.plateau is not None:
        assert held.plateau.upper <= 1.0
    if held.plateau_bound is not None:
        assert held.plateau_bound[1] <= 1.0
    assert held.to_dict()["reward_range"] == [0.0, 1.0]


def test_dead_run_is_its_constant():
    fc = forecast(STEPS, np.full(N, -1.0), fraction=0.5)
    assert fc.end == (-1.0, -1.0, -1.0)
    assert fc.plateau_identified and fc.plateau == (-1.0, -1.0, -1.0)
    assert fc.progress == "flat" and fc.step_90 is None


def test_no_validated_candidate_falls_back_to_the_last_level():
    """Ten points and only the exponential: its 4-point first origin cannot be fitted, so
    nothing is validated and the forecast is the last level (the mean of the last 3 points),
    also when "level" was not among the candidates (this used to raise a broadcasting error)."""
    rng = np.random.default_rng(0)
    t = np.arange(10.0)
    y = 0.1 * t + 0.05 * rng.standard_normal(10)
    fc = forecast(t, y, candidates=("exponential",))
    assert fc.weights == {"level": 1.0}
    assert any("too few points" in w for w in fc.warnings)
    assert fc.end.estimate == pytest.approx(float(np.mean(y[-3:])), abs=1e-12)
    assert math.isfinite(fc.end.lower) and fc.end.lower < fc.end.estimate < fc.end.upper


def test_the_oscillator_at_mu_zero_is_not_a_second_exponential():
    """An oscillator fitted with mu held at 0 is the exponential (docs/model.md, "Fitting"):
    with the exponential among the candidates it must not count twice, so the forecast equals
    the one without it (docs/forecast.md, "Candidate curves"). Reference for mu = 0: the
    library's public fit on the raw prefix."""
    import grpo_dynamics as gd

    seen = set()
    for seed in range(6):
        r, _ = _sim("exponential", seed)
        both = forecast(STEPS, r, upto=39, candidates=("level", "exponential", "oscillator"))
        single = forecast(STEPS, r, upto=39, candidates=("level", "exponential"))
        alone = forecast(STEPS, r, upto=39, candidates=("level", "oscillator"))
        at_zero = float(gd.fit(STEPS[:40], r[:40], "oscillator").params["mu"]) == 0.0
        seen.add(at_zero)
        if at_zero:
            assert both.weights == single.weights and both.end == single.end
        else:
            assert "oscillator" in both.weights
        assert "oscillator" in alone.weights  # without the exponential it stays
    assert seen == {True, False}


def test_band_is_the_larger_of_validated_error_and_disagreement_not_their_sum():
    """The combined forecast's band (docs/forecast.md, "Bands"): a normal around the weighted
    mean whose variance is max(weighted max(parameter variance, drift x lead), candidates'
    weighted spread + parameter variance) plus the window noise. References: scipy's normal
    quantile and the two variances summed term by term. The old rule, a mixture of the
    candidates' normals each carrying the validated error, had the sum of the two as its
    variance (exact mixture variance): the disagreement counted twice."""
    from scipy.stats import norm

    from grpo_dynamics._forecast import _band

    w = np.array([0.5, 0.3, 0.2])
    means = np.array([1.0, 1.4, 0.7])
    par = np.array([0.01, 0.02, 0.005])
    z = float(norm.ppf(0.95))
    for drift_var, noise in ((0.5, 0.03), (0.001, 0.0)):  # validated error dominates / not
        mean, lo, hi = (float(v) for v in _band(means, par, drift_var, w, z, noise))
        terms = list(zip(w.tolist(), means.tolist(), par.tolist(), strict=True))
        centre = sum(wi * mi for wi, mi, _ in terms)
        validated = sum(wi * max(pi, drift_var) for wi, _, pi in terms)
        spread = sum(wi * ((mi - centre) ** 2 + pi) for wi, mi, pi in terms)
        half = z * math.sqrt(max(validated, spread) + noise)
        assert mean == pytest.approx(centre, rel=1e-12)
        assert (lo, hi) == pytest.approx((centre - half, centre + half), rel=1e-12)
        old_var = sum(wi * (max(pi, drift_var) + (mi - centre) ** 2) for wi, mi, pi in terms)
        if drift_var > max(par):  # the drift is in every candidate: it was counted twice
            assert ((hi - lo) / (2 * z)) ** 2 < old_var + noise - 0.05
        else:  # below every parameter variance there was nothing to count twice
            assert ((hi - lo) / (2 * z)) ** 2 == pytest.approx(old_var + noise, rel=1e-12)
    # column by column: a curve of K points
    grid = np.stack([means, means + 0.1])
    mean_k, lo_k, hi_k = _band(grid.T, np.stack([par, par]).T, np.array([0.5, 0.0]), w, z)
    assert mean_k.shape == lo_k.shape == hi_k.shape == (2,)
    assert lo_k[0] == pytest.approx(_band(means, par, 0.5, w, z)[1], rel=1e-12)
    assert hi_k[1] == pytest.approx(_band(means + 0.1, par, 0.0, w, z)[2], rel=1e-12)


def test_step_90_of_saturating_runs():
    """step_90 against the closed form of r0 + (r_inf - r0)(1 - e^{-t/tau}): 90 % of the gain
    from the first logged step is reached at t = -tau ln(0.1 (r_inf - r(1)) / (r_inf - r0))."""
    tau, steps = 25.0, np.arange(1.0, 241.0)
    mean = 0.8 - 0.6 * np.exp(-steps / tau)
    true_90 = -tau * math.log(0.1 * (0.8 - mean[0]) / 0.6)
    rel = []
    for seed in range(6):
        r = mean + 0.03 * np.random.default_rng(seed).standard_normal(steps.size)
        fc = forecast(steps, r, upto=150.0, reward_range=(0.0, 1.0))
        assert fc.step_90 is not None
        rel.append(fc.step_90 / true_90 - 1.0)
    assert float(np.median(np.abs(rel))) <= 0.1, rel


def test_result_is_frozen():
    fc = forecast(STEPS, _sim("sigmoid", 6)[0], upto=39)
    assert isinstance(fc, Forecast)
    with pytest.raises(AttributeError):
        fc.level = 0.5  # type: ignore[misc]


@settings(max_examples=10, deadline=None)
@given(
    kind=st.sampled_from(["sigmoid", "exponential"]),
    noise=st.floats(0.005, 0.2),
    fraction=st.floats(0.06, 1.0),
    seed=st.integers(0, 1000),
)
def test_forecast_is_well_formed_on_any_simulated_run(kind, noise, fraction, seed):
    r, _ = _sim(kind, seed, noise)
    fc = forecast(STEPS, r, fraction=fraction, seed=seed)
    assert fc.end.lower <= fc.end.estimate <= fc.end.upper or math.isclose(
        fc.end.lower, fc.end.upper
    )
    assert np.all(fc.lower <= fc.upper)
    assert math.isclose(sum(fc.weights.values()), 1.0)
    assert fc.plateau_identified == (fc.plateau is not None)
    json.dumps(fc.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("exponential", [1.0, 1.5, 3.0]),
        ("logistic", [-1.0, 1.2, 9.0, 0.4]),
        ("pow3", [1.0, 0.8, 0.7]),
        ("weibull", [1.0, -1.0, 2.5, 1.6]),
        ("mmf", [1.0, -1.0, 3.0, 1.5]),
    ],
)
def test_curve_families_recover_noiseless_curves(name, params):
    """The batched LM finds the generating parameters' curve on noiseless data, on the whole
    series and on a prefix, in one call; the limit is the generating asymptote."""
    fam = FAMILIES[name]
    x = np.linspace(0.0, 1.0, 60)
    u = x + 1.0 / 60
    p = np.array(params)
    z = fam.f(x, u, p)
    whole, part = fit_family_batch(name, x, u, [60, 45], z, -3.0, 3.0)
    for fitted, m in ((whole, 60), (part, 45)):
        assert fitted.ok
        np.testing.assert_allclose(fitted.predict(x[:m], u[:m]), z[:m], atol=1e-4)
    assert whole.asymptote == pytest.approx(p[fam.asymptote], abs=2e-2)


@pytest.mark.parametrize(("sd", "phi"), [(0.005, 0.0), (0.02, 0.0), (0.02, 0.5)])
def test_noise_is_measured_about_the_curve(sd, phi):
    """noise_sd is the marginal sd of the logged values about the curve (docs/forecast.md,
    "Bands"): on a smooth sigmoid rise plus white or AR(1) noise of known marginal sd it
    matches that sd, however steep the rise is compared with the noise (first differences
    would read the trend as noise and its steps as AR(1) correlation)."""
    steps = np.arange(150.0)
    truth = 0.2 + 0.6 / (1 + np.exp(-(steps - 60.0) / 15.0))
    ratios = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        e = rng.standard_normal(steps.size) * sd * math.sqrt(1 - phi**2)
        for i in range(1, steps.size):
            e[i] += phi * e[i - 1]
        ratios.append(forecast(steps, truth + e).noise_sd / sd)
    assert 0.8 <= float(np.median(ratios)) <= 1.2, ratios
