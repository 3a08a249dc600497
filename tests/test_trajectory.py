"""The closed-form trajectory against independent references: scipy's ODE solvers, the exact
exponential, central differences, and its own limits (continuity across regimes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

import grpo_dynamics as gd
from grpo_dynamics import _core

SPECIAL_MU = [0.0, 1e-12, 1e-6, 0.01, 3 / 16, 0.25 - 1e-12, 0.25, 0.25 + 1e-12, 0.5, 3.0, 100.0]


def ode_reference(t, r0, r_inf, tau, mu, t0=0.0, v0=0.0, method=None):
    """mu tau^2 x'' + tau x' + x = 0 integrated numerically from (x0, v0) at t0 (explicit DOP853
    unless the problem is stiff, mu < 1e-3, where the implicit Radau is the right reference)."""
    if method is None:
        method = "DOP853" if mu >= 1e-3 else "Radau"

    def rhs(_s, y):
        return [y[1], -(tau * y[1] + y[0]) / (mu * tau * tau)]

    def jac(_s, _y):
        return [[0.0, 1.0], [-1.0 / (mu * tau * tau), -1.0 / (mu * tau)]]

    s = np.asarray(t) - t0
    # Tightest tolerances scipy accepts; the implicit solver is only asked for what it can give.
    options = (
        {"rtol": 2.5e-14, "atol": 1e-18}
        if method == "DOP853"
        else {"jac": jac, "rtol": 1e-12, "atol": 1e-15}
    )
    sol = solve_ivp(rhs, (0.0, float(s[-1])), [r0 - r_inf, v0], method=method, t_eval=s, **options)
    assert sol.success, sol.message
    return r_inf + sol.y[0]


def scale(r0, r_inf, v0=0.0, tau=1.0):
    # Reward scale for relative errors; the floor keeps a vanishing amplitude from demanding
    # more absolute accuracy (1e-12) than the ODE reference itself delivers.
    return max(abs(r0), abs(r_inf), abs(r0 - r_inf), abs(v0 * tau), 1e-2)


@pytest.mark.parametrize("mu", [m for m in SPECIAL_MU if m >= 1e-3])
@pytest.mark.parametrize("v0", [0.0, 0.02])
def test_matches_dop853(mu, v0):
    r0, r_inf, tau = 0.15, 0.83, 12.0
    t = np.linspace(0.0, 10 * tau * max(1.0, math.sqrt(mu)), 400)
    ref = ode_reference(t, r0, r_inf, tau, mu, v0=v0)
    got = gd.trajectory(t, r0, r_inf, tau, mu, v0=v0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * scale(r0, r_inf, v0, tau))


@pytest.mark.parametrize("mu", [1e-12, 1e-9])
def test_stiff_limit_matches_the_exponential(mu):
    r0, r_inf, tau = 0.9, 0.1, 5.0
    t = np.linspace(0.0, 40.0, 300)
    got = gd.trajectory(t, r0, r_inf, tau, mu)
    exponential = r_inf + (r0 - r_inf) * np.exp(-t / tau)
    # Outside the O(mu tau) boundary layer the oscillator is O(mu) away from the exponential.
    np.testing.assert_allclose(got, exponential, rtol=0, atol=10 * mu)


def test_stiff_case_matches_implicit_solver():
    r0, r_inf, tau, mu = 0.9, 0.1, 5.0, 1e-5
    t = np.linspace(0.0, 20.0, 100)
    radau = ode_reference(t, r0, r_inf, tau, mu, v0=0.01, method="Radau")
    np.testing.assert_allclose(gd.trajectory(t, r0, r_inf, tau, mu, v0=0.01), radau, atol=1e-9)


def test_mu_zero_is_exactly_the_exponential():
    t = np.linspace(0, 300, 1001)
    got = gd.trajectory(t, 0.2, 0.9, 37.0, 0.0, v0=5.0)
    np.testing.assert_allclose(got, 0.9 + (0.2 - 0.9) * np.exp(-t / 37.0), rtol=1e-15, atol=1e-16)


def test_critical_and_oscillatory_closed_forms():
    """Against docs/model.md §4's regime formulas written out in NumPy."""
    t = np.linspace(0, 60, 500)
    r0, r_inf, tau = 0.1, 0.7, 6.0
    x0 = r0 - r_inf
    critical = r_inf + x0 * np.exp(-2 * t / tau) * (1 + 2 * t / tau)
    np.testing.assert_allclose(gd.trajectory(t, r0, r_inf, tau, 0.25), critical, atol=1e-15)
    mu = 2.0
    a = 1 / (2 * mu * tau)
    w = math.sqrt(4 * mu - 1) / (2 * mu * tau)
    oscillatory = r_inf + x0 * np.exp(-a * t) * (np.cos(w * t) + a / w * np.sin(w * t))
    np.testing.assert_allclose(gd.trajectory(t, r0, r_inf, tau, mu), oscillatory, atol=1e-14)
    mu = 0.1
    q = math.sqrt(1 - 4 * mu)
    s1, s2 = -2 / (tau * (1 + q)), -(1 + q) / (2 * mu * tau)
    over = r_inf + x0 * (s2 * np.exp(s1 * t) - s1 * np.exp(s2 * t)) / (s2 - s1)
    np.testing.assert_allclose(gd.trajectory(t, r0, r_inf, tau, mu), over, atol=1e-14)


