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


# ---------------------------------------------------------------------------------------------
# bounds: NaN stderr and "unidentified", as in fit


def test_parameter_on_its_bound_has_nan_stderr_and_is_unidentified():
    """Sigmoid rises fitted by the from-rest oscillator: the shared tau ends on its lower
    bound (one logging interval), where fit reports NaN; so must the joint fit."""
    from scipy.special import expit

    rng = np.random.default_rng(0)
    t = np.arange(1.0, 51.0)
    runs = [
        (t, 0.25 + 0.6 * expit((t - 22.0) / 5.0) + 0.03 * rng.standard_normal(t.size))
        for _ in range(2)
    ]
    singles = [gd.fit(ti, ri) for ti, ri in runs]
    assert all(s.at_bound["tau"] and math.isnan(s.stderr["tau"]) for s in singles)
    result = gd.fit_joint(runs)
    assert result.params["tau"] == pytest.approx(1.0, rel=1e-6)  # precondition: on the bound
    assert math.isnan(result.stderr["tau"])
    assert "lower bound" in result.unidentified["tau"] and not result.identified
    k = result.shared.index("tau")
    assert np.isnan(result.covariance[k]).all() and np.isnan(result.covariance[:, k]).all()
    free = [j for j, name in enumerate(result.shared) if name != "tau"]
    assert np.all(np.isfinite(result.covariance[np.ix_(free, free)]))
    # A run's own tau on its bound is named with the run's index.
    own = gd.fit_joint(runs, shared=("r0",))
    for i in range(2):
        if own.run_params[i]["tau"] == pytest.approx(1.0, rel=1e-6):
            assert "lower bound" in own.unidentified[f"tau[{i}]"]
    assert not own.identified


def test_well_determined_joint_fit_is_identified():
    result = gd.fit_joint(runs_over_group_sizes(seed=2))
    assert result.identified and result.unidentified == {}
    assert all(math.isfinite(v) for v in result.stderr.values())


def test_shared_mu_at_zero_is_a_point_estimate_not_unidentified():
    """Exponential truth: mu ends on its physical bound 0 with NaN stderr (as fit reports the
    nested exponential), and r_inf/tau stay identified."""
    rng = np.random.default_rng(8)
    t = np.arange(1.0, 301.0)
    clean = gd.trajectory(t, 0.1, 0.8, 40.0, 0.0)
    runs = [(t, clean + rng.normal(0, 0.02, t.size)) for _ in range(3)]
    result = gd.fit_joint(runs)
    if result.params["mu"] == 0.0:
        assert math.isnan(result.stderr["mu"]) and "mu" not in result.unidentified
    assert result.identified
    assert abs(result.params["tau"] - 40.0) < 4 * result.stderr["tau"]


# ---------------------------------------------------------------------------------------------
# the two-term noise law s_p^2 / B + s_c^2 / (B G), against direct simulation

S_P, S_C, B = 0.1, 0.4, 8  # prompt sd, completion sd, prompts per step


def simulate_batches(seed, group_sizes=GROUP_SIZES, n_points=150, taus=None, s_p=S_P, s_c=S_C):
    """Each logged reward is the mean of B prompts x G completions: a prompt effect
    N(0, s_p^2) shared by the prompt's G completions plus completion noise N(0, s_c^2)."""
    rng = np.random.default_rng(seed)
    t = np.arange(1.0, n_points + 1.0)
    runs = []
    for k, g in enumerate(group_sizes):
        truth = TRUTH if taus is None else {**TRUTH, "tau": taus[k]}
        prompt = rng.normal(0.0, s_p, (t.size, B, 1))
        completion = rng.normal(0.0, s_c, (t.size, B, g))
        runs.append((t, gd.trajectory(t, **truth) + (prompt + completion).mean(axis=(1, 2))))
    return runs


