"""Result conventions: one JSON helper, short reprs, SimulationResult.to_run, exact_stability."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

import grpo_dynamics as gd


def test_to_jsonable_makes_plain_json():
    value = {
        1: np.float64(np.nan),
        "a": (np.int64(3), np.array([1.5, np.inf])),
        "b": [float("-inf"), np.bool_(True), "x", None],
        "c": gd.trend_test(np.arange(10.0), np.arange(10.0)),
    }
    out = gd.to_jsonable(value)
    assert out["1"] is None and out["a"] == [3, [1.5, None]]
    assert out["b"] == [None, True, "x", None]
    assert out["c"]["direction"] == "rising"
    assert type(out["a"][0]) is int
    json.dumps(out, allow_nan=False)  # parses as strict JSON


@pytest.fixture(scope="module")
def simulation() -> gd.SimulationResult:
    return gd.simulate(gd.BanditConfig(replicas=2, steps=50, group_size=8, batch_prompts=4))


def test_simulation_repr_is_short(simulation):
    text = repr(simulation)
    assert len(text) < 200 and "2 replicas x 50 steps" in text


def test_to_run_logs_one_replica(simulation):
    run = simulation.to_run(1, seed=3)
    t, reward = run.series("reward")
    np.testing.assert_array_equal(t, np.arange(1, 51))
    np.testing.assert_array_equal(run.series("entropy")[1], simulation.entropy[1])
    np.testing.assert_array_equal(run.series("kl")[1], simulation.kl_to_reference[1])
    assert run.metadata["group_size"] == 8
    # bernoulli arms: the logged reward is a batch mean of B G = 32 draws
    n = 32
    assert np.allclose(reward * n, np.round(reward * n))
    # the same seed gives the same log; the default seed is the config's
    np.testing.assert_array_equal(simulation.to_run(1, seed=3).series("reward")[1], reward)
    with pytest.raises(ValueError, match=r"^replica: must be an integer in \[0, 1\]"):
        simulation.to_run(2)


def test_to_run_batch_means_follow_the_binomial_law():
    # one long on-policy replica at a tiny learning rate: p stays ~ the start value, so the
    # logged batch means are Binomial(B G, p) / (B G); compare their variance with the law's
    config = gd.BanditConfig(
        arm_rewards=(0.2, 0.6),
        replicas=1,
        steps=4000,
        lr=1e-6,
        momentum=0.0,
        optimizer="sgd",
        group_size=8,
        batch_prompts=8,
    )
    result = gd.simulate(config)
    _, reward = result.to_run(0, seed=5).series("reward")
    p = result.expected_reward[0]
    n = 64
    z = (reward - p) * math.sqrt(n) / np.sqrt(p * (1 - p))
    assert abs(z.mean()) < 4 / math.sqrt(z.size)
    chi2 = float(np.sum(z**2))
    df = z.size
    assert stats.chi2.sf(chi2, df) > 1e-4 and stats.chi2.cdf(chi2, df) > 1e-4


def test_exact_stability_thresholds_bracket_the_boundary():
    hp = gd.Hyperparameters(lr=0.01, momentum=0.9, refresh_interval=38)
    exact = gd.exact_stability(hp, 1.0)
    assert not exact.stable and exact.max_safe_refresh_interval == 37
    # the thresholds mean what they say, checked with the exact analysis itself
    k = exact.max_safe_refresh_interval
    assert gd.stability(hp.with_changes(refresh_interval=k), 1.0).stable
    assert not gd.stability(hp.with_changes(refresh_interval=k + 1), 1.0).stable
    lr = exact.max_safe_learning_rate
    assert gd.stability(hp.with_changes(lr=lr * 0.999), 1.0).stable
    assert not gd.stability(hp.with_changes(lr=lr * 1.001), 1.0).stable
    on_policy = gd.exact_stability(hp.with_changes(refresh_interval=1), 1.0)
    d = on_policy.max_safe_delay
    assert d is not None and on_policy.delay_search_limit == 10_000  # critical_delay's default
    assert gd.stability(hp.with_changes(refresh_interval=1, delay=d), 1.0).stable
    assert not gd.stability(hp.with_changes(refresh_interval=1, delay=d + 1), 1.0).stable
    doc = json.loads(json.dumps(exact.to_dict(), allow_nan=False))
    assert doc["max_safe_refresh_interval"] == 37 and "max_safe_delay" not in doc
    assert len(repr(exact)) < 200
    with pytest.raises(ValueError, match=r"^hyperparameters: must be a Hyperparameters"):
        gd.exact_stability({"lr": 0.01, "momentum": 0.9}, 1.0)  # type: ignore[arg-type]