params = st.fixed_dictionaries(
    {
        "r0": st.floats(-2, 2),
        "r_inf": st.floats(-2, 2),
        "tau": st.floats(0.5, 200),
        "mu": st.one_of(st.sampled_from(SPECIAL_MU[3:]), st.floats(1e-3, 50)),
        "t0": st.floats(-5, 5),
        "v0": st.floats(-0.05, 0.05),
    }
)


# 30 examples (60 before): each integrates an ODE reference at tight tolerance; the fixed
# regime grid of test_matches_dop853 and the closed forms below cover the same property exactly
@settings(max_examples=30, deadline=None)
@given(p=params)
def test_random_parameters_match_dop853(p):
    # A vanishing amplitude says nothing about accuracy and breaks the ODE reference itself
    # (scipy divides by an underflowed norm); the linearity test below covers it.
    assume(abs(p["r0"] - p["r_inf"]) + abs(p["v0"]) * p["tau"] > 1e-3)
    t = p["t0"] + np.linspace(0.0, 8 * p["tau"] * max(1.0, math.sqrt(p["mu"])), 120)
    ref = ode_reference(t, **p)
    got = gd.trajectory(t, **p)
    np.testing.assert_allclose(
        got, ref, rtol=0, atol=1e-10 * scale(p["r0"], p["r_inf"], p["v0"], p["tau"])
    )


@settings(max_examples=40, deadline=None)
@given(p=params, amplitude=st.floats(1e-300, 1e3), velocity=st.floats(-1e3, 1e3))
def test_deviation_is_linear_in_the_initial_state(p, amplitude, velocity):
    """x = r - r_inf is linear in (x0, v0): tiny and huge amplitudes scale exactly."""
    t = p["t0"] + np.linspace(0.0, 8 * p["tau"], 50)
    base = {**p, "r_inf": 0.0}
    unit_displacement = gd.trajectory(t, **{**base, "r0": 1.0, "v0": 0.0})
    unit_velocity = gd.trajectory(t, **{**base, "r0": 0.0, "v0": 1.0})
    got = gd.trajectory(t, **{**base, "r0": amplitude, "v0": velocity * amplitude})
    expected = amplitude * (unit_displacement + velocity * unit_velocity)
    scale_of = amplitude * (1 + abs(velocity) * p["tau"])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14 * scale_of)


def central_difference(t, p, name, rel=1e-6):
    base = dict(p)
    h = rel * max(1.0, abs(base[name]))
    if name == "mu":
        h = min(h, 0.5 * base["mu"])
    plus, minus = dict(base), dict(base)
    plus[name] += h
    minus[name] -= h
    return (gd.trajectory(t, **plus) - gd.trajectory(t, **minus)) / (2 * h), h


