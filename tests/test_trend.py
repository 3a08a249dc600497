"""The one trend verdict: calibration on autocorrelated noise, power, parts against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from grpo_dynamics.trend import MAX_BINS, progress, trend_test


def _ar1(rng: np.random.Generator, n: int, phi: float, size: int) -> np.ndarray:
    """AR(1) noise with unit marginal standard deviation, started in its stationary law."""
    e = rng.standard_normal((size, n))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0] / np.sqrt(1.0 - phi**2)
    for i in range(1, n):
        x[:, i] = phi * x[:, i - 1] + e[:, i]
    return x * np.sqrt(1.0 - phi**2)


def _rate(hits: list[bool]) -> tuple[float, float]:
    p = float(np.mean(hits))
    return p, float(np.sqrt(max(p * (1 - p), 0.05 * 0.95) / len(hits)))


@pytest.mark.parametrize(
    ("n", "phi"),
    [(20, 0.0), (50, 0.0), (50, 0.3), (200, 0.0), (200, 0.6), (1000, 0.3), (5000, 0.0)],
)
def test_false_alarm_rate_is_at_most_five_percent_on_trendless_noise(n, phi):
    rng = np.random.default_rng(1000 + n + int(100 * phi))
    t = np.arange(n)
    hits = [trend_test(t, x).present for x in _ar1(rng, n, phi, 400)]
    rate, se = _rate(hits)
    assert rate <= 0.05 + 2.5 * se, f"false-alarm rate {rate:.3f} at n={n}, phi={phi}"


def test_power_on_a_linear_rise_of_one_and_a_half_noise_sd_over_50_points():
    # one noise SD over 50 points has power <= 0.55 for ANY valid 5% test (the known-sigma
    # z-test on the slope); 1.5 SD is where 80% becomes reachable (docs/diagnose.md)
    rng = np.random.default_rng(7)
    t = np.arange(50)
    detected = [
        trend_test(t, x + 1.5 * t / 49).direction == "rising" for x in _ar1(rng, 50, 0.0, 400)
    ]
    power, se = _rate(detected)
    assert power >= 0.70, power
    one_sd = [
        trend_test(t, x + 1.0 * t / 49).direction == "rising" for x in _ar1(rng, 50, 0.0, 400)
    ]
    assert 0.2 <= np.mean(one_sd) <= 0.56


def test_sen_slope_and_direction_match_scipy_theilslopes_and_kendalltau():
    rng = np.random.default_rng(3)
    t = np.sort(rng.choice(400, size=45, replace=False)).astype(float)
    y = 0.002 * t + rng.normal(0, 0.2, t.size)
    result = trend_test(t, y)
    reference = stats.theilslopes(y, t)
    assert result.slope == pytest.approx(reference.slope, rel=1e-12)
    tau = stats.kendalltau(t, y)
    assert np.sign(tau.statistic) == np.sign(result.statistic)
    # with no serial correlation the corrected p-value is at least the plain Kendall one
    assert result.p_value >= tau.pvalue * 0.5
    assert result.direction == "rising"


def test_long_runs_are_binned_and_fall_is_detected():
    rng = np.random.default_rng(4)
    t = np.arange(20_000)
    y = 0.5 - 0.3 * (t > 15_000) + rng.normal(0, 0.1, t.size)
    result = trend_test(t, y)
    assert result.n == t.size and result.n_bins == MAX_BINS
    assert result.direction == "falling"


def test_constant_and_tiny_series_have_no_trend():
    assert trend_test(np.arange(30), np.full(30, 0.2)).direction == "none"
    assert trend_test(np.arange(3), [0.0, 1.0, 2.0]).direction == "none"
    assert progress(np.arange(3), [0.0, 1.0, 2.0]).state == "too short"


def test_progress_tells_plateau_from_still_rising_and_flat():
    rng = np.random.default_rng(5)
    t = np.arange(300)
    sigmoid = 0.2 + 0.6 / (1 + np.exp(-(t - 60) / 12))
    noise = rng.normal(0, 0.03, t.size)
    assert progress(t, sigmoid + noise).state == "plateau"
    rising = 0.2 + 0.6 * t / 299
    assert progress(t, rising + noise).state == "rising"
    assert progress(t, 0.5 + noise).state == "flat"
    collapse = np.where(t < 250, 0.7, 0.7 - 0.012 * (t - 250)) + noise
    assert progress(t, collapse).state == "falling"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"alpha": 0.0}, "alpha: must be in"), ({"alpha": 1.5}, "alpha: must be in")],
)
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        trend_test(np.arange(10), np.arange(10.0), **kwargs)
    with pytest.raises(ValueError, match="reward: shape"):
        trend_test(np.arange(10), np.arange(11.0))
    with pytest.raises(ValueError, match="recent_fraction"):
        progress(np.arange(10), np.arange(10.0), recent_fraction=0)


def test_a_rise_that_overshoots_or_falls_back_is_still_a_trend():
    # Mann-Kendall's pairs cancel on these; the level test over bin means catches them
    rng = np.random.default_rng(8)
    t = np.arange(300.0)
    overshoot = 0.78 - 0.63 * np.exp(-t / 60) * (np.cos(t / 25) + 0.4 * np.sin(t / 25))
    result = trend_test(t, overshoot + rng.normal(0, 0.03, t.size))
    assert result.direction == "rising", result
    u = np.arange(100.0)
    rise_fall = np.where(u < 50, 0.2 + 0.012 * u, 0.8 - 0.012 * (u - 50))
    assert trend_test(u, rise_fall + rng.normal(0, 0.05, u.size)).present


def test_an_overshoot_settling_back_is_a_plateau_not_a_decline():
    # an underdamped rise (docs/model.md §4) overshoots by ~4% of its gain and settles back:
    # the recent window falls significantly, but by far less than the gain
    rng = np.random.default_rng(0)
    t = np.arange(100.0)
    a, w = 0.05, 0.05  # tau 20, mu 0.5: decay rate and angular frequency
    x0 = 0.1 - 0.8
    clean = 0.8 + x0 * np.exp(-a * t) * (np.cos(w * t) + (a / w) * np.sin(w * t))
    assert progress(t, clean + rng.normal(0, 0.02, t.size)).state == "plateau"
