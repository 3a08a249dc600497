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
from grpo_dynamics._fit import ModelName

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


# ---------------------------------------------------------------------------------------------
# 4. a constant weight scale does not change the fit


@pytest.mark.parametrize("model", ["exponential", "oscillator", "logistic"])
def test_fit_is_invariant_to_a_constant_weight_scale(model: ModelName) -> None:
    rng = np.random.default_rng(7)
    t = np.arange(200.0)
    r = 0.8 - 0.6 * np.exp(-t / 40.0) + 0.03 * rng.standard_normal(t.size)
    w = rng.uniform(0.5, 2.0, t.size)
    base = gd.fit(t, r, model, weights=w)
    for c in (1e-45, 1.0, 1e250):
        scaled = gd.fit(t, r, model, weights=c * w)
        assert scaled.status == base.status
        for name, value in base.params.items():
            assert scaled.params[name] == pytest.approx(value, rel=1e-8, abs=1e-12), (c, name)
            assert scaled.stderr[name] == pytest.approx(base.stderr[name], rel=1e-6, nan_ok=True)
        assert scaled.rss == pytest.approx(c * base.rss, rel=1e-8)
        assert scaled.aic == pytest.approx(base.aic, rel=1e-10)
        assert scaled.r2 == pytest.approx(base.r2, rel=1e-10)
    # a power-of-two scale is exact: the fits are bit-identical
    exact = gd.fit(t, r, model, weights=w * 2.0**-160)
    assert exact.params == base.params
    assert exact.rss == base.rss * 2.0**-160


def test_fit_many_normalises_each_series_on_its_own() -> None:
    rng = np.random.default_rng(8)
    t = np.arange(150.0)
    R = 0.7 - 0.5 * np.exp(-t / 30.0) + 0.02 * rng.standard_normal((3, t.size))
    w = rng.uniform(0.5, 2.0, (3, t.size))
    base = gd.fit_many(t, R, model="exponential", weights=w, threads=1)
    scales = np.array([1e-45, 1.0, 1e250])[:, None]
    scaled = gd.fit_many(t, R, model="exponential", weights=w * scales, threads=1)
    np.testing.assert_allclose(scaled.params, base.params, rtol=1e-8)
    np.testing.assert_allclose(scaled.rss, base.rss * scales[:, 0], rtol=1e-8)
    assert list(scaled.status) == list(base.status)


# ---------------------------------------------------------------------------------------------
# 5. a log that starts late: t0 defaults to the first logged step, max_iter always explained


def _late_log(start: float = 5000.0) -> tuple[np.ndarray, np.ndarray]:
    from grpo_dynamics._trajectory import trajectory

    rng = np.random.default_rng(3)
    u = np.arange(400.0)
    r = np.asarray(trajectory(u, 0.1, 0.8, 40.0, 1.0)) + 0.03 * rng.standard_normal(u.size)
    return start + u, r


def test_diagnose_and_forecast_start_from_the_first_logged_step() -> None:
    import pandas as pd

    t, r = _late_log()
    reference = gd.fit(t - t[0], r, "oscillator")  # the same curve logged from step 0
    assert reference.status == "converged"
    frame = pd.DataFrame({"reward": r}, index=pd.Index(t, name="step"))
    d = gd.diagnose(frame)
    assert d.fit is not None and d.fit.t0 == t[0]
    assert d.fit.params["r_inf"] == pytest.approx(reference.params["r_inf"], rel=1e-6)
    assert d.fit.params["r_inf"] == pytest.approx(0.8, abs=0.02)
    explicit_fit = gd.diagnose(frame, t0=0.0).fit  # an explicit t0 is honoured
    assert explicit_fit is not None and explicit_fit.t0 == 0.0
    with pytest.raises(ValueError, match="t0: must be finite"):
        gd.diagnose(frame, t0=math.nan)
    late = gd.forecast(frame, upto=float(t[150]), candidates=("oscillator", "level"))
    early_frame = pd.DataFrame({"reward": r}, index=pd.Index(t - t[0], name="step"))
    early = gd.forecast(early_frame, upto=150.0, candidates=("oscillator", "level"))
    assert late.end == pytest.approx(early.end, rel=1e-9)
    explicit = gd.forecast(frame, upto=float(t[150]), candidates=("oscillator", "level"), t0=t[0])
    assert explicit.end == pytest.approx(late.end, rel=1e-12)