@settings(max_examples=60, deadline=None)
@given(p=params)
def test_jacobian_matches_central_differences(p):
    # Keep t away from t0, where the held-at-r0 start makes r(t) non-smooth in t0.
    t = p["t0"] + np.linspace(0.05, 6, 80) * p["tau"]
    jac = gd.trajectory_jacobian(t, **p)
    assert jac.shape == (t.size, 6)
    for j, name in enumerate(gd.JACOBIAN_PARAMS):
        numeric, h = central_difference(t, p, name)
        # Central-difference truncation (h^2 r''') plus round-off (eps * |r| / h).
        tol = 1e-6 * (1 + np.max(np.abs(numeric))) + 1e-15 * scale(p["r0"], p["r_inf"]) / h
        np.testing.assert_allclose(jac[:, j], numeric, rtol=0, atol=tol, err_msg=name)


def test_mu_column_at_mu_zero_is_the_one_sided_derivative():
    t = np.linspace(0.5, 40, 50)
    p = dict(r0=0.1, r_inf=0.9, tau=5.0, mu=0.0)
    h = 1e-7
    numeric = (gd.trajectory(t, **{**p, "mu": h}) - gd.trajectory(t, **p)) / h
    np.testing.assert_allclose(gd.trajectory_jacobian(t, **p)[:, 3], numeric, atol=1e-5)
    # And equals its analytic limit x0 (1 - u) e^{-u}.
    u = t / 5.0
    np.testing.assert_allclose(
        gd.trajectory_jacobian(t, **p)[:, 3], (0.1 - 0.9) * (1 - u) * np.exp(-u), atol=1e-14
    )


@settings(max_examples=50, deadline=None)
@given(
    r0=st.floats(-1, 1),
    r_inf=st.floats(-1, 1),
    tau=st.floats(0.5, 100),
    v0=st.floats(-0.1, 0.1),
    mu_switch=st.sampled_from([0.25, 3 / 16]),
    delta=st.floats(1e-13, 1e-9),
)
def test_continuity_across_critical_point_and_form_switch(r0, r_inf, tau, v0, mu_switch, delta):
    t = np.linspace(0, 10 * tau, 60)
    below = gd.trajectory_jacobian(t, r0, r_inf, tau, mu_switch - delta, v0=v0)
    above = gd.trajectory_jacobian(t, r0, r_inf, tau, mu_switch + delta, v0=v0)
    at = gd.trajectory_jacobian(t, r0, r_inf, tau, mu_switch, v0=v0)
    # Each column is Lipschitz in mu: a jump would show as an O(1) difference.
    bound = 1e3 * delta * (1 + abs(r0 - r_inf) + abs(v0) * tau) + 1e-12 * (1 + abs(v0) * tau)
    np.testing.assert_allclose(below, at, rtol=0, atol=bound * (1 + tau))
    np.testing.assert_allclose(above, at, rtol=0, atol=bound * (1 + tau))
    values = [
        gd.trajectory(t, r0, r_inf, tau, m, v0=v0) for m in (mu_switch - delta, mu_switch + delta)
    ]
    np.testing.assert_allclose(values[0], values[1], rtol=0, atol=bound)


@settings(max_examples=40, deadline=None)
@given(
    r0=st.floats(-1, 1),
    r_inf=st.floats(-1, 1),
    tau=st.floats(0.5, 100),
    mu=st.floats(1e-300, 1e-14),
)
def test_continuity_as_mu_goes_to_zero(r0, r_inf, tau, mu):
    # Outside the boundary layer of width ~ mu tau, value and every column tend to mu = 0's.
    t = np.linspace(0.01, 10, 50) * tau
    np.testing.assert_allclose(
        gd.trajectory_jacobian(t, r0, r_inf, tau, mu),
        gd.trajectory_jacobian(t, r0, r_inf, tau, 0.0),
        rtol=0,
        atol=1e-12,
    )


