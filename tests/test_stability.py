"""Stability and eigenvalue analysis (docs/stability.md) against independent references:
numpy.linalg.eigvals of matrices built here step by step, scipy's Lyapunov solver, and direct
simulation of the recurrence
    x_{t+1} = x_t + beta (x_t - x_{t-1}) - c_lag x_{l(t)} - c_now x_t + e_t.
"""

from __future__ import annotations

import decimal
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import scipy.linalg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grpo_dynamics as gd
from grpo_dynamics import _core
from grpo_dynamics._stability import (
    Hyperparameters,
    continuum,
    critical_delay,
    critical_learning_rate,
    critical_refresh_interval,
    oscillation_onset,
    stability,
    stability_grid,
    stationary_variance,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------
# Independent references, written from docs/model.md §2 without the library.


def simulate(beta, c_lag, c_now, steps, refresh_interval=1, delay=0, noise=None, x0=1.0):
    """Plain scalar recursion. History before t = 0 is x0 (start from rest: empty momentum).

    Without noise the recursion is linear, so the whole stored history may be rescaled by one
    factor to stay inside the float range; ratios between times (all the tests use) are kept.
    """
    x = np.empty(steps + 1)
    x[0] = x0
    before = x0  # the history before t = 0, rescaled together with x
    for t in range(steps):
        previous = x[t - 1] if t >= 1 else before
        if delay > 0:
            lagged = x[t - delay] if t >= delay else before
        else:
            lagged = x[refresh_interval * (t // refresh_interval)]
        e = 0.0 if noise is None else noise[t]
        x[t + 1] = x[t] + beta * (x[t] - previous) - c_lag * lagged - c_now * x[t] + e
        size = abs(x[t + 1])
        if noise is None and (size > 1e100 or 0 < size < 1e-100):
            x[: t + 2] /= size
            before /= size
    return x


def envelope_rate(x, window):
    """Per-step log growth of max|x| between two late windows (transients excluded)."""
    n = x.size
    early = np.max(np.abs(x[n // 2 : n // 2 + window]))
    late = np.max(np.abs(x[n - window :]))
    if early == 0.0 or late == 0.0:  # one end underflowed after rescaling: beyond float range
        return math.inf if late > 0.0 else -math.inf
    return (math.log(late) - math.log(early)) / (n - window - n // 2)


def cycle_by_multiplication(beta, c_lag, c_now, k):
    """Refresh cycle on the augmented state (x_t, x_{t-1}, anchor): reset the anchor to x_t at
    the refresh, then K per-step affine maps; returns the 3x3 product and its noise column."""
    reset = np.array([[1.0, 0, 0], [0, 1, 0], [1, 0, 0]])
    step = np.array([[1 + beta - c_now, -beta, -c_lag], [1, 0, 0], [0, 0, 1]])
    product = reset.copy()
    noise_gain = np.zeros(3)
    for _ in range(k):
        product = step @ product
        noise_gain = step @ noise_gain + np.array([1.0, 0, 0])  # e held for the whole cycle
    return product, noise_gain


def delay_state_matrix(beta, c_lag, c_now, delay):
    """Shift register on (x_t, ..., x_{t-n+1}), n = max(D + 1, 2), filled from the recurrence."""
    n = max(delay + 1, 2)
    matrix = np.zeros((n, n))
    coefficients = {0: 1 + beta - c_now, 1: -beta}
    coefficients[delay] = coefficients.get(delay, 0.0) - c_lag
    for lag, value in coefficients.items():
        matrix[0, lag] += value
    matrix[np.arange(1, n), np.arange(n - 1)] = 1.0
    return matrix


def spectral_radius(matrix):
    return float(np.max(np.abs(np.linalg.eigvals(matrix))))


# ---------------------------------------------------------------------------------------------
# Exact facts of docs/model.md §2

betas = st.floats(0.02, 0.98)


@FAST
@given(beta=betas, u=st.floats(0.0, 1.0))
def test_heavy_ball_oscillation_band_and_stability_bound(beta, u):
    low, high, edge = (1 - math.sqrt(beta)) ** 2, (1 + math.sqrt(beta)) ** 2, 2 * (1 + beta)
    c = 1e-3 + u * (edge + 1.0)
    boundaries = np.array([low, high, edge])
    if np.min(np.abs(c - boundaries) / boundaries) < 1e-6:
        return  # too close to a boundary for a sharp statement
    hp = Hyperparameters(lr=c, momentum=beta)
    report = stability(hp, 1.0)
    eigenvalues = np.linalg.eigvals(np.array([[1 + beta - c, -beta], [1.0, 0.0]]))
    complex_pair = bool(np.any(np.abs(eigenvalues.imag) > 1e-12))
    assert complex_pair == (low < c < high)
    assert report.stable == (c < edge)
    # Beyond (1 + sqrt b)^2 the roots are real and negative: a sign alternation, still oscillatory.
    expected = "unstable" if c >= edge else ("oscillatory" if c > low else "overdamped")
    assert report.regime == expected


@FAST
@given(c=st.floats(1e-3, 1.5), k=st.integers(1, 60))
def test_refresh_without_momentum_unstable_iff_cK_above_2(c, k):
    if abs(c * k - 2.0) < 1e-6:
        return
    hp = Hyperparameters(lr=c, momentum=0.0, refresh_interval=k)
    report = stability(hp, 1.0)
    assert report.stable == (c * k < 2.0)
    # x_{(n+1)K} = (1 - cK) x_{nK}: the cycle map's first row is (1 - cK, 0).
    np.testing.assert_allclose(report.transition_matrix[0], [1 - c * k, 0.0], atol=1e-12 * k)
    assert report.spectral_radius == pytest.approx(abs(1 - c * k), rel=1e-12, abs=1e-12)


def test_first_unstable_refresh_interval_is_38_and_simulation_agrees():
    hp = Hyperparameters(lr=0.01, momentum=0.9)
    assert critical_refresh_interval(hp, 1.0) == 38
    for k, grows in ((37, False), (38, True)):
        x = simulate(0.9, 0.01, 0.0, steps=400 * k, refresh_interval=k)
        rate = envelope_rate(x, window=4 * k)
        assert (rate > 0) == grows
        exact = stability(hp.with_changes(refresh_interval=k), 1.0)
        assert rate == pytest.approx(math.log(exact.decay_rate), abs=2e-4)
    # The continuum thresholds are far off: c K = 1 - beta gives K = 10 ("paper"), 21 ("mean").
    assert not continuum(hp.with_changes(refresh_interval=10), 1.0, lag="paper").stable
    assert continuum(hp.with_changes(refresh_interval=9), 1.0, lag="paper").stable
    assert not continuum(hp.with_changes(refresh_interval=22), 1.0, lag="mean").stable
    assert continuum(
        hp.with_changes(refresh_interval=21), 1.0, lag="mean"
    ).damping == pytest.approx(0.0, abs=1e-12)


def test_long_cycle_limit_with_split_stiffness():
    # Within a long cycle x settles where c_now x = -c_lag x_anchor, so the cycle map's dominant
    # eigenvalue tends to -c_lag / c_now: large K is stable again when c_now > c_lag.
    for c_lag, c_now in ((0.01, 0.02), (0.03, 0.02)):
        hp = Hyperparameters(lr=1.0, momentum=0.5, refresh_interval=3000)
        report = stability(hp, curvature_lag=c_lag, curvature_now=c_now)
        assert report.dominant_eigenvalue == pytest.approx(-c_lag / c_now, rel=1e-9)
    hp = Hyperparameters(lr=1.0, momentum=0.5)
    assert critical_refresh_interval(hp, curvature_lag=0.0078125, curvature_now=0.01) is None


def test_two_arm_split_example_of_model_section_3():
    # Two-arm bandit (rewards 1/0, logit gap theta, p = sigmoid(theta)), G = 8, KL coef 0.4 to a
    # uniform reference, lr 0.5, heavy ball 0.9, no ratio. docs/model.md §6: the expected group
    # gradient is E_k sqrt((G-1)/G) sqrt(p_hat (1 - p_hat)), k ~ Bin(G, p_old) (stale), and the
    # k3 penalty's is -kl (p - 1/2) (current). Built here from those exact sums alone.
    from scipy.optimize import brentq
    from scipy.stats import binom

    group, kl, lr, beta = 8, 0.4, 0.5, 0.9
    k = np.arange(group + 1)
    group_gradient = math.sqrt((group - 1) / group) * np.sqrt(k / group * (1 - k / group))

    def sigmoid(x):
        return 1.0 / (1.0 + math.exp(-x))

    def advantage_drift(gap_old):
        return float(np.sum(binom.pmf(k, group, sigmoid(gap_old)) * group_gradient))

    def kl_drift(gap):
        return -kl * (sigmoid(gap) - 0.5)

    gap_star = brentq(lambda x: advantage_drift(x) + kl_drift(x), -20, 20, xtol=1e-14)
    h = 1e-5
    kappa_lag = -(advantage_drift(gap_star + h) - advantage_drift(gap_star - h)) / (2 * h)
    kappa_now = -(kl_drift(gap_star + h) - kl_drift(gap_star - h)) / (2 * h)
    hp = Hyperparameters(lr=lr, momentum=beta)
    assert critical_refresh_interval(hp, curvature_lag=kappa_lag, curvature_now=kappa_now) == 5
    assert critical_refresh_interval(hp, kappa_lag + kappa_now) == 4  # lumping it all as stale

    def nonlinear_growth(refresh):
        x = previous = anchor = gap_star + 1e-4
        deviations = []
        for t in range(1500):
            if t % refresh == 0:
                anchor = x
            drift = advantage_drift(anchor) + kl_drift(x)
            x, previous = x + beta * (x - previous) + lr * drift, x
            deviations.append(abs(x - gap_star))
        return max(deviations[-100:]) / max(deviations[700:800])

    assert nonlinear_growth(4) < 1 < nonlinear_growth(5)


# ---------------------------------------------------------------------------------------------
# Matrices and eigenvalues against numpy


@FAST
@given(
    beta=st.floats(0.0, 0.99),
    c_lag=st.floats(0.0, 0.5),
    c_now=st.floats(0.0, 0.3),
    k=st.integers(1, 40),
)
def test_refresh_cycle_matrix_equals_product_of_step_maps(beta, c_lag, c_now, k):
    product, gain = cycle_by_multiplication(beta, c_lag, c_now, k)
    monodromy, noise_gain = _core.refresh_cycle(beta, c_lag, c_now, k)
    scale = max(1.0, np.max(np.abs(product)))
    np.testing.assert_allclose(monodromy, product[:2, :2], rtol=1e-9, atol=1e-11 * scale)
    np.testing.assert_allclose(
        noise_gain, gain[:2], rtol=1e-9, atol=1e-11 * max(1.0, np.max(np.abs(gain)))
    )
    report = (
        stability(
            Hyperparameters(lr=1.0, momentum=beta, refresh_interval=k),
            curvature_lag=c_lag or None,
            curvature_now=c_now or None,
        )
        if c_lag + c_now > 0
        else None
    )
    if report is not None:
        # The augmented product has the cycle's eigenvalues plus 0 (the anchor is overwritten).
        expected = np.sort_complex(np.linalg.eigvals(product))
        got = np.sort_complex(np.append(report.eigenvalues, 0.0))
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9 * scale)


@FAST
@given(
    beta=st.floats(0.0, 0.99),
    c_lag=st.floats(1e-4, 0.5),
    c_now=st.floats(0.0, 0.2),
    d=st.integers(0, 64),
)
def test_delay_companion_eigenvalues_match_numpy(beta, c_lag, c_now, d):
    matrix = delay_state_matrix(beta, c_lag, c_now, d)
    hp = Hyperparameters(lr=1.0, momentum=beta, delay=d)
    report = stability(hp, curvature_lag=c_lag, curvature_now=c_now or None)
    np.testing.assert_allclose(report.transition_matrix, matrix, atol=0)
    expected = np.linalg.eigvals(matrix)
    # Match each numpy eigenvalue to its nearest Eigen eigenvalue (orderings differ).
    distance = np.abs(expected[:, None] - report.eigenvalues[None, :]).min(axis=1)
    assert np.all(distance <= 1e-6 * max(1.0, np.max(np.abs(expected))))
    assert report.spectral_radius == pytest.approx(np.max(np.abs(expected)), rel=1e-9)


def test_grid_matches_numpy_eigvals_on_random_points():
    rng = np.random.default_rng(11)
    n = 300
    beta = rng.uniform(0, 0.99, n)
    c_lag = 10 ** rng.uniform(-3, 0.5, n)
    c_now = rng.uniform(0, 0.3, n) * c_lag * (rng.random(n) < 0.5)
    for lag_model, steps in (
        ("delay", rng.integers(0, 65, n)),
        ("refresh", rng.integers(1, 65, n)),
    ):
        grid = stability_grid(beta, c_lag, steps, c_now=c_now, lag_model=lag_model)
        for i in range(n):
            if lag_model == "delay":
                matrix = delay_state_matrix(beta[i], c_lag[i], c_now[i], int(steps[i]))
            else:
                matrix = cycle_by_multiplication(beta[i], c_lag[i], c_now[i], int(steps[i]))[0][
                    :2, :2
                ]
            eigenvalues = np.linalg.eigvals(matrix)
            rho = np.max(np.abs(eigenvalues))
            assert grid.spectral_radius[i] == pytest.approx(rho, rel=1e-8)
            dominant = eigenvalues[np.abs(eigenvalues) >= rho * (1 - 1e-9)]
            oscillating = np.any((np.abs(dominant.imag) > 1e-7 * rho) | (dominant.real < 0))
            expected = "unstable" if rho >= 1 else ("oscillatory" if oscillating else "overdamped")
            assert grid.regime[i] == expected
            per_map = int(steps[i]) if lag_model == "refresh" else 1
            assert grid.decay_rate[i] == pytest.approx(rho ** (1 / per_map), rel=1e-8)


def high_precision_cycle(beta, c_lag, c_now, k):
    """Refresh-cycle matrix M by direct simulation of the recurrence in 60-digit decimals (the
    float inputs converted exactly): its columns are the cycle started from (x_0, x_{-1}) =
    (1, 0) and (0, 1). Returns (M as Decimals, rho): rho = the larger |root| of
    z^2 - tr(M) z + det(M), also in 60 digits."""
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        b, cl, cn = (decimal.Decimal(v) for v in (beta, c_lag, c_now))
        columns = []
        for x, previous in ((decimal.Decimal(1), decimal.Decimal(0)), (0, 1)):
            x, previous = decimal.Decimal(x), decimal.Decimal(previous)
            anchor = x
            for _ in range(k):
                x, previous = x + b * (x - previous) - cl * anchor - cn * x, x
            columns.append((x, previous))
        (m00, m10), (m01, m11) = columns
        trace, det = m00 + m11, m00 * m11 - m01 * m10
        disc = trace * trace / 4 - det
        rho = det.sqrt() if disc < 0 else abs(trace) / 2 + disc.sqrt()
        return [[m00, m01], [m10, m11]], float(rho)


def test_long_refresh_cycles_match_high_precision_simulation_and_numpy():
    # Intervals around the powers of two exercise every bit pattern of the binary powering,
    # 16/17 the switch from stepping; the rest are random up to 1,000.
    rng = np.random.default_rng(13)
    special = [1, 2, 3, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 511, 512, 999, 1000]
    k = np.array(special + list(rng.integers(2, 1001, 22)))
    n = k.size
    beta = rng.uniform(0.0, 0.99, n)
    c_lag = 10 ** rng.uniform(-3.5, 0.0, n)
    c_now = rng.uniform(0.0, 0.5, n) * c_lag * (rng.random(n) < 0.5)
    grid = stability_grid(beta, c_lag, k, c_now=c_now)
    worst = 0.0
    for i in range(n):
        matrix, rho = high_precision_cycle(beta[i], c_lag[i], c_now[i], int(k[i]))
        if rho > 1e300:  # beyond float range: the grid overflows too, and says unstable
            assert grid.regime[i] == "unstable"
            continue
        worst = max(worst, abs(grid.spectral_radius[i] - rho) / rho)
        if abs(rho - 1.0) > 1e-9:
            assert grid.stable[i] == (rho < 1.0), (i, rho)
        monodromy, _ = _core.refresh_cycle(beta[i], c_lag[i], c_now[i], int(k[i]))
        exact = np.array([[float(v) for v in row] for row in matrix])
        np.testing.assert_allclose(monodromy, exact, rtol=1e-11, atol=1e-12 * np.abs(exact).max())
        # numpy.linalg.eigvals of the explicitly multiplied step maps (an independent float path)
        product = cycle_by_multiplication(beta[i], c_lag[i], c_now[i], int(k[i]))[0][:2, :2]
        assert grid.spectral_radius[i] == pytest.approx(spectral_radius(product), rel=1e-10)
    assert worst < 2e-12, worst


def test_refresh_cycles_up_to_the_largest_interval_in_closed_form():
    # Without momentum u_k = (1 - c_now)^(k-1): the cycle map's first row is (u_{K+1} - c_lag
    # U_K, 0), so rho = |u_{K+1} - c_lag U_K| with the geometric sum U_K; the cycle costs
    # O(log K), so K = 10^8 (the cap) is as quick as K = 10.
    k = np.array([10, 10**5, 3 * 10**6, 10**8 - 1, 10**8, 10**8])
    c_lag = np.array([0.15, 1.5e-5, 0.9e-6, 2.5e-8, 1.5e-8, 1e-9])
    c_now = np.array([0.0, 0.0, 1e-7, 0.0, 0.0, 2e-9])
    grid = stability_grid(0.0, c_lag, k, c_now=c_now)
    for i in range(k.size):
        a = 1.0 - c_now[i]
        shrink = 1.0 - a  # exact: the c_now the recurrence sees (1 - c_now is rounded)
        sums = k[i] if shrink == 0 else -math.expm1(k[i] * math.log1p(-shrink)) / shrink
        expected = abs(math.exp(k[i] * math.log1p(-shrink)) - c_lag[i] * sums)
        # Binary powering rounds like K eps (5e-10 at K = 10^8, c_now = 2e-9), below the 6e-9
        # that rounding 1 - c_now itself moves rho by there.
        assert grid.spectral_radius[i] == pytest.approx(expected, rel=1e-8), i
        assert grid.stable[i] == (expected < 1.0)


def test_critical_refresh_interval_agrees_with_the_grid_at_long_intervals():
    # The threshold scan steps the sequence K by K; the grid powers it: both see the same side.
    rng = np.random.default_rng(17)
    for _ in range(12):
        # K_c is near 2 (1 - beta) / c: aim at thresholds from 30 to 3,000
        beta = rng.uniform(0.0, 0.95)
        c = 2 * (1 - beta) / 10 ** rng.uniform(1.5, 3.5)
        hp = Hyperparameters(lr=1.0, momentum=beta)
        k_c = critical_refresh_interval(hp, c, max_interval=5000)
        assert k_c is not None and k_c > 17
        grid = stability_grid(beta, c, np.array([k_c - 1, k_c]))
        assert grid.stable.tolist() == [True, False]


@FAST
@given(coeffs=st.lists(st.floats(-2, 2), min_size=1, max_size=12), radius=st.floats(0.3, 2.0))
def test_schur_cohn_count_matches_numpy_roots(coeffs, radius):
    polynomial = [1.0, *coeffs]
    roots = np.roots(polynomial)
    moduli = np.abs(roots) / radius
    if np.any(np.abs(moduli - 1) < 1e-6):
        return  # a root on the circle: either answer is within rounding
    assert _core.roots_inside_radius(polynomial, radius) == bool(np.all(moduli < 1))


# ---------------------------------------------------------------------------------------------
# Thresholds against direct simulation


@settings(max_examples=8, deadline=None)
@given(
    beta=st.floats(0.3, 0.95), c_lag=st.floats(0.005, 0.1), now_share=st.sampled_from([0.0, 0.3])
)
def test_critical_refresh_interval_by_simulation(beta, c_lag, now_share):
    # c_now < c_lag so that some K is unstable (see test_long_cycle_limit_with_split_stiffness).
    c_now = now_share * c_lag
    hp = Hyperparameters(lr=1.0, momentum=beta)
    k_c = critical_refresh_interval(
        hp, curvature_lag=c_lag, curvature_now=c_now or None, max_interval=2000
    )
    assert k_c is not None
    for k in range(max(1, k_c - 3), k_c + 1):
        rho = spectral_radius(cycle_by_multiplication(beta, c_lag, c_now, k)[0])
        if abs(rho - 1) > 1e-9:  # exactly marginal cases (e.g. dyadic inputs) are a coin toss
            assert (rho >= 1) == (k == k_c)
    if k_c > 1:
        below = simulate(beta, c_lag, c_now, steps=300 * (k_c - 1), refresh_interval=k_c - 1)
        assert envelope_rate(below, 4 * k_c) < 0
    above = simulate(beta, c_lag, c_now, steps=300 * k_c, refresh_interval=k_c)
    assert envelope_rate(above, 4 * k_c) > -1e-9  # rho may sit within rounding of 1


@settings(max_examples=8, deadline=None)
@given(beta=st.floats(0.3, 0.95), c_lag=st.floats(0.005, 0.1))
def test_critical_delay_by_simulation(beta, c_lag):
    hp = Hyperparameters(lr=1.0, momentum=beta)
    d_c = critical_delay(hp, c_lag, max_delay=500)
    assert d_c is not None
    for d in range(max(0, d_c - 3), d_c + 1):
        rho = spectral_radius(delay_state_matrix(beta, c_lag, 0.0, d))
        if abs(rho - 1) > 1e-9:  # exactly marginal cases are decided by rounding
            assert (rho >= 1) == (d == d_c)
    window = 8 * (d_c + 10)
    if d_c > 0:
        assert (
            envelope_rate(simulate(beta, c_lag, 0.0, steps=60 * window, delay=d_c - 1), window) < 0
        )
    assert envelope_rate(simulate(beta, c_lag, 0.0, steps=60 * window, delay=d_c), window) > -1e-9


def test_critical_learning_rate_exact_cases():
    for beta in (0.0, 0.5, 0.9):
        hp = Hyperparameters(lr=1.0, momentum=beta)
        assert critical_learning_rate(hp, 2.0) == pytest.approx(2 * (1 + beta) / 2.0, rel=1e-11)
        onset = oscillation_onset(hp, 2.0)
        expected_onset = (1 - math.sqrt(beta)) ** 2 / 2.0 if beta > 0 else 1.0 / 2.0
        assert onset == pytest.approx(expected_onset, rel=1e-11)
    for k in (2, 5, 17):
        hp = Hyperparameters(lr=1.0, momentum=0.0, refresh_interval=k)
        assert critical_learning_rate(hp, 0.5) == pytest.approx(2.0 / (k * 0.5), rel=1e-11)


@settings(max_examples=6, deadline=None)
@given(
    beta=st.floats(0.0, 0.95),
    k=st.integers(1, 30),
    kl_share=st.sampled_from([0.0, 0.3]),
    optimizer=st.sampled_from(["heavy_ball", "adam"]),
)
def test_critical_learning_rate_by_simulation_and_no_earlier_window(beta, k, kl_share, optimizer):
    hp = Hyperparameters(
        lr=1.0, momentum=beta, refresh_interval=k, optimizer=optimizer, adam_preconditioner=0.5
    )
    kappa_lag, kappa_now = 1.0 - kl_share, kl_share
    lr_c = critical_learning_rate(hp, curvature_lag=kappa_lag, curvature_now=kappa_now or None)
    per_lr = (1 - beta) / 0.5 if optimizer == "adam" else 1.0
    # Every smaller lr (on a fine grid) is stable: explicit products of step maps, numpy eigvals.
    for lr in np.linspace(lr_c / 400, lr_c * (1 - 1e-6), 400):
        matrix = cycle_by_multiplication(beta, lr * per_lr * kappa_lag, lr * per_lr * kappa_now, k)[
            0
        ]
        assert spectral_radius(matrix) < 1
    window = 6 * k + 60
    for factor, grows in ((0.97, False), (1.03, True)):
        c_lag, c_now = factor * lr_c * per_lr * kappa_lag, factor * lr_c * per_lr * kappa_now
        x = simulate(beta, c_lag, c_now, steps=40 * window, refresh_interval=k)
        assert (envelope_rate(x, window) > 0) == grows


def test_oscillation_onset_in_refresh_interval_by_eigvals():
    hp = Hyperparameters(lr=1.0, momentum=0.5)
    onset = oscillation_onset(hp, 0.02, vary="refresh_interval")
    assert isinstance(onset, int)
    for k in range(1, onset + 1):
        eigenvalues = np.linalg.eigvals(cycle_by_multiplication(0.5, 0.02, 0.0, k)[0][:2, :2])
        dominant = eigenvalues[np.argmax(np.abs(eigenvalues))]
        oscillating = abs(dominant.imag) > 1e-12 or dominant.real < 0 or abs(dominant) >= 1
        assert oscillating == (k == onset)


def test_oscillation_onset_in_delay_by_eigvals():
    hp = Hyperparameters(lr=1.0, momentum=0.3)
    onset = oscillation_onset(hp, 0.01, vary="delay")
    assert isinstance(onset, int)
    for d in range(0, onset + 1):
        eigenvalues = np.linalg.eigvals(delay_state_matrix(0.3, 0.01, 0.0, d))
        rho = np.max(np.abs(eigenvalues))
        dominant = eigenvalues[np.abs(eigenvalues) >= rho * (1 - 1e-9)]
        oscillating = np.any((np.abs(dominant.imag) > 1e-9) | (dominant.real < 0)) or rho >= 1
        assert oscillating == (d == onset)
    report = stability(hp.with_changes(delay=onset), 0.01)
    assert report.regime != "overdamped"
    assert report.margin == pytest.approx(1 - report.decay_rate)
    if report.stable:
        assert report.relaxation_steps == pytest.approx(-1 / math.log(report.decay_rate))


# ---------------------------------------------------------------------------------------------
# Stationary variance


def test_lyapunov_solver_matches_scipy():
    rng = np.random.default_rng(3)
    for n in (2, 3, 4, 7, 20):
        a = rng.normal(size=(n, n))
        a *= 0.97 / spectral_radius(a)
        q = rng.normal(size=(n, n))
        q = q @ q.T
        np.testing.assert_allclose(
            _core.solve_discrete_lyapunov(a, q),
            scipy.linalg.solve_discrete_lyapunov(a, q),
            rtol=1e-8,
            atol=1e-10,
        )
    with pytest.raises(ValueError, match="stable"):
        _core.solve_discrete_lyapunov(np.diag([1.5] * 6), np.eye(6))


@pytest.mark.parametrize(
    ("beta", "kappa_lag", "kappa_now", "k", "d"),
    [
        (0.9, 0.02, 0.0, 1, 0),
        (0.6, 0.05, 0.02, 6, 0),
        (0.8, 0.01, 0.0, 20, 0),
        (0.5, 0.03, 0.01, 1, 7),
        (0.6, -0.02, 0.06, 6, 0),  # negative lagged curvature (k3 KL at stale samples)
        (0.5, -0.01, 0.04, 1, 5),
    ],
)
def test_exact_variance_matches_long_noisy_simulation(beta, kappa_lag, kappa_now, k, d):
    hp = Hyperparameters(
        lr=1.0, momentum=beta, refresh_interval=k, delay=d, group_size=4, batch_prompts=2
    )
    sigma = 0.7
    result = stationary_variance(
        hp, curvature_lag=kappa_lag, curvature_now=kappa_now or None, gradient_std=sigma
    )
    noise_std = math.sqrt(hp.effective_lr**2 * sigma**2 / (hp.batch_prompts * hp.group_size))
    assert result.noise_variance == pytest.approx(noise_std**2, rel=1e-14)
    # R independent replicas, vectorised; noise drawn once per refresh cycle and held.
    rng = np.random.default_rng(2024)
    replicas = 20000
    margin = 1 - stability(hp, curvature_lag=kappa_lag, curvature_now=kappa_now or None).decay_rate
    burn_in = k * math.ceil(max(500, 15 / margin) / k)  # 15 e-foldings from x = 0
    history = np.zeros((max(d, 1) + 1, replicas))  # history[j] = x_{t-j}
    anchor = np.zeros(replicas)
    samples = []
    for t in range(burn_in + 10 * k):
        if t % k == 0:
            e = rng.normal(0.0, noise_std, replicas)
            anchor = history[0].copy()
        if t >= burn_in:
            samples.append(history[0].copy())  # x_t at phase t mod K, whole cycles only
        lagged = history[d] if d > 0 else anchor
        new = (
            history[0]
            + beta * (history[0] - history[1])
            - kappa_lag * lagged
            - kappa_now * history[0]
            + e
        )
        history = np.roll(history, 1, axis=0)
        history[0] = new
    samples = np.array(samples)
    estimate = samples.var(axis=1).mean()
    # Replicas are independent: at one time Var-hat has std Var sqrt(2/(R-1)); averaging correlated
    # times cannot make it worse, so 5 of these standard errors is a safe bound.
    tolerance = 5 * result.exact * math.sqrt(2 / (replicas - 1))
    assert abs(estimate - result.exact) < tolerance
    # Independent exact reference: scipy on the cycle (refresh) or companion (delay) system.
    if d > 0:
        f = delay_state_matrix(beta, kappa_lag, kappa_now, d)
        q = np.zeros_like(f)
        q[0, 0] = noise_std**2
        assert result.exact == pytest.approx(
            scipy.linalg.solve_discrete_lyapunov(f, q)[0, 0], rel=1e-9
        )
    else:
        product, gain = cycle_by_multiplication(beta, kappa_lag, kappa_now, k)
        p0 = scipy.linalg.solve_discrete_lyapunov(product, noise_std**2 * np.outer(gain, gain))
        phases = []
        for j in range(k):
            pj, gj = cycle_by_multiplication(beta, kappa_lag, kappa_now, j)
            phases.append(pj[0] @ p0 @ pj[0] + noise_std**2 * gj[0] ** 2)
        np.testing.assert_allclose(result.per_phase, phases, rtol=1e-9)
        assert result.exact == pytest.approx(np.mean(phases), rel=1e-9)


@FAST
@given(beta=st.floats(0.0, 0.95), c=st.floats(1e-3, 0.5))
def test_on_policy_variance_matches_ar2_formula(beta, c):
    if c >= 2 * (1 + beta) * 0.999:
        return
    # G = 2 with gradient_std sqrt(2): unit innovations (group_size >= 2, as in simulate)
    hp = Hyperparameters(lr=1.0, momentum=beta, group_size=2)
    exact = stationary_variance(hp, c, gradient_std=math.sqrt(2.0)).exact
    # Textbook AR(2) variance with phi1 = 1 + b - c, phi2 = -b and unit innovations.
    phi1, phi2 = 1 + beta - c, -beta
    ar2 = (1 - phi2) / ((1 + phi2) * ((1 - phi2) ** 2 - phi1**2))
    assert exact == pytest.approx(ar2, rel=1e-9)


def test_continuum_and_exact_agree_in_small_c_on_policy_limit():
    for beta in (0.0, 0.5, 0.9):
        for c in (1e-3, 1e-4, 1e-5):
            hp = Hyperparameters(lr=1.0, momentum=beta)
            variance = stationary_variance(hp, c)
            # Relative difference O(c): 2(1+b) / (2(1+b) - c) - 1.
            assert variance.exact / variance.continuum - 1 == pytest.approx(0.0, abs=c)
            report = stability(hp, c)
            cont = report.continuum
            q = math.sqrt(1 - 4 * cont.mu)
            slow_rate = -2 / (cont.tau * (1 + q))  # slow root of mu tau^2 s^2 + tau s + 1 = 0
            assert math.log(report.decay_rate) == pytest.approx(
                slow_rate, rel=10 * c / (1 - beta) ** 2
            )


@FAST
@given(g=st.integers(2, 64), k=st.integers(1, 12), beta=st.floats(0.0, 0.9))
def test_variance_scales_as_inverse_group_size(g, k, beta):
    hp = Hyperparameters(lr=0.01, momentum=beta, refresh_interval=k, group_size=g)
    if not stability(hp, 1.0).stable:
        return
    two = stationary_variance(hp.with_changes(group_size=2), 1.0)
    many = stationary_variance(hp, 1.0)
    assert many.exact * g == pytest.approx(2 * two.exact, rel=1e-12)
    if math.isfinite(two.continuum):
        assert many.continuum * g == pytest.approx(2 * two.continuum, rel=1e-12)


def test_unstable_variance_is_infinite():
    hp = Hyperparameters(lr=0.01, momentum=0.9, refresh_interval=40)
    result = stationary_variance(hp, 1.0)
    assert math.isinf(result.exact) and np.all(np.isinf(result.per_phase))


# ---------------------------------------------------------------------------------------------
# Optimizer forms and the continuum mapping


def test_adam_with_frozen_preconditioner_is_heavy_ball_with_eta_eff():
    beta, lr, s, kappa = 0.8, 0.3, 0.6, 0.4
    hp = Hyperparameters(
        lr=lr, momentum=beta, optimizer="adam", adam_preconditioner=s, refresh_interval=3
    )
    assert hp.effective_lr == pytest.approx(lr * (1 - beta) / s)
    # Adam's EMA form on the linear drift: m = beta m + (1 - beta) g, theta -= lr m / s.
    theta, m = 1.0, 0.0
    anchor = theta
    xs = [theta]
    for t in range(60):
        if t % 3 == 0:
            anchor = theta
        m = beta * m + (1 - beta) * kappa * anchor
        theta -= lr * m / s
        xs.append(theta)
    heavy = simulate(beta, hp.effective_lr * kappa, 0.0, steps=60, refresh_interval=3)
    np.testing.assert_allclose(xs, heavy, rtol=1e-12, atol=1e-14)
    same = stability(Hyperparameters(lr=hp.effective_lr, momentum=beta, refresh_interval=3), kappa)
    assert stability(hp, kappa).spectral_radius == pytest.approx(same.spectral_radius, rel=1e-14)


def test_continuum_parameters_follow_model_section_4():
    hp = Hyperparameters(lr=0.02, momentum=0.7, refresh_interval=5, group_size=16, batch_prompts=4)
    for lag, big_lag in (("mean", 2.0), ("paper", 5.0)):
        cont = continuum(hp, curvature_lag=0.5, curvature_now=0.25, lag=lag, gradient_std=2.0)
        c_lag, c_now = 0.01, 0.005
        mass = 0.85 + c_lag * big_lag**2 / 2
        damping = 0.3 - c_lag * big_lag
        k = c_lag + c_now
        assert (cont.mass, cont.damping, cont.stiffness) == pytest.approx((mass, damping, k))
        assert cont.omega0 == pytest.approx(math.sqrt(k / mass))
        assert cont.zeta == pytest.approx(damping / (2 * math.sqrt(mass * k)))
        assert cont.mu == pytest.approx(1 / (4 * cont.zeta**2))
        assert cont.tau == pytest.approx(damping / k)
        temperature = 0.02**2 * 4.0 / (2 * damping * 4 * 16)
        assert cont.temperature == pytest.approx(temperature)
        assert cont.stationary_variance == pytest.approx(temperature / k)
        assert cont.regime == ("oscillatory" if cont.zeta < 1 else "overdamped")
    # The closed-form trajectory's characteristic equation has the oscillator's roots.
    roots = np.roots([cont.mu * cont.tau**2, cont.tau, 1.0])
    np.testing.assert_allclose(
        np.sort_complex(roots), np.sort_complex(np.roots([cont.mass, cont.damping, cont.stiffness]))
    )


# ---------------------------------------------------------------------------------------------
# Grid: threads, broadcasting, bulk statuses


def test_threaded_grid_equals_single_thread_and_pointwise():
    beta, c, k = np.meshgrid(
        np.linspace(0, 0.95, 12), np.geomspace(1e-3, 1.0, 30), np.arange(1, 40), indexing="ij"
    )
    one = stability_grid(beta, c, k, threads=1)
    for threads in (2, 3, 7):
        many = stability_grid(beta, c, k, threads=threads)
        for name in ("spectral_radius", "decay_rate", "dominant_eigenvalue", "regime_code"):
            np.testing.assert_array_equal(getattr(one, name), getattr(many, name))
    assert one.spectral_radius.shape == beta.shape
    d = np.arange(0, 40)[None, :]
    one_d = stability_grid(
        0.8, np.geomspace(1e-3, 0.5, 25)[:, None], d, lag_model="delay", threads=1
    )
    many_d = stability_grid(
        0.8, np.geomspace(1e-3, 0.5, 25)[:, None], d, lag_model="delay", threads=4
    )
    np.testing.assert_array_equal(one_d.spectral_radius, many_d.spectral_radius)
    np.testing.assert_array_equal(one_d.regime_code, many_d.regime_code)
    for i, j, m in ((0, 0, 0), (5, 11, 20), (11, 29, 38)):
        report = stability(
            Hyperparameters(
                lr=float(c[i, j, m]),
                momentum=float(beta[i, j, m]),
                refresh_interval=int(k[i, j, m]),
            ),
            1.0,
        )
        assert report.spectral_radius == one.spectral_radius[i, j, m]
        assert report.regime == one.regime[i, j, m]


def test_grid_marks_invalid_points_instead_of_dropping_them():
    grid = stability_grid(
        [0.5, 1.0, -0.1, 0.5, 0.5, 0.5], [0.1, 0.1, 0.1, np.nan, 0.1, 0.1], [3, 3, 3, 3, 0, 2.5]
    )
    assert grid.regime.tolist()[1:] == ["invalid"] * 5 and grid.regime[0] != "invalid"
    assert np.isnan(grid.spectral_radius[1:]).all() and np.isfinite(grid.spectral_radius[0])
    delay = stability_grid(0.5, 0.1, [0, -1], lag_model="delay")
    assert delay.regime.tolist()[1] == "invalid" and delay.regime.tolist()[0] != "invalid"


# ---------------------------------------------------------------------------------------------
# Validation and the C++ exception round trip


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": -1.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"momentum": -0.1}, "momentum"),
        ({"refresh_interval": 0}, "refresh_interval"),
        ({"refresh_interval": 2.5}, "refresh_interval"),
        ({"refresh_interval": True}, "refresh_interval"),
        ({"delay": -1}, "delay"),
        ({"delay": 2, "refresh_interval": 3}, "delay"),
        ({"group_size": 1}, "group_size"),  # >= 2, the rule of simulate and objectives
        ({"batch_prompts": 0}, "batch_prompts"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"optimizer": "sgd"}, "momentum"),  # sgd has no momentum (momentum 0.9 given)
        ({"adam_preconditioner": 0.0}, "adam_preconditioner"),
        ({"dampening": 1.0}, "dampening"),
        ({"dampening": -0.1}, "dampening"),
        ({"dampening": 0.5, "optimizer": "adam"}, "dampening"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"weight_decay": float("inf")}, "weight_decay"),
        ({"weight_decay": 100.0, "optimizer": "adamw"}, "weight_decay"),  # lr wd >= 1
    ],
)
def test_invalid_hyperparameters_name_the_field(changes, field):
    arguments = {"lr": 0.01, "momentum": 0.9} | changes
    with pytest.raises(ValueError, match=field):
        Hyperparameters(**arguments)


def test_invalid_curvature_and_options_name_the_argument():
    hp = Hyperparameters(lr=0.01, momentum=0.9)
    with pytest.raises(ValueError, match="lr"):
        hp.with_changes(lr=-1.0)  # copies are validated too
    with pytest.raises(ValueError, match="vary"):
        oscillation_onset(hp, 1.0, vary="momentum")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="curvature"):
        stability(hp, -1.0)
    with pytest.raises(ValueError, match="curvature"):
        stability(hp, 1.0, curvature_lag=1.0)
    with pytest.raises(ValueError, match="curvature_now"):
        stability(hp, curvature_lag=1.0, curvature_now=-0.5)
    with pytest.raises(ValueError, match="curvature_lag"):
        stability(hp, curvature_lag=-1.0, curvature_now=0.5)  # total <= 0 is still rejected
    with pytest.raises(ValueError, match="curvature_lag"):
        stability(hp, curvature_lag=-1.0)
    with pytest.raises(ValueError, match="curvature_lag"):
        stability(hp, curvature_lag=float("nan"), curvature_now=1.0)
    with pytest.raises(ValueError, match="lag"):
        continuum(hp, 1.0, lag="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gradient_std"):
        stationary_variance(hp, 1.0, gradient_std=-1.0)
    with pytest.raises(ValueError, match="scan_ratio"):
        critical_learning_rate(hp, 1.0, scan_ratio=1.0)
    with pytest.raises(ValueError, match="delay"):
        critical_refresh_interval(hp.with_changes(delay=2), 1.0)
    with pytest.raises(ValueError, match="lag_model"):
        stability_grid(0.5, 0.1, 1, lag_model="async")  # type: ignore[arg-type]


def test_cpp_exceptions_round_trip_as_value_errors():
    with pytest.raises(ValueError, match="momentum"):
        _core.stability_spectrum(1.5, 0.1, 0.0, "refresh", 1)
    with pytest.raises(ValueError, match="refresh_interval"):
        _core.refresh_cycle(0.5, 0.1, 0.0, 0)
    with pytest.raises(ValueError, match="delay"):
        _core.stability_transition_matrix(0.5, 0.1, 0.0, "delay", -2)
    with pytest.raises(ValueError, match="lag_model"):
        _core.stability_spectrum(0.5, 0.1, 0.0, "async", 1)
    with pytest.raises(ValueError, match="criterion"):
        _core.critical_scale(0.5, 0.1, 0.0, "refresh", 1, "wobbly", 1.01)
    with pytest.raises(ValueError, match="c_lag"):
        _core.critical_scale(0.5, -0.2, 0.1, "refresh", 4, "unstable", 1.01)  # total < 0
    with pytest.raises(ValueError, match="c_now"):
        _core.critical_scale(0.5, 0.3, -0.1, "refresh", 4, "unstable", 1.01)
    assert _core.critical_scale(0.5, -0.05, 0.1, "refresh", 4, "unstable", 1.01) > 0
    with pytest.raises(ValueError, match="c_lag"):
        _core.stability_spectrum(0.5, float("inf"), 0.0, "refresh", 1)
    with pytest.raises(ValueError, match="c_lag"):
        _core.stability_grid(np.zeros(3), np.zeros(2), np.zeros(3), np.ones(3), "refresh", 1)


# ---------------------------------------------------------------------------------------------
# Package surface and plotting


def test_public_names_are_reexported():
    for name in (
        "Hyperparameters",
        "continuum",
        "stability",
        "critical_refresh_interval",
        "critical_delay",
        "critical_learning_rate",
        "stationary_variance",
        "stability_grid",
        "plot_phase_diagram",
    ):
        assert hasattr(gd, name)


def test_phase_diagram_draws_exact_and_continuum_boundaries():
    from matplotlib.figure import Figure

    c = np.geomspace(1e-3, 0.1, 40)
    grid = gd.stability_grid(0.9, c[:, None], np.arange(1.0, 60.0)[None, :])
    figure = gd.plot_phase_diagram(grid)
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    assert len(ax.collections) >= 3  # regime mesh, exact contour, continuum contour(s)
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any("exact" in label for label in labels) and any(
        "continuum" in label for label in labels
    )
    delay_grid = gd.stability_grid(
        0.5, np.linspace(0.01, 0.2, 20)[:, None], np.arange(0.0, 30.0)[None, :], lag_model="delay"
    )
    figure_delay = gd.plot_phase_diagram(delay_grid)
    assert isinstance(figure_delay, Figure)


# ---------------------------------------------------------------------------------------------
# Optimizers (issue 6): sgd, heavy ball with dampening, Adam with coupled L2, AdamW. The reference
# is the optimizer update itself, written here with PyTorch semantics, on a quadratic whose
# lagged force is frozen at the last refresh. Adam's second moment is frozen (the model's
# assumption): sqrt(v_hat) + eps = preconditioner.


def torch_optimizer_log_abs(
    kind,
    *,
    lr,
    momentum=0.0,
    dampening=0.0,
    beta1=0.9,
    preconditioner=1.0,
    weight_decay=0.0,
    kappa_lag,
    kappa_now,
    refresh_interval,
    steps,
):
    """log|theta_t| of the optimizer on gradient g = kappa_lag theta_anchor + kappa_now theta.

    The update is linear in the state (theta, anchor, momentum buffer), so the state is rescaled
    jointly to stay in float range and the scale is carried in the log.
    """
    theta, anchor, buf, m = 1.0, 1.0, 0.0, 0.0
    log_scale = 0.0
    out = np.empty(steps + 1)
    out[0] = 0.0
    for t in range(steps):
        if t % refresh_interval == 0:
            anchor = theta  # fresh rollouts
        g = kappa_lag * anchor + kappa_now * theta
        if kind != "adamw":
            g += weight_decay * theta  # coupled L2 (torch weight_decay for SGD and Adam)
        if kind == "sgd":
            theta -= lr * g
        elif kind == "heavy_ball":
            buf = g if t == 0 else momentum * buf + (1 - dampening) * g  # torch's first buffer
            theta -= lr * buf
        else:
            if kind == "adamw":
                theta *= 1 - lr * weight_decay  # decoupled decay, before the Adam step
            m = beta1 * m + (1 - beta1) * g
            theta -= lr * (m / (1 - beta1 ** (t + 1))) / preconditioner
        size = abs(theta)
        if size > 1e50 or 0 < size < 1e-50:
            theta, anchor, buf, m = theta / size, anchor / size, buf / size, m / size
            log_scale += math.log(size)
        out[t + 1] = math.log(abs(theta)) + log_scale if theta != 0 else -math.inf
    return out


def log_envelope_rate(log_abs, window):
    """Per-step growth of the envelope max|theta| between a middle and the last window."""
    n = log_abs.size
    early = np.max(log_abs[n // 2 : n // 2 + window])
    late = np.max(log_abs[n - window :])
    return (late - early) / (n - window - n // 2)


OPTIMIZER_CASES = {
    # name: (Hyperparameters fields, arguments of torch_optimizer_log_abs)
    "sgd": ({"optimizer": "sgd", "lr": 0.2, "momentum": 0.0, "weight_decay": 0.4}, {}),
    "heavy_ball": (
        {
            "optimizer": "heavy_ball",
            "lr": 0.1,
            "momentum": 0.8,
            "dampening": 0.3,
            "weight_decay": 0.4,
        },
        {"momentum": 0.8, "dampening": 0.3},
    ),
    "adam": (
        {
            "optimizer": "adam",
            "lr": 0.2,
            "momentum": 0.9,
            "adam_preconditioner": 0.5,
            "weight_decay": 0.4,
        },
        {"beta1": 0.9, "preconditioner": 0.5},
    ),
    "adamw": (
        {
            "optimizer": "adamw",
            "lr": 0.2,
            "momentum": 0.9,
            "adam_preconditioner": 0.5,
            "weight_decay": 0.5,
        },
        {"beta1": 0.9, "preconditioner": 0.5},
    ),
}
KAPPA_LAG, KAPPA_NOW = 1.0, 0.2


def run_case(name, hp, refresh_interval, steps):
    fields, extra = OPTIMIZER_CASES[name]
    return torch_optimizer_log_abs(
        name,
        lr=hp.lr,
        weight_decay=fields["weight_decay"],
        kappa_lag=KAPPA_LAG,
        kappa_now=KAPPA_NOW,
        refresh_interval=refresh_interval,
        steps=steps,
        **extra,
    )


def documented_dynamics(name, lr, kappa_lag, kappa_now, big_lag):
    """docs/stability.md "Optimizers", written out independently: (beta, c_lag, c_now, mass,
    damping)."""
    fields, _ = OPTIMIZER_CASES[name]
    beta1, decay = fields["momentum"], fields["weight_decay"]
    if name == "sgd":
        beta, eta = 0.0, lr
    elif name == "heavy_ball":
        beta, eta = beta1, lr * (1 - fields["dampening"])
    else:
        beta, eta = beta1, lr * (1 - beta1) / fields["adam_preconditioner"]
    c_lag, c_now = eta * kappa_lag, eta * kappa_now
    if name == "adamw":
        beta, c_now = beta1 * (1 - lr * decay), c_now + lr * decay * (1 - beta1)
    else:
        c_now += eta * decay
    mass = (1 + beta) / 2 + c_lag * big_lag**2 / 2
    damping = (1 - beta) - c_lag * big_lag
    return beta, c_lag, c_now, mass, damping


@pytest.mark.parametrize("name", list(OPTIMIZER_CASES))
def test_optimizer_refresh_threshold_and_rate_by_direct_optimizer_simulation(name):
    fields, _ = OPTIMIZER_CASES[name]
    hp = Hyperparameters(**fields)
    k_c = critical_refresh_interval(hp, curvature_lag=KAPPA_LAG, curvature_now=KAPPA_NOW)
    assert k_c is not None and 3 <= k_c <= 80  # the cases are chosen to have a finite threshold
    for k in (k_c - 1, k_c):
        report = stability(
            hp.with_changes(refresh_interval=k), curvature_lag=KAPPA_LAG, curvature_now=KAPPA_NOW
        )
        assert report.stable == (k < k_c)
        window = 10 * k
        log_abs = run_case(name, hp, k, steps=4000 + 40 * window)
        rate = log_envelope_rate(log_abs, window)
        assert (rate < 0) == (k < k_c)
        # The measured per-step rate is the exact log decay rate (not just its sign).
        assert rate == pytest.approx(
            math.log(report.decay_rate), abs=0.1 * abs(math.log(report.decay_rate)) + 2e-4
        )


@pytest.mark.parametrize("name", list(OPTIMIZER_CASES))
def test_optimizer_critical_learning_rate_by_direct_optimizer_simulation(name):
    fields, _ = OPTIMIZER_CASES[name]
    k = 8
    hp = Hyperparameters(refresh_interval=k, **fields)
    lr_c = critical_learning_rate(hp, curvature_lag=KAPPA_LAG, curvature_now=KAPPA_NOW)
    assert 0 < lr_c < 1 / max(fields["weight_decay"], 1e-300)
    for factor, grows in ((0.97, False), (1.03, True)):
        log_abs = run_case(name, hp.with_changes(lr=factor * lr_c), k, steps=6000)
        assert (log_envelope_rate(log_abs, 40 * k) > 0) == grows
    # Every smaller lr on a grid is stable, from matrices built with the documented formulas.
    for lr in np.linspace(lr_c / 200, lr_c * (1 - 1e-6), 200):
        beta, c_lag, c_now, _, _ = documented_dynamics(name, lr, KAPPA_LAG, KAPPA_NOW, 0.0)
        assert spectral_radius(cycle_by_multiplication(beta, c_lag, c_now, k)[0]) < 1


def test_adamw_critical_learning_rate_is_capped_by_the_decoupled_decay():
    fields, _ = OPTIMIZER_CASES["adamw"]
    hp = Hyperparameters(refresh_interval=4, **fields)
    cap = 1 / fields["weight_decay"]
    assert critical_learning_rate(hp, curvature_lag=KAPPA_LAG, curvature_now=KAPPA_NOW) == cap
    for lr in np.linspace(cap / 200, cap * (1 - 1e-9), 200):
        beta, c_lag, c_now, _, _ = documented_dynamics("adamw", lr, KAPPA_LAG, KAPPA_NOW, 0.0)
        assert spectral_radius(cycle_by_multiplication(beta, c_lag, c_now, 4)[0]) < 1
    # Negligible decay: the lr scan (momentum moving with lr) agrees with the plain common-scale
    # scan (adam).
    tiny = hp.with_changes(weight_decay=1e-300, refresh_interval=6)
    assert critical_learning_rate(tiny, curvature_lag=KAPPA_LAG) == pytest.approx(
        critical_learning_rate(tiny.with_changes(optimizer="adam"), curvature_lag=KAPPA_LAG),
        rel=1e-11,
    )


def reference_adamw_critical_lr(hp, kappa_lag, kappa_now, criterion, ratio=1.001):
    """The pure-Python lr scan that critical_learning_rate / oscillation_onset used for adamw
    with decay before the compiled scan took it over (kept as the oracle): every lr mapped by
    Hyperparameters.dynamics, judged by the exact grid, a geometric scan from total c = 1e-9 to
    lr = 1 / weight_decay (returned if never), bisection to relative 1e-13."""
    lag_model, lag_steps = ("delay", hp.delay) if hp.delay else ("refresh", hp.refresh_interval)

    def holds(lrs):
        models = [hp.with_changes(lr=float(lr)).dynamics(kappa_lag, kappa_now) for lr in lrs]
        codes = stability_grid(
            [m.beta_effective for m in models],
            [m.c_lag for m in models],
            np.full(len(models), float(lag_steps)),
            c_now=[m.c_now for m in models],
            lag_model=lag_model,
        ).regime_code
        return codes == 2 if criterion == "unstable" else codes != 0

    lr_cap = 1.0 / hp.weight_decay
    here = hp.dynamics(kappa_lag, kappa_now)
    total_per_lr = (here.c_lag + here.c_now) / hp.lr
    lower = min(1e-9 / total_per_lr, 0.5 * lr_cap)
    scan_limit = 1e9 / total_per_lr
    if holds([lower])[0]:
        return 0.0
    while True:
        lrs = lower * ratio ** np.arange(1, 257, dtype=np.float64)
        lrs = lrs[(lrs < lr_cap) & (lrs <= scan_limit)]
        if lrs.size == 0:
            return lr_cap if lr_cap <= scan_limit else math.inf
        hits = np.flatnonzero(holds(lrs))
        if hits.size:
            upper = float(lrs[hits[0]])
            lower = float(lrs[hits[0] - 1]) if hits[0] > 0 else lower
            break
        lower = float(lrs[-1])
    while upper - lower > 1e-13 * upper:
        mid = 0.5 * (lower + upper)
        if holds([mid])[0]:
            upper = mid
        else:
            lower = mid
    return upper


@pytest.mark.parametrize(
    ("lag", "kappa_lag", "kappa_now", "decay"),
    [
        ({"refresh_interval": 1}, 1.0, 0.2, 0.5),
        ({"refresh_interval": 8}, 1.0, 0.2, 0.5),
        ({"refresh_interval": 4}, 1.0, 0.2, 0.5),  # capped: stable up to lr = 1 / decay
        ({"refresh_interval": 40}, 3.0, 0.0, 0.05),
        ({"refresh_interval": 6}, -0.3, 1.0, 0.2),  # negative lagged curvature (k3 KL)
        ({"delay": 1}, 1.0, 0.2, 0.5),
        ({"delay": 5}, 2.0, 0.1, 0.1),
    ],
)
def test_adamw_decay_thresholds_in_the_core_equal_the_python_lr_scan(
    lag, kappa_lag, kappa_now, decay
):
    hp = Hyperparameters(
        lr=0.2, momentum=0.9, optimizer="adamw", adam_preconditioner=0.5, weight_decay=decay, **lag
    )
    # A coarser scan than the default (the same for both) keeps the Python oracle fast.
    curvature = {"curvature_lag": kappa_lag, "curvature_now": kappa_now, "scan_ratio": 1.02}
    for criterion, got in (
        ("unstable", critical_learning_rate(hp, **curvature)),
        ("oscillatory", oscillation_onset(hp, **curvature)),
    ):
        expected = reference_adamw_critical_lr(hp, kappa_lag, kappa_now, criterion, 1.02)
        assert got == pytest.approx(expected, rel=1e-12, abs=0), criterion


@pytest.mark.parametrize("name", list(OPTIMIZER_CASES))
def test_optimizer_matrices_continuum_and_variance_follow_documented_mapping(name):
    fields, _ = OPTIMIZER_CASES[name]
    lr, k = fields["lr"], 6
    hp = Hyperparameters(refresh_interval=k, group_size=4, **fields)
    beta, c_lag, c_now, _, _ = documented_dynamics(name, lr, KAPPA_LAG, KAPPA_NOW, 0.0)
    report = stability(hp, curvature_lag=KAPPA_LAG, curvature_now=KAPPA_NOW)
    assert (report.momentum, report.c_lag, report.c_now) == pytest.approx((beta, c_lag, c_now))
    product = cycle_by_multiplication(beta, c_lag, c_now, k)[0]
    assert report.spectral_radius == pytest.approx(spectral_radius(product), rel=1e-9)
    for lag, big_lag in (("mean", (k - 1) / 2), ("paper", float(k))):
        _, _, _, mass, damping = documented_dynamics(name, lr, KAPPA_LAG, KAPPA_NOW, big_lag)
        cont = continuum(hp, curvature_lag=KAPPA_LAG, curvature_now=KAPPA_NOW, lag=lag)
        assert (cont.mass, cont.damping, cont.stiffness) == pytest.approx(
            (mass, damping, c_lag + c_now)
        )
        assert cont.zeta == pytest.approx(damping / (2 * math.sqrt(mass * (c_lag + c_now))))
    # Exact variance: scipy's Lyapunov solution on the documented cycle system.
    result = stationary_variance(hp, curvature_lag=KAPPA_LAG, curvature_now=KAPPA_NOW)
    product, gain = cycle_by_multiplication(beta, c_lag, c_now, k)
    p0 = scipy.linalg.solve_discrete_lyapunov(product, result.noise_variance * np.outer(gain, gain))
    phases = [
        cycle_by_multiplication(beta, c_lag, c_now, j)[0][0]
        @ p0
        @ cycle_by_multiplication(beta, c_lag, c_now, j)[0][0]
        + result.noise_variance * cycle_by_multiplication(beta, c_lag, c_now, j)[1][0] ** 2
        for j in range(k)
    ]
    assert result.exact == pytest.approx(np.mean(phases), rel=1e-9)
    eta = {"sgd": lr, "heavy_ball": lr * 0.7}.get(name, lr * 0.1 / 0.5)
    assert result.noise_variance == pytest.approx(eta**2 / 4)


def test_from_optimizer_matches_string_form_and_rejects_what_the_model_lacks():
    opt = gd.Optimizer(kind="adamw", lr=0.01, beta1=0.85, eps=1e-3, weight_decay=0.1)
    hp = Hyperparameters.from_optimizer(opt, grad_rms=0.4, refresh_interval=3)
    same = Hyperparameters(
        lr=0.01,
        momentum=0.85,
        optimizer="adamw",
        adam_preconditioner=0.401,
        weight_decay=0.1,
        refresh_interval=3,
    )
    assert hp == same
    dyn = gd.effective_dynamics(opt, kappa_lag=1.0, kappa_now=0.5, grad_rms=0.4)
    report = stability(hp, curvature_lag=1.0, curvature_now=0.5)
    assert (report.momentum, report.c_lag, report.c_now) == pytest.approx(
        (dyn.beta_effective, dyn.c_lag, dyn.c_now), rel=1e-14
    )
    heavy = gd.Optimizer(kind="heavy_ball", lr=0.1, momentum=0.7, dampening=0.2)
    assert Hyperparameters.from_optimizer(heavy) == Hyperparameters(
        lr=0.1, momentum=0.7, dampening=0.2
    )
    sgd = Hyperparameters.from_optimizer(gd.Optimizer(kind="sgd", lr=0.1, weight_decay=0.3))
    assert sgd.optimizer == "sgd" and sgd.momentum == 0.0 and sgd.weight_decay == 0.3
    # heavy_ball with momentum 0 is torch SGD (dampening ignored without a buffer).
    plain = Hyperparameters(lr=0.1, momentum=0.0, dampening=0.5)
    assert plain.effective_lr == 0.1 and plain.effective_momentum == 0.0
    with pytest.raises(ValueError, match="grad_rms"):
        Hyperparameters.from_optimizer(opt)
    with pytest.raises(ValueError, match="reset_state"):
        Hyperparameters.from_optimizer(gd.Optimizer(kind="sgd", lr=0.1, reset_state=True))
    with pytest.raises(ValueError, match="optimizer"):
        Hyperparameters.from_optimizer("adam", grad_rms=1.0)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Negative lagged curvature (TRL's k3 KL evaluated at stale samples): c_lag < 0 < c_lag + c_now.


@settings(max_examples=25, deadline=None)
@given(
    beta=st.floats(0.0, 0.9),
    c_now=st.floats(0.02, 3.0),
    share=st.floats(0.05, 0.95),
    k=st.integers(1, 12),
)
def test_negative_lagged_curvature_spectrum_matches_simulation(beta, c_now, share, k):
    c_lag = -share * c_now
    hp = Hyperparameters(lr=1.0, momentum=beta, refresh_interval=k)
    report = stability(hp, curvature_lag=c_lag, curvature_now=c_now)
    product = cycle_by_multiplication(beta, c_lag, c_now, k)[0]
    reference = spectral_radius(product)
    assert report.spectral_radius == pytest.approx(reference, rel=1e-8, abs=1e-12)
    np.testing.assert_allclose(
        report.transition_matrix,
        product[:2, :2] + np.array([[product[0, 2], 0], [product[1, 2], 0]]),
        rtol=1e-9,
        atol=1e-12,
    )
    if abs(math.log(reference)) < 0.02 * k:
        return  # too close to marginal for a finite simulation to call
    window = 8 * k
    # The heavy-ball buffer form with lr 1 is the recurrence itself (state rescaled, log kept).
    log_abs = torch_optimizer_log_abs(
        "heavy_ball",
        lr=1.0,
        momentum=beta,
        kappa_lag=c_lag,
        kappa_now=c_now,
        refresh_interval=k,
        steps=60 * window + 400,
    )
    rate = log_envelope_rate(log_abs, window)
    assert (rate < 0) == report.stable
    assert rate == pytest.approx(math.log(report.decay_rate), rel=0.1, abs=2e-3)


def test_negative_lagged_curvature_refresh_stabilises():
    # The simulator's two-arm k3 case (docs/simulate.md): kappa_lag -0.030, kappa_now 0.340 at
    # lr 0.5 and heavy ball 0.9; and the beta = 0 closed form r + (1 - r) (1 - c_now)^K.
    for beta, c_lag, c_now in ((0.9, -0.015, 0.17), (0.0, -0.05, 0.1), (0.5, -0.02, 0.3)):
        hp = Hyperparameters(lr=1.0, momentum=beta)
        radii = [
            stability(
                hp.with_changes(refresh_interval=k), curvature_lag=c_lag, curvature_now=c_now
            ).spectral_radius
            for k in range(1, 13)
        ]
        reference = [
            spectral_radius(cycle_by_multiplication(beta, c_lag, c_now, k)[0]) for k in range(1, 13)
        ]
        np.testing.assert_allclose(radii, reference, rtol=1e-9)
        if beta != 0.5:
            assert np.all(np.diff(reference) < 0)  # the cycle's spectral radius falls with K
        else:  # in-cycle ringing (complex step roots) makes the fall non-monotone in K
            assert reference[-1] < 0.2 * reference[0]
        assert (
            critical_refresh_interval(
                hp, curvature_lag=c_lag, curvature_now=c_now, max_interval=2000
            )
            is None
        )
        if beta == 0.0:
            r = -c_lag / c_now
            closed = [r + (1 - r) * (1 - c_now) ** k for k in range(1, 13)]
            np.testing.assert_allclose(reference, closed, rtol=1e-12)


def test_negative_lagged_curvature_thresholds_delay_and_grid():
    beta, c_lag, c_now = 0.6, -0.1, 0.5
    # Learning-rate threshold (both stiffnesses scale with lr) against a direct simulation.
    hp = Hyperparameters(lr=1.0, momentum=beta, refresh_interval=5)
    lr_c = critical_learning_rate(hp, curvature_lag=c_lag, curvature_now=c_now)
    for factor, grows in ((0.97, False), (1.03, True)):
        x = simulate(
            beta, factor * lr_c * c_lag, factor * lr_c * c_now, steps=4000, refresh_interval=5
        )
        assert (envelope_rate(x, 100) > 0) == grows
    for lr in np.linspace(lr_c / 200, lr_c * (1 - 1e-6), 200):
        assert spectral_radius(cycle_by_multiplication(beta, lr * c_lag, lr * c_now, 5)[0]) < 1
    onset = oscillation_onset(hp, curvature_lag=c_lag, curvature_now=c_now)
    assert 0 < onset <= lr_c
    # Delay model: Eigen / Newton / Schur-Cohn paths against numpy eigvals, D up to 64.
    rng = np.random.default_rng(11)
    n = 300
    betas = rng.uniform(0, 0.95, n)
    now = np.exp(rng.uniform(np.log(1e-3), np.log(1.5), n))
    lagged = -rng.uniform(0.05, 0.95, n) * now
    delays = rng.integers(0, 65, n).astype(float)
    grid = stability_grid(betas, lagged, delays, c_now=now, lag_model="delay")
    reference = [
        spectral_radius(delay_state_matrix(b, cl, cn, int(d)))
        for b, cl, cn, d in zip(betas, lagged, now, delays, strict=True)
    ]
    np.testing.assert_allclose(grid.spectral_radius, reference, rtol=1e-7, atol=1e-12)
    refresh = stability_grid(betas, lagged, (delays + 1), c_now=now)
    reference = [
        spectral_radius(cycle_by_multiplication(b, cl, cn, int(d + 1))[0])
        for b, cl, cn, d in zip(betas, lagged, now, delays, strict=True)
    ]
    np.testing.assert_allclose(refresh.spectral_radius, reference, rtol=1e-7, atol=1e-12)
    d_hp = Hyperparameters(lr=1.0, momentum=0.9)
    d_c = critical_delay(d_hp, curvature_lag=-0.02, curvature_now=3.9, max_delay=40)
    radii = [spectral_radius(delay_state_matrix(0.9, -0.02, 3.9, d)) for d in range(41)]
    unstable = [d for d, r in enumerate(radii) if r >= 1]
    assert d_c == (unstable[0] if unstable else None)


def test_negative_lagged_curvature_continuum_mass_shrinks_damping_grows():
    hp = Hyperparameters(lr=0.1, momentum=0.5, refresh_interval=9)
    positive = continuum(hp, curvature_lag=0.5, curvature_now=1.0)
    negative = continuum(hp, curvature_lag=-0.5, curvature_now=1.0)
    c, big_lag = 0.05, 4.0
    assert negative.mass == pytest.approx(0.75 - c * big_lag**2 / 2)
    assert negative.damping == pytest.approx(0.5 + c * big_lag)
    assert negative.mass < positive.mass and negative.damping > positive.damping
    assert negative.stiffness == pytest.approx(0.05) and not negative.first_order_reduction
    assert negative.regime == ("oscillatory" if negative.zeta < 1 else "overdamped")
    # Long cycles: c_lag L^2 < -(1 + beta) removes the inertia; first-order reduction.
    long = continuum(hp.with_changes(refresh_interval=41), curvature_lag=-0.5, curvature_now=1.0)
    assert long.mass < 0 and long.first_order_reduction
    assert long.regime == "overdamped" and long.mu == 0 and math.isinf(long.zeta)
    assert long.tau == pytest.approx(long.damping / long.stiffness)
    assert long.stationary_variance == pytest.approx(long.temperature / long.stiffness)
    # Its relaxation time tau is the exact slow relaxation to within a factor 2 (beta 0 case).
    exact = stability(
        hp.with_changes(momentum=0.0, refresh_interval=41), curvature_lag=-0.5, curvature_now=1.0
    )
    first = continuum(
        hp.with_changes(momentum=0.0, refresh_interval=41), curvature_lag=-0.5, curvature_now=1.0
    )
    assert 0.5 < first.tau / exact.relaxation_steps < 2.0