def test_noise_law_ml_is_the_likelihood_optimum():
    """fit_noise_model against scipy's Nelder-Mead on the same likelihood."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(12)
    g = np.array([2.0, 4.0, 8.0, 16.0, 64.0])
    b = np.array([8.0, 8.0, 4.0, 8.0, 2.0])
    n = np.array([100, 200, 150, 300, 120])
    v = S_P**2 / b + S_C**2 / (b * g)
    rss = v * rng.chisquare(n)
    model = gd.fit_noise_model(rss, n, g, b)

    def nll(log_theta):
        var = np.exp(log_theta[0]) / b + np.exp(log_theta[1]) / (b * g)
        return np.sum(n * np.log(var) + rss / var)

    ref = minimize(
        nll,
        np.log([0.02, 0.1]),
        method="Nelder-Mead",
        options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 20000},
    )
    np.testing.assert_allclose(
        [model.prompt_variance, model.completion_variance], np.exp(ref.x), rtol=1e-5
    )
    np.testing.assert_allclose(model.predicted_variance, model.variance(g, b), rtol=1e-14)
    assert model.lr_dof == 3


def test_noise_law_estimates_cover_the_truth_at_the_nominal_rate():
    """Residual sums of direct simulations around the true curve: the +-2 stderr intervals of
    s_p^2 and s_c^2 cover the truth about 95% of the time."""
    rng = np.random.default_rng(13)
    g = np.array([2, 4, 8, 16, 32, 64])
    n = 200
    hits = np.zeros(2)
    n_rep = 200
    for _ in range(n_rep):
        rss = []
        for gi in g:
            prompt = rng.normal(0.0, S_P, (n, B, 1))
            completion = rng.normal(0.0, S_C, (n, B, gi))
            rss.append(np.sum((prompt + completion).mean(axis=(1, 2)) ** 2))
        m = gd.fit_noise_model(rss, [n] * g.size, g, B)
        hits += [
            abs(m.prompt_variance - S_P**2) < 2 * m.prompt_variance_stderr,
            abs(m.completion_variance - S_C**2) < 2 * m.completion_variance_stderr,
        ]
    # binomial(200, 0.954): sd 1.5%; 4 sd either side
    assert np.all(np.abs(hits / n_rep - 0.954) < 0.06), hits / n_rep


def test_joint_fit_recovers_both_noise_terms():
    result = gd.fit_joint(simulate_batches(1, n_points=300), group_sizes=GROUP_SIZES, batch_sizes=B)
    noise = result.noise
    assert abs(noise.prompt_variance - S_P**2) < 3 * noise.prompt_variance_stderr
    assert abs(noise.completion_variance - S_C**2) < 3 * noise.completion_variance_stderr
    assert noise.lr_pvalue > 1e-3  # the law holds here
    np.testing.assert_allclose(result.noise_variance, noise.predicted_variance)
    for name, value in TRUTH.items():
        assert abs(result.params[name] - value) < 4 * result.stderr[name], name
    # the plain 1/G law would put all the variance in the G-dependent term: not so here
    assert noise.prompt_variance - 3 * noise.prompt_variance_stderr > 0


def test_lr_test_of_sharing_has_nominal_size_under_the_noise_law():
    """Same curve at every G, noise by the two-term law: p-values near uniform."""
    pvalues = np.array(
        [
            gd.fit_joint(
                simulate_batches(200 + s), group_sizes=GROUP_SIZES, batch_sizes=B
            ).lr_pvalue
            for s in range(24)
        ]
    )
    # P(>= 5 of 24 below 0.05 | uniform) = 0.7%; a biased statistic piles up near 0.
    assert np.sum(pvalues < 0.05) <= 4
    assert 0.3 < pvalues.mean() < 0.7
    assert stats_uniform_ks(pvalues) > 1e-3


def stats_uniform_ks(p):
    from scipy.stats import kstest

    return kstest(p, "uniform").pvalue


def test_rejected_sharing_reports_the_timescale_power_law():
    taus = [40.0 * (g / 16.0) ** 0.5 for g in GROUP_SIZES]  # tau ~ G^0.5
    result = gd.fit_joint(
        simulate_batches(5, n_points=300, taus=taus), group_sizes=GROUP_SIZES, batch_sizes=B
    )
    assert result.lr_pvalue < 1e-6
    ts = result.timescales
    assert ts.used.all()
    for tau, fitted, se in zip(taus, ts.tau, ts.tau_stderr, strict=True):
        assert abs(fitted - tau) < 4 * se
    assert abs(ts.exponent - 0.5) < 3 * ts.exponent_stderr and ts.exponent_stderr < 0.1
    # the same data with a G-independent curve: exponent compatible with 0
    flat = gd.fit_joint(simulate_batches(5, n_points=300), group_sizes=GROUP_SIZES, batch_sizes=B)
    assert abs(flat.timescales.exponent) < 3 * flat.timescales.exponent_stderr


def test_noise_law_is_rejected_when_variances_do_not_follow_it():
    g = np.array([4.0, 8.0, 16.0, 32.0])
    n = np.full(4, 300)
    rss = n * np.array([0.01, 0.002, 0.01, 0.002])  # up and down with G: no such law
    assert gd.fit_noise_model(rss, n, g).lr_pvalue < 1e-6


def test_noise_arguments_are_validated():
    runs = simulate_batches(3, n_points=30)
    with pytest.raises(ValueError, match="group_sizes: expected 3"):
        gd.fit_joint(runs, group_sizes=(4, 16))
    with pytest.raises(ValueError, match="group_sizes: must be > 0"):
        gd.fit_joint(runs, group_sizes=(4, -16, 64))
    with pytest.raises(ValueError, match="group_sizes: need at least two distinct"):
        gd.fit_joint(runs, group_sizes=(8, 8, 8))
    with pytest.raises(ValueError, match="group_sizes: required"):
        gd.fit_joint(runs, batch_sizes=8)
    with pytest.raises(ValueError, match="batch_sizes: must be > 0"):
        gd.fit_joint(runs, group_sizes=GROUP_SIZES, batch_sizes=0)
    with pytest.raises(ValueError, match="residual_sums: must be >= 0"):
        gd.fit_noise_model([1.0, -1.0], [10, 10], [4, 8])
    with pytest.raises(ValueError, match="n_points"):
        gd.fit_noise_model([1.0, 1.0], [10], [4, 8])