@pytest.mark.parametrize(
    ("tau", "mu", "t_max"),
    [
        (1e-8, 0.0, 1e8),
        (1e-8, 1e-300, 1e8),
        (1e-8, 1e12, 1e8),
        (1e8, 1e-200, 1e3),
        (1.0, 0.25, 1e12),
        (1.0, 0.1875, 1e15),
        (1e-300, 5.0, 1e300),
        (1e300, 1e-300, 1.0),
    ],
)
def test_overflow_free(tau, mu, t_max):
    t = np.concatenate([[0.0], np.geomspace(1e-12, t_max, 200)])
    with np.errstate(all="raise"):
        values = gd.trajectory(t, 0.0, 1.0, tau, mu, v0=0.3)
        jac = gd.trajectory_jacobian(t, 0.0, 1.0, tau, mu, v0=0.3)
    assert np.all(np.isfinite(values))
    assert np.all(np.isfinite(jac))


@pytest.mark.parametrize("mu", SPECIAL_MU)
def test_uniform_grid_recurrence_equals_direct_evaluation(mu):
    t_first, dt, n = -3.0, 0.37, 2000
    t = t_first + dt * np.arange(n)
    value, jac = _core.trajectory_uniform(t_first, dt, n, 0.3, 0.95, 25.0, mu, 0.0, 0.004)
    np.testing.assert_allclose(
        value, gd.trajectory(t, 0.3, 0.95, 25.0, mu, v0=0.004), rtol=0, atol=1e-13
    )
    np.testing.assert_allclose(
        jac, gd.trajectory_jacobian(t, 0.3, 0.95, 25.0, mu, v0=0.004), rtol=0, atol=1e-11
    )


def test_before_t0_the_reward_is_held():
    t = np.array([0.0, 4.0, 9.999])
    np.testing.assert_array_equal(gd.trajectory(t, 0.4, 0.9, 3.0, 1.0, t0=10.0, v0=1.0), 0.4)
    jac = gd.trajectory_jacobian(t, 0.4, 0.9, 3.0, 1.0, t0=10.0)
    np.testing.assert_array_equal(jac, np.tile([1.0, 0, 0, 0, 0, 0], (3, 1)))


@settings(max_examples=100, deadline=None)
@given(tau=st.floats(1e-3, 1e3), mu=st.floats(1e-6, 1e3), k=st.floats(1e-3, 1e3))
def test_parametrizations_round_trip(tau, mu, k):
    m, g, kk = gd.shape_to_physical(tau, mu, stiffness=k)
    assert kk == k
    tau2, mu2 = gd.physical_to_shape(m, g, kk)
    assert tau2 == pytest.approx(tau, rel=1e-13) and mu2 == pytest.approx(mu, rel=1e-12)
    omega0, zeta = gd.shape_to_frequency(tau, mu)
    assert omega0 == pytest.approx(math.sqrt(kk / m), rel=1e-12)
    assert zeta == pytest.approx(g / (2 * math.sqrt(m * kk)), rel=1e-12)
    tau3, mu3 = gd.frequency_to_shape(omega0, zeta)
    assert tau3 == pytest.approx(tau, rel=1e-12) and mu3 == pytest.approx(mu, rel=1e-12)


def test_physical_trajectory_solves_the_physical_ode():
    m, gamma, k = 3.0, 0.8, 0.05
    tau, mu = gd.physical_to_shape(m, gamma, k)
    t = np.linspace(0, 200, 300)
    sol = solve_ivp(
        lambda _s, y: [y[1], -(gamma * y[1] + k * y[0]) / m],
        (0, 200),
        [-1.0, 0.0],
        method="DOP853",
        rtol=1e-13,
        atol=1e-15,
        t_eval=t,
    )
    np.testing.assert_allclose(gd.trajectory(t, -1.0, 0.0, tau, mu), sol.y[0], atol=1e-10)


