"""Joint fits against an independent stacked least-squares solve and against the truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.stats import chi2

import grpo_dynamics as gd

TRUTH = {"r0": 0.1, "r_inf": 0.8, "tau": 40.0, "mu": 0.6}
GROUP_SIZES = (4, 16, 64)


def runs_over_group_sizes(seed: int, truth=TRUTH, n_points: int = 300, noise_at_g1: float = 0.12):
    """Same trajectory, noise sd proportional to 1/sqrt(G) (the 1/G variance law)."""
    rng = np.random.default_rng(seed)
    t = np.arange(1.0, n_points + 1.0)
    clean = gd.trajectory(t, **truth)
    return [(t, clean + rng.normal(0.0, noise_at_g1 / math.sqrt(g), t.size)) for g in GROUP_SIZES]


def stacked_negative_log_likelihood(runs, shape, variances):
    total = 0.0
    for (t, r), var in zip(runs, variances, strict=True):
        rss = np.sum((gd.trajectory(t, *shape) - r) ** 2)
        total += 0.5 * (rss / var + t.size * math.log(var))
    return total


def test_joint_fit_reaches_the_stacked_ml_optimum():
    runs = runs_over_group_sizes(seed=1)
    result = gd.fit_joint(runs)
    assert result.status == "converged"
    shape = [result.params[name] for name in ("r0", "r_inf", "tau", "mu")]

    # Independent check: minimise the full Gaussian likelihood over (shape, log variances) with
    # finite-difference Jacobians, started from the truth.
    def residuals(z):
        shape, log_var = z[:4], z[4:]
        return np.concatenate(
            [
                (gd.trajectory(t, *shape) - r) / math.exp(0.5 * lv)
                for (t, r), lv in zip(runs, log_var, strict=True)
            ]
        )

    # Profile out the variances by iterating exactly as ML prescribes, with scipy's own solver.
    z = np.array([*TRUTH.values(), 0.0, 0.0, 0.0])
    for _ in range(30):
        z[:4] = least_squares(
            lambda s: residuals(np.concatenate([s, z[4:]])),
            z[:4],
            x_scale="jac",
            xtol=1e-14,
            ftol=1e-14,
            gtol=1e-14,
        ).x
        z[4:] = [math.log(np.mean((gd.trajectory(t, *z[:4]) - r) ** 2)) for t, r in runs]
    ours = stacked_negative_log_likelihood(runs, shape, result.noise_variance)
    reference = stacked_negative_log_likelihood(runs, z[:4], np.exp(z[4:]))
    assert ours <= reference + 1e-7 * abs(reference)
    np.testing.assert_allclose(shape, z[:4], rtol=1e-5)


def test_group_size_invariance_and_the_one_over_g_law():
    result = gd.fit_joint(runs_over_group_sizes(seed=2))
    for name, value in TRUTH.items():
        assert abs(result.params[name] - value) < 4 * result.stderr[name], name
    # Noise variance ~ 1/G: log-log slope of the per-run variances against G is -1.
    slope = np.polyfit(np.log(GROUP_SIZES), np.log(result.noise_variance), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1)
    assert result.lr_dof == 2 * 4
    assert result.lr_pvalue > 1e-3  # sharing is true here


def test_likelihood_ratio_rejects_sharing_when_runs_differ():
    runs = runs_over_group_sizes(seed=3)
    t, r = runs[2]
    other = {**TRUTH, "tau": 20.0}
    runs[2] = (t, r - gd.trajectory(t, **TRUTH) + gd.trajectory(t, **other))
    assert gd.fit_joint(runs).lr_pvalue < 1e-6
    # Sharing only the plateau is still fine.
    partial = gd.fit_joint(runs, shared=("r_inf",))
    assert partial.lr_pvalue > 1e-3 and partial.lr_dof == 2
    assert partial.run_params[2]["tau"] == pytest.approx(20.0, rel=0.1)


def test_lr_statistic_is_chi_square_under_the_null():
    """Across seeds the p-values of a true sharing hypothesis are not concentrated near 0."""
    pvalues = [
        gd.fit_joint(runs_over_group_sizes(seed=100 + s, n_points=150)).lr_pvalue for s in range(12)
    ]
    # P(min of 12 uniforms < 0.002) = 2.4%: a systematic bias in the statistic would show.
    assert min(pvalues) > 0.002
    assert np.mean(pvalues) > 0.2


def test_scaling_exponent_recovered():
    rng = np.random.default_rng(7)
    sizes = np.array([0.5, 1.5, 3.0, 7.0])
    amplitude, exponent = 60.0, 0.3
    t = np.arange(1.0, 401.0)
    runs = []
    for size in sizes:
        tau = amplitude * size**-exponent
        truth = {"r0": rng.uniform(0.0, 0.2), "r_inf": rng.uniform(0.6, 0.9), "tau": tau, "mu": 0.1}
        runs.append((t, gd.trajectory(t, **truth) + rng.normal(0, 0.01, t.size)))
    result = gd.fit_scaling(runs, sizes)
    assert result.status == "converged"
    assert abs(result.exponent - exponent) < 4 * result.exponent_stderr
    assert result.exponent_stderr < 0.05
    assert abs(result.amplitude - amplitude) < 4 * result.amplitude_stderr
    for size, p in zip(sizes, result.run_params, strict=True):
        assert p["tau"] == pytest.approx(result.amplitude * size**-result.exponent, rel=1e-12)


def test_bad_input_names_the_argument():
    runs = runs_over_group_sizes(seed=4)
    with pytest.raises(ValueError, match="at least 2 runs"):
        gd.fit_joint(runs[:1])
    with pytest.raises(ValueError, match="shared"):
        gd.fit_joint(runs, shared=("tau", "omega"))
    with pytest.raises(ValueError, match=r"runs\[1\]"):
        gd.fit_joint([runs[0], (runs[1][0][:5], runs[1][1])])
    with pytest.raises(ValueError, match="sizes"):
        gd.fit_scaling(runs, [1.0, 2.0])
    with pytest.raises(ValueError, match="sizes"):
        gd.fit_scaling(runs, [1.0, -2.0, 3.0])
    with pytest.raises(ValueError, match="distinct"):
        gd.fit_scaling(runs, [1.0, 1.0, 1.0])


def test_nan_rewards_are_gaps():
    runs = runs_over_group_sizes(seed=5)
    t, r = runs[0]
    r = r.copy()
    r[10:20] = np.nan
    result = gd.fit_joint([(t, r), *runs[1:]])
    assert result.n_points.tolist() == [t.size - 10, t.size, t.size]
    assert chi2.sf(result.lr_statistic, result.lr_dof) == pytest.approx(result.lr_pvalue, rel=1e-10)
