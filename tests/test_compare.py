"""compare: model choice on one curve, with "is there a trend" taken from trend.trend_test.

References: scipy's Gaussian log-density for the constant's AIC, scipy.optimize.curve_fit for
the exponential's residual sum of squares, and trend_test itself for the trend verdict (the
contract is that compare cannot disagree with it).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import optimize, stats

import grpo_dynamics as gd
from grpo_dynamics import _compare, _core

T = np.arange(0.0, 150.0)


def _oscillator(t, p):
    return gd.trajectory(t, p[0], p[1], p[2], p[3])


@pytest.mark.parametrize(
    ("truth", "model"),
    [
        ({"model": "oscillator", "p": (0.1, 0.8, 15.0, 2.0)}, "oscillator"),
        ({"model": "exponential", "p": (0.1, 0.8, 25.0, 0.0)}, "exponential"),
        ({"model": "logistic", "p": (0.15, 0.75, 60.0, 8.0)}, "logistic"),
    ],
)
def test_compare_picks_the_generating_model(truth, model):
    rng = np.random.default_rng(8)
    p = truth["p"]
    if truth["model"] == "logistic":
        clean = _core.logistic_curve(T, *p)[0]
    else:
        clean = _oscillator(T, p)
    y = clean + 0.02 * rng.standard_normal(T.size)
    comparison = gd.compare(T, y)
    assert comparison.preferred == model and comparison.verdict == model
    table = comparison.to_pandas()
    assert table.loc[model, "preferred"] and table["preferred"].sum() == 1
    assert table.loc[model, "delta_aic"] == 0.0
    assert set(table.index) == {"constant", "exponential", "oscillator", "logistic"}
    # nesting: the oscillator can always do at least as well as the exponential
    assert table.loc["oscillator", "rss"] <= table.loc["exponential", "rss"] * (1 + 1e-10)


def test_a_fast_underdamped_rise_is_a_trend():
    # a rise that overshoots and settles is not monotone; the trend test still sees it
    rng = np.random.default_rng(8)
    y = _oscillator(T, (0.1, 0.8, 15.0, 2.0)) + 0.02 * rng.standard_normal(T.size)
    assert gd.compare(T, y).preferred == "oscillator"


def test_compare_says_no_trend_on_pure_noise():
    rng = np.random.default_rng(9)
    verdicts = [gd.compare(T, 0.5 + 0.05 * rng.standard_normal(T.size)) for _ in range(10)]
    assert [c.verdict for c in verdicts].count("no trend") >= 8
    for c in verdicts:
        assert (c.preferred == "constant") == (c.verdict == "no trend")


def test_constant_is_preferred_exactly_when_trend_test_finds_no_trend():
    # pure noise, weak and strong rises, a fall: both outcomes occur, and compare always agrees
    rng = np.random.default_rng(11)
    outcomes = set()
    for slope in (0.0, 0.0, 2e-5, 1e-4, 3e-4, 1e-3, -1e-3):
        y = 0.5 + slope * T + 0.05 * rng.standard_normal(T.size)
        comparison = gd.compare(T, y)
        present = gd.trend_test(T, y).present
        assert (comparison.preferred == "constant") == (not present)
        assert comparison.trend.direction == gd.trend_test(T, y).direction
        outcomes.add(present)
    assert outcomes == {True, False}


def test_constant_row_is_the_gaussian_likelihood_of_the_mean():
    rng = np.random.default_rng(12)
    y = 0.4 + 0.05 * rng.standard_normal(T.size)
    row = gd.compare(T, y)["constant"]
    sd = math.sqrt(np.mean((y - y.mean()) ** 2))  # the ML estimate of the noise
    log_lik = float(np.sum(stats.norm.logpdf(y, y.mean(), sd)))
    assert row.k == 1
    assert row.aic == pytest.approx(2 * 2 - 2 * log_lik, rel=1e-12)
    assert row.bic == pytest.approx(2 * math.log(T.size) - 2 * log_lik, rel=1e-12)


def test_exponential_row_matches_scipy_curve_fit():
    rng = np.random.default_rng(13)
    y = _oscillator(T, (0.1, 0.8, 25.0, 0.0)) + 0.02 * rng.standard_normal(T.size)

    def exponential(t, r0, r_inf, tau):
        return r_inf + (r0 - r_inf) * np.exp(-t / tau)

    popt, _ = optimize.curve_fit(exponential, T, y, p0=(0.2, 0.7, 20.0))
    rss_scipy = float(np.sum((y - exponential(T, *popt)) ** 2))
    row = gd.compare(T, y, models=("exponential",))["exponential"]
    assert row.rss == pytest.approx(rss_scipy, rel=1e-6)
    assert row.k == 3


def test_boundary_likelihood_ratio_on_the_oscillator_row_only():
    rng = np.random.default_rng(14)
    y = _oscillator(T, (0.1, 0.8, 15.0, 1.0)) + 0.02 * rng.standard_normal(T.size)
    c = gd.compare(T, y)
    e, o = c["exponential"], c["oscillator"]
    lr = T.size * math.log(e.rss / o.rss)
    assert o.lr_stat == pytest.approx(lr, rel=1e-9)
    assert o.lr_pvalue == pytest.approx(0.5 * stats.chi2.sf(lr, 1), rel=1e-9, abs=1e-300)
    assert all(math.isnan(c[m].lr_stat) for m in ("constant", "exponential", "logistic"))


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        ([("a", 10.0, True), ("b", 11.0, True)], "a"),  # plain AIC
        ([("a", 10.0, False), ("b", 11.5, True)], "b"),  # identified within 2 wins
        ([("a", 10.0, False), ("b", 12.0, True)], "b"),  # the margin is inclusive
        ([("a", 10.0, False), ("b", 12.5, True)], "a"),  # beyond 2: the better fit wins
        ([("a", 10.0, False), ("b", 11.0, True), ("c", 10.5, True)], "c"),
        ([("a", 10.0, False), ("b", 10.5, False)], "a"),  # nothing identified: AIC
        ([("a", math.nan, True), ("b", 50.0, False)], "b"),  # an undefined AIC never wins
    ],
)
def test_choice_prefers_identified_fits_within_two_aic(candidates, expected):
    assert _compare._choose(candidates) == expected


def test_choice_needs_one_defined_aic():
    with pytest.raises(RuntimeError, match="no model could be fitted"):
        _compare._choose([("a", math.nan, True), ("b", math.inf, True)])


def test_unidentified_fits_are_passed_over(monkeypatch):
    rng = np.random.default_rng(15)
    y = _oscillator(T, (0.1, 0.8, 30.0, 1.0)) + 0.02 * rng.standard_normal(T.size)
    plain = gd.compare(T, y)
    assert plain.preferred == "oscillator"
    # pretend only the oscillator is unidentified: the next best identified model within 2
    # AIC would take its place; here every other model is far worse, so it stays
    monkeypatch.setattr(_compare, "_identified", lambda fit: fit.model != "oscillator")
    flagged = gd.compare(T, y)
    assert not flagged["oscillator"].identified and flagged["exponential"].identified
    others = [flagged[m].delta_aic for m in ("exponential", "logistic")]
    assert flagged.preferred == ("oscillator" if min(others) > 2.0 else "exponential")


def test_result_conventions():
    rng = np.random.default_rng(16)
    c = gd.compare(T, _oscillator(T, (0.1, 0.8, 30.0, 1.0)) + 0.02 * rng.standard_normal(T.size))
    doc = json.loads(json.dumps(c.to_dict(), allow_nan=False))  # NaN became null
    assert doc["preferred"] == "oscillator" and doc["trend"]["direction"] == "rising"
    assert {m["model"] for m in doc["models"]} == {
        "constant",
        "exponential",
        "oscillator",
        "logistic",
    }
    assert next(m for m in doc["models"] if m["model"] == "constant")["lr_stat"] is None
    text = repr(c)
    assert len(text) < 300 and "oscillator" in text and "\n" not in text
    with pytest.raises(AttributeError):
        c.preferred = "constant"  # frozen
    with pytest.raises(KeyError):
        c["quadratic"]


def test_bad_models_name_the_argument():
    y = 0.5 + 0.01 * T
    with pytest.raises(ValueError, match=r"^models: must name at least one model"):
        gd.compare(T, y, models=())
    with pytest.raises(ValueError, match=r"^models: must be among"):
        gd.compare(T, y, models=("quadratic",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^r: must be 1-D"):
        gd.compare(T, np.ones((2, T.size)))