def test_regime_names():
    assert gd.regime(0.0) == "overdamped"
    assert gd.regime(0.2499) == "overdamped"
    assert gd.regime(0.25) == "critical"
    assert gd.regime(0.2501) == "oscillatory"
    assert gd.regime(0.2501, tol=1e-3) == "critical"
    assert gd.shape_to_frequency(2.0, 0.0) == (math.inf, math.inf)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"tau": 0.0}, "tau"),
        ({"tau": -1.0}, "tau"),
        ({"tau": math.nan}, "tau"),
        ({"mu": -0.1}, "mu"),
        ({"mu": math.inf}, "mu"),
        ({"r0": math.nan}, "r0"),
        ({"r_inf": math.inf}, "r_inf"),
        ({"t0": math.nan}, "t0"),
        ({"v0": math.nan}, "v0"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(kwargs, name):
    p = {"r0": 0.0, "r_inf": 1.0, "tau": 2.0, "mu": 0.5, **kwargs}
    with pytest.raises(ValueError, match=name):
        gd.trajectory([0.0, 1.0], **p)
    with pytest.raises(ValueError, match=name):
        gd.trajectory_jacobian([0.0, 1.0], **p)


def test_bad_times_raise_value_error():
    with pytest.raises(ValueError, match="t must be finite"):
        gd.trajectory([0.0, math.nan], 0, 1, 2, 0.5)
    with pytest.raises(ValueError, match="1-D"):
        gd.trajectory(np.zeros((2, 2)), 0, 1, 2, 0.5)
    # The compiled core validates on its own too (the check crosses the C++ boundary).
    with pytest.raises(ValueError, match="t: must be finite"):
        _core.trajectory(np.array([0.0, np.inf]), 0, 1, 2, 0.5)
    with pytest.raises(ValueError, match="dt"):
        _core.trajectory_uniform(0.0, -1.0, 5, 0, 1, 2, 0.5)
    with pytest.raises(ValueError, match="conversion|mass|damping"):
        gd.physical_to_shape(-1.0, 1.0, 1.0)


# ---------------------------------------------------------------------------------------------
# many curves at once (_core.trajectory_rows: fit_many's identification evaluates every fit)


def _rows_case(seed=5):
    """Rows across the regimes (mu = 0, tiny, near/at 1/4, oscillatory, huge) and times that
    start before t0, each row on its own times."""
    rng = np.random.default_rng(seed)
    params = np.array(
        [
            [rng.uniform(-1, 1), rng.uniform(-1, 1), tau, mu]
            for mu in SPECIAL_MU + [1e4]
            for tau in (0.3, 25.0, 800.0)
        ]
    )
    t = np.sort(rng.uniform(-40.0, 2500.0, (params.shape[0], 37)), axis=1)
    return params, t


@pytest.mark.parametrize("threads", [1, 2, 0])
def test_trajectory_rows_is_the_trajectory_of_each_row(threads):
    params, t = _rows_case()
    t0 = 3.0
    values = _core.trajectory_rows(params, t, t0, threads)
    assert values.shape == t.shape and values.dtype == np.float64
    for i, (r0, r_inf, tau, mu) in enumerate(params):
        np.testing.assert_array_equal(values[i], gd.trajectory(t[i], r0, r_inf, tau, mu, t0=t0))
    # before t0: held at r0 (the model starts from rest)
    before = t < t0
    assert before.any()
    np.testing.assert_array_equal(values[before], np.broadcast_to(params[:, :1], t.shape)[before])


def test_trajectory_rows_against_independent_references():
    """Three columns are the exponential (mu = 0): the exact exp; an oscillatory and an
    overdamped row against scipy's ODE solver."""
    rng = np.random.default_rng(6)
    p3 = np.column_stack([rng.uniform(-1, 1, 20), rng.uniform(-1, 1, 20), rng.uniform(1, 300, 20)])
    t = np.sort(rng.uniform(0.0, 1000.0, (20, 50)), axis=1)
    exact = p3[:, 1:2] + (p3[:, :1] - p3[:, 1:2]) * np.exp(-t / p3[:, 2:3])
    np.testing.assert_allclose(_core.trajectory_rows(p3, t), exact, rtol=0, atol=1e-14)
    grid = np.linspace(0.0, 300.0, 61)
    params = np.array([[0.1, 0.8, 20.0, 1.5], [0.1, 0.8, 20.0, 0.1]])
    values = _core.trajectory_rows(params, np.vstack([grid, grid]))
    for row, p in zip(values, params, strict=True):
        np.testing.assert_allclose(row, ode_reference(grid, *p), rtol=0, atol=1e-10)


def test_trajectory_rows_non_finite_or_invalid_rows_are_nan():
    params, t = _rows_case()
    bad = {
        1: [math.nan, 0.5, 2.0, 0.1],
        4: [0.0, math.inf, 2.0, 0.1],
        7: [0.0, 0.5, math.nan, 0.1],
        9: [0.0, 0.5, 2.0, -math.inf],
        12: [0.0, 0.5, 0.0, 0.1],  # tau must be > 0
        15: [0.0, 0.5, 2.0, -0.1],  # mu must be >= 0
    }
    for i, row in bad.items():
        params[i] = row
    t[20, 5] = math.nan
    values = _core.trajectory_rows(params, t, 0.0, 2)
    assert np.isnan(values[list(bad)]).all()
    good = np.setdiff1d(np.arange(params.shape[0]), list(bad))
    assert np.isfinite(values[good][:, :]).sum() == good.size * t.shape[1] - 1
    assert math.isnan(values[20, 5])
    # infinite times are the limits: r0 long before the start, the plateau long after it
    inf_t = np.array([[-math.inf, -1.0, math.inf]])
    np.testing.assert_array_equal(
        _core.trajectory_rows(np.array([[0.2, 0.9, 5.0, 0.7]]), inf_t), [[0.2, 0.2, 0.9]]
    )


def test_trajectory_rows_accepts_integer_input_and_empty_batches():
    np.testing.assert_array_equal(
        _core.trajectory_rows([[0, 1, 2]], [[0, 1]]),
        [gd.trajectory([0.0, 1.0], 0.0, 1.0, 2.0, 0.0)],
    )
    assert _core.trajectory_rows(np.zeros((0, 4)), np.zeros((0, 7))).shape == (0, 7)
    assert _core.trajectory_rows(np.ones((3, 4)), np.zeros((3, 0))).shape == (3, 0)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((np.ones((2, 2)), np.zeros((2, 3))), "params"),
        ((np.ones((2, 5)), np.zeros((2, 3))), "params"),
        ((np.ones(4), np.zeros((1, 3))), "params"),
        ((np.ones((2, 4)), np.zeros((3, 3))), "t"),
        ((np.ones((2, 4)), np.zeros(3)), "t"),
        ((np.ones((2, 4)), np.zeros((2, 3, 1))), "t"),
        ((np.array([["a", "b", "c"]]), np.zeros((1, 3))), "params"),
        ((np.ones((1, 3), dtype=complex), np.zeros((1, 3))), "params"),
        ((np.ones((1, 3)), np.zeros((1, 3), dtype=bool)), "t"),
        ((np.ones((1, 3)), None), "t"),
        ((None, np.zeros((1, 3))), "params"),
        ((np.ones((1, 3)), [[0.0, "x"]]), "t"),
        ((np.ones((1, 3)), np.zeros((1, 3)), math.nan), "t0"),
        ((np.ones((1, 3)), np.zeros((1, 3)), 0.0, -1), "threads"),
        ((np.ones((1, 3)), np.zeros((1, 3)), 0.0, True), "threads"),
    ],
)
def test_trajectory_rows_bad_input_is_a_value_error_naming_the_argument(args, name):
    with pytest.raises(ValueError, match=f"^{name}: must be"):
        _core.trajectory_rows(*args)