def test_cli_fit_and_compare_default_t0_is_the_first_step(tmp_path, capsys) -> None:
    import json

    from grpo_dynamics.cli import main

    t, r = _late_log()
    log = tmp_path / "late.csv"
    log.write_text(
        "step,reward\n" + "".join(f"{a:g},{b:.17g}\n" for a, b in zip(t, r, strict=True))
    )
    reference = gd.fit(t, r, "oscillator", t0=float(t[0]))
    assert main(["fit", str(log), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["fit_status"] == "converged"
    assert row["r_inf"] == pytest.approx(reference.params["r_inf"], rel=1e-9)
    assert main(["fit", str(log), "--json", "--t0", "0"]) == 0
    zero_row = json.loads(capsys.readouterr().out)[0]
    assert zero_row["r_inf"] != row["r_inf"]
    assert main(["compare", str(log), "--json"]) == 0
    assert "oscillator" in capsys.readouterr().out
    assert main(["diagnose", str(log), "--json"]) == 0
    assert main(["forecast", str(log), "--json", "--fraction", "0.5"]) == 0


def test_max_iter_always_carries_a_reason() -> None:
    t, r = _late_log()
    models: tuple[ModelName, ...] = ("oscillator", "exponential", "logistic")
    for model in models:
        result = gd.fit(t, r, model, max_iter=1, n_starts=1)
        assert result.status == "max_iter"
        assert result.reason.startswith("max_iter:")
        if model != "logistic":
            assert "t0 = 0" in result.reason and "first step 5000" in result.reason
    default = gd.fit(t, r)  # the reported case: t0 = 0 for a log starting at step 5000
    if default.status == "max_iter":
        assert "first step 5000" in default.reason
    batch = gd.fit_many(t, np.vstack([r, r]), model="exponential", max_iter=1, t0=t[0])
    assert all(str(x).startswith("max_iter:") for x in batch.reason)


# ---------------------------------------------------------------------------------------------
# 6. simulation sizes that cannot finish are rejected, the cap in the message


def test_simulate_huge_group_is_rejected_fast() -> None:
    import subprocess
    import sys

    code = (
        "import grpo_dynamics as gd\n"
        "try:\n"
        "    gd.simulate(gd.BanditConfig(group_size=2**62, steps=5, replicas=2))\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.startswith("group_size: must be <= 1073741824")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"group_size": 2**30 + 1}, "group_size: must be <= 1073741824"),
        ({"steps": 10**6, "replicas": 26}, "steps: steps * replicas must be <= 25000000"),
        ({"arm_rewards": [0.5] * 100_001}, "arm_rewards: must have <= 100000 arms"),
        (
            {"steps": 10**6, "replicas": 20, "batch_prompts": 200},
            "batch_prompts: steps * replicas * batch_prompts * n_arms must be <= 2000000000",
        ),
    ],
)
def test_simulation_caps_are_stated(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("*", r"\*")):
        gd.BanditConfig(**changes)  # type: ignore[arg-type]


def test_largest_group_finishes() -> None:
    from grpo_dynamics._simulate import MAX_GROUP_SIZE

    result = gd.simulate(gd.BanditConfig(group_size=MAX_GROUP_SIZE, steps=3, replicas=1))
    # one group of 2**30 rewards, each Bernoulli(p) with p the policy's expected reward
    # (0.5 at the uniform start): its std is sqrt(p (1 - p)) to sampling error ~ 1e-5
    p = float(result.expected_reward[0, 0])
    std = float(result.group_reward_std[0, 0])
    assert std == pytest.approx(math.sqrt(p * (1 - p)), rel=1e-3)


# ---------------------------------------------------------------------------------------------
# 7. long runs: no memory growth over repeated calls; threads do not change a fit


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def _growth(call: object, repeats: int = 3) -> list[float]:
    import gc

    assert callable(call)
    call()  # warm-up: compilation, allocator pools
    gc.collect()
    sizes = []
    for _ in range(repeats):
        call()
        gc.collect()
        sizes.append(_rss_mb())
    return sizes


def test_long_simulation_does_not_grow_memory() -> None:
    # 250,000 steps x 2 replicas (a quarter of the million steps this test first used, for a
    # fast suite; the bound is scaled with the size): one result holds 23 MB of observables,
    # so a leak of one result per call grows the RSS by 46 MB over the three measured calls
    config = gd.BanditConfig(steps=250_000, replicas=2, seed=1)

    def run() -> None:
        result = gd.simulate(config)
        assert np.isfinite(result.expected_reward[:, -1]).all()

    sizes = _growth(run)
    assert max(sizes) - min(sizes) < 5.0, sizes


def test_large_batch_fit_does_not_grow_memory() -> None:
    # 25,000 series (a quarter of the 100,000 this test first used, for a fast suite; the bound
    # is scaled with the size): one BatchFit holds 7.4 MB, so a leak of one result per call
    # grows the RSS by 15 MB over the three measured calls
    n = 25_000
    rng = np.random.default_rng(11)
    t = np.arange(10.0)
    R = 0.8 - 0.6 * np.exp(-t / 3.0) + 0.02 * rng.standard_normal((n, t.size))

    def run() -> None:
        batch = gd.fit_many(t, R, model="exponential", threads=2)
        assert len(batch.status) == n

    sizes = _growth(run)
    assert max(sizes) - min(sizes) < 6.0, sizes


def test_fit_many_is_identical_for_1_2_and_8_threads() -> None:
    rng = np.random.default_rng(12)
    t = np.arange(60.0)
    tau = rng.uniform(5, 40, (400, 1))
    R = 0.7 - 0.5 * np.exp(-t / tau) * np.cos(t / (2 * tau)) + 0.03 * rng.standard_normal((400, 60))
    R[::7, 10:14] = np.nan  # gaps
    R[5] = 0.3  # a constant series (bad input)
    runs = [gd.fit_many(t, R, model="oscillator", threads=k) for k in (1, 2, 8)]
    for other in runs[1:]:
        np.testing.assert_array_equal(other.params, runs[0].params)
        np.testing.assert_array_equal(other.stderr, runs[0].stderr)
        np.testing.assert_array_equal(other.rss, runs[0].rss)
        np.testing.assert_array_equal(other.n_iter, runs[0].n_iter)
        assert list(other.status) == list(runs[0].status)
        assert list(other.reason) == list(runs[0].reason)
