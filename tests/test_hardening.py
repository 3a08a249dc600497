"""Silent wrong answers and unbounded sizes of issue 14, each a reproducer that failed before.

References are independent of the code under test: exact rational arithmetic (fractions) for
the stability boundary, scipy's Lyapunov solver for the stationary variance, a direct
computation with the zero-weight points removed for the weighted comparison, and fits at unit
weight scale for the weight-scale invariance.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import grpo_dynamics as gd

# ---------------------------------------------------------------------------------------------
# 1. compare with zero weights


def _curve(seed: int, n: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    r = 0.8 - 0.6 * np.exp(-t / 30.0) + 0.05 * rng.standard_normal(n)
    w = rng.uniform(0.5, 2.0, n)
    w[rng.random(n) < 0.3] = 0.0  # about 30 % of the points carry no weight
    return t, r, w


@pytest.mark.parametrize("seed", range(4))
def test_compare_zero_weights_are_not_observations(seed: int) -> None:
    t, r, w = _curve(seed)
    keep = w > 0
    with_zeros = gd.compare(t, r, weights=w)
    without = gd.compare(t[keep], r[keep], weights=w[keep])
    assert with_zeros.n_points == int(keep.sum())
    assert with_zeros.preferred == without.preferred
    assert with_zeros.trend == without.trend
    for a, b in zip(with_zeros.scores, without.scores, strict=True):
        assert a == b or (a.model == b.model and _same_floats(a, b))
    # the constant's AIC by hand: weighted Gaussian likelihood over the positive weights only
    n = int(keep.sum())
    wk, rk = w[keep], r[keep]
    rss = float(np.sum(wk * (rk - np.average(rk, weights=wk)) ** 2))
    log_lik = -0.5 * n * (math.log(2 * math.pi * rss / n) + 1) + 0.5 * float(np.sum(np.log(wk)))
    assert with_zeros["constant"].aic == pytest.approx(4 - 2 * log_lik, rel=1e-12)


def _same_floats(a: gd.ModelScore, b: gd.ModelScore) -> bool:
    fields = ("rss", "aic", "bic", "delta_aic", "lr_stat", "lr_pvalue")
    return all(
        (math.isnan(getattr(a, f)) and math.isnan(getattr(b, f))) or getattr(a, f) == getattr(b, f)
        for f in fields
    )


# ---------------------------------------------------------------------------------------------
# 2. and 3. the stability boundary: one rule, decided exactly at tiny stiffness


def _cycle_exact(beta: Fraction, c_lag: Fraction, c_now: Fraction, k: int) -> list[list[Fraction]]:
    """Refresh-cycle matrix of x_{t+1} = x_t + beta (x_t - x_{t-1}) - c_lag x_0 - c_now x_t over
    K steps from (x_0, x_{-1}), built by iterating the recurrence on the two unit states."""
    columns = []
    for x0, xm1 in ((Fraction(1), Fraction(0)), (Fraction(0), Fraction(1))):
        prev, cur, anchor = xm1, x0, x0
        for _ in range(k):
            prev, cur = cur, cur + beta * (cur - prev) - c_lag * anchor - c_now * cur
        columns.append((cur, prev))
    return [[columns[0][0], columns[1][0]], [columns[0][1], columns[1][1]]]


def _exactly_stable(m: list[list[Fraction]]) -> bool:
    """Jury conditions of a real 2x2 matrix, in exact arithmetic."""
    trace = m[0][0] + m[1][1]
    det = m[0][0] * m[1][1] - m[0][1] * m[1][0]
    return abs(det) < 1 and 1 - trace + det > 0 and 1 + trace + det > 0


def test_stationary_variance_at_the_flip_boundary_is_inf_and_everyone_agrees() -> None:
    hp = gd.Hyperparameters(lr=3.8, momentum=0.9)  # roots -1 and -0.9 (to rounding)
    assert gd.stationary_variance(hp, 1.0).exact == math.inf
    assert gd.stability(hp, 1.0).regime == "unstable"
    assert not gd.stability(hp, 1.0).stable
    lr_c = gd.critical_learning_rate(hp, 1.0)
    assert lr_c <= 3.8  # the point stability() calls unstable is not below the critical lr
    assert lr_c == pytest.approx(3.8, rel=1e-10)
    for lr in (lr_c, lr_c * (1 + 1e-11), 3.8, 3.9):
        assert gd.stability(hp.with_changes(lr=lr), 1.0).regime == "unstable"
        assert gd.stationary_variance(hp.with_changes(lr=lr), 1.0).exact == math.inf
    for lr in (lr_c * (1 - 1e-9), 3.0, 0.1):
        assert gd.stability(hp.with_changes(lr=lr), 1.0).stable


@pytest.mark.parametrize("lr", [3.8 * (1 - 1e-9), 3.5, 1.0, 0.05])
def test_stationary_variance_below_the_boundary_matches_scipy(lr: float) -> None:
    from scipy.linalg import solve_discrete_lyapunov

    hp = gd.Hyperparameters(lr=lr, momentum=0.9)
    got = gd.stationary_variance(hp, 1.0)
    f = np.array([[1.9 - lr, -0.9], [1.0, 0.0]])
    q = np.array([[got.noise_variance, 0.0], [0.0, 0.0]])
    want = solve_discrete_lyapunov(f, q)[0, 0]
    assert got.exact > 0
    assert got.exact == pytest.approx(want, rel=1e-6)


def test_critical_refresh_interval_at_tiny_stiffness_is_exact() -> None:
    hp = gd.Hyperparameters(lr=1.0, momentum=0.9)
    assert gd.critical_refresh_interval(hp, 1e-16) is None
    beta, c = Fraction(0.9), Fraction(1e-16)
    for k in (1, 2, 3, 4, 10, 40):
        assert _exactly_stable(_cycle_exact(beta, c, Fraction(0), k))
        report = gd.stability(hp.with_changes(refresh_interval=k), 1e-16)
        assert report.stable and report.regime != "unstable"  # rho may round to 1.0 or above
    grid = gd.stability_grid(0.9, 1e-16, np.arange(1, 41), lag_model="refresh")
    assert np.all(grid.stable)


@pytest.mark.parametrize(("beta", "c"), [(0.9, 1e-3), (0.5, 0.02), (0.0, 0.05), (0.95, 3e-4)])
def test_critical_refresh_interval_matches_exact_arithmetic(beta: float, c: float) -> None:
    hp = gd.Hyperparameters(lr=1.0, momentum=beta)
    k = gd.critical_refresh_interval(hp, c, max_interval=2000)
    assert k is not None
    fb, fc = Fraction(beta), Fraction(c)
    assert not _exactly_stable(_cycle_exact(fb, fc, Fraction(0), k))
    assert all(_exactly_stable(_cycle_exact(fb, fc, Fraction(0), j)) for j in (1, k // 2, k - 1))
    assert gd.stability(hp.with_changes(refresh_interval=k), c).regime == "unstable"
    assert gd.stability(hp.with_changes(refresh_interval=k - 1), c).stable
