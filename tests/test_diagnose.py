"""diagnose: each failure mode on a run built to show exactly it, written as a TRL log and
read back; no false alarm on a healthy saturating run; the real public logs."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import grpo_dynamics as gd
from grpo_dynamics.diagnose import FAILURE_MODES, diagnose, trend_test
from grpo_dynamics.forecast import trajectory_fn

N_STEPS = 600
EVAL_EVERY = 20


def _refresh_recurrence(n: int, refresh_interval: int, beta: float, c_lag: float, x0: float):
    """MODEL.md s.3 refresh model, c_now = 0, simulated directly (no library code)."""
    x = np.zeros(n)
    x[0] = x[1] = x0
    for t in range(1, n - 1):
        lagged = refresh_interval * (t // refresh_interval)
        x[t + 1] = x[t] + beta * (x[t] - x[t - 1]) - c_lag * x[lagged]
    return x


def make_run(kind: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Columns of a purpose-built run (steps 1..N_STEPS) for one mode, or 'healthy'."""
    rng = np.random.default_rng(seed)
    steps = np.arange(1.0, N_STEPS + 1)
    noise = rng.standard_normal
    curve = np.asarray(trajectory_fn()(steps, 0.2, 0.8, 40.0, 0.5), dtype=float)
    cols = {
        "reward": curve + 0.03 * noise(steps.size),
        "reward_std": 0.30 + 0.01 * noise(steps.size),
        "frac_reward_zero_std": np.clip(0.10 + 0.03 * noise(steps.size), 0, 1),
        "entropy": 0.80 + 0.02 * noise(steps.size),
        "kl": 0.02 + 0.002 * noise(steps.size),
        "learning_rate": np.full(steps.size, 1e-6),
    }
    eval_steps = steps[EVAL_EVERY - 1 :: EVAL_EVERY]
    gold = 0.9 * np.asarray(trajectory_fn()(eval_steps, 0.2, 0.8, 40.0, 0.5), dtype=float)
    if kind == "reward_hacking":
        # gold follows train until step 250, then falls while train stays on its plateau
        gold = gold - 0.0015 * np.clip(eval_steps - 250.0, 0.0, None)
    cols_eval = gold + 0.02 * noise(eval_steps.size)
    if kind == "advantage_degeneracy":
        # sparse 0/1 reward at G = 4 with p ~ 0.03: almost every group is all-zero
        p = 0.02 + 0.02 * (1 - np.exp(-steps / 200))
        cols["reward"] = rng.binomial(64, p) / 64.0
        cols["reward_std"] = 0.05 + 0.01 * noise(steps.size)
        cols["frac_reward_zero_std"] = np.clip(1 - 4 * p + 0.02 * noise(steps.size), 0, 1)
    elif kind == "policy_concentration":
        cols["entropy"] = 0.05 + 0.9 * np.exp(-steps / 120) + 0.02 * noise(steps.size)
        cols["reward_std"] = 0.05 + 0.25 * np.exp(-steps / 120) + 0.01 * noise(steps.size)
    elif kind == "dynamical_instability":
        # refresh interval 38 at beta 0.9, c_lag 0.01: the first unstable K (MODEL.md s.3)
        x = _refresh_recurrence(steps.size, 38, 0.9, 0.01, -0.01)
        cols["reward"] = 0.6 + x + 0.03 * noise(steps.size)
    elif kind != "healthy" and kind != "reward_hacking":
        raise ValueError(kind)
    return {"steps": steps, "eval_steps": eval_steps, "eval_reward": cols_eval, **cols}


def write_trl(columns: dict[str, np.ndarray], path: Path) -> Path:
    """A TRL trainer_state.json, written by hand (independent of io.write_log)."""
    history = []
    eval_at = dict(
        zip(columns["eval_steps"].tolist(), columns["eval_reward"].tolist(), strict=True)
    )
    names = {"entropy": "entropy", "completion_length": "completions/mean_length"}
    for i, step in enumerate(columns["steps"].tolist()):
        entry = {"step": int(step), "epoch": step / N_STEPS}
        for key in (
            "reward",
            "reward_std",
            "frac_reward_zero_std",
            "entropy",
            "kl",
            "learning_rate",
        ):
            entry[names.get(key, key)] = float(columns[key][i])
        history.append(entry)
        if step in eval_at:
            history.append({"step": int(step), "eval_reward": eval_at[step], "eval_loss": 0.1})
    state = {
        "global_step": int(columns["steps"][-1]),
        "log_history": history,
        "max_steps": int(columns["steps"][-1]),
    }
    path.write_text(json.dumps(state, indent=1))
    return path


def read_back(path: Path):
    reader = getattr(gd, "read_log", None)
    if callable(reader):
        return reader(path)
    # until io.read_log lands: the same table from the log_history entries
    history = json.loads(path.read_text())["log_history"]
    frame = pd.DataFrame(history).groupby("step").first()
    return frame


@pytest.fixture(scope="module")
def diagnoses(tmp_path_factory):
    out = {}
    root = tmp_path_factory.mktemp("runs")
    for kind in ("healthy", *FAILURE_MODES):
        path = write_trl(make_run(kind), root / f"{kind}.json")
        out[kind] = diagnose(read_back(path))
    return out


def test_healthy_run_raises_no_alarm(diagnoses):
    d = diagnoses["healthy"]
    assert d.detected == [], str(d)
    assert d.verdict == "healthy_saturation", str(d)
    for mode in FAILURE_MODES:
        assert d[mode].verdict == "not detected", str(d)


@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_each_mode_is_separated_from_the_others(diagnoses, mode):
    d = diagnoses[mode]
    assert d.detected == [mode], str(d)
    assert d.verdict == mode
    assert d[mode].fix and d[mode].evidence["columns"]
    assert d["healthy_saturation"].verdict != "detected"


def test_hacking_window_points_at_the_break(diagnoses):
    finding = diagnoses["reward_hacking"]["reward_hacking"]
    start, end = finding.evidence["window"]
    assert end > 250  # the worst window contains the decoupled part
    assert finding.evidence["window_coupling"] < 0.3 or math.isnan(
        finding.evidence["window_coupling"]
    )


def test_json_round_trip(diagnoses):
    for d in diagnoses.values():
        doc = json.loads(json.dumps(d.to_dict()))
        assert doc["verdict"] == d.verdict
        assert set(doc["findings"]) == {*FAILURE_MODES, "healthy_saturation"}
        assert list(d.to_frame().index) == list(doc["findings"])


def test_trend_test_on_pure_noise_and_on_a_rise():
    rng = np.random.default_rng(5)
    t = np.arange(500.0)
    assert not trend_test(t, 0.3 + 0.1 * rng.standard_normal(500))["trend"]
    assert trend_test(t, 0.3 + 0.1 * rng.standard_normal(500) + 0.2 * (1 - np.exp(-t / 100)))[
        "trend"
    ]


def test_flat_noise_run_is_no_trend():
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {"reward": 0.4 + 0.1 * rng.standard_normal(400)},
        index=pd.Index(np.arange(400.0), name="step"),
    )
    d = diagnose(frame)
    assert d.verdict == "no trend" and d.detected == []
    assert d["healthy_saturation"].verdict == "not assessable"


def test_bad_input_names_argument():
    frame = pd.DataFrame({"loss": np.arange(50.0)})
    with pytest.raises(ValueError, match="column"):
        diagnose(frame)
    with pytest.raises(ValueError, match="run"):
        diagnose(pd.DataFrame({"reward": [0.1, 0.2]}))
    with pytest.raises(ValueError, match="run"):
        diagnose(object())
    with pytest.raises(ValueError, match="eval_column"):
        diagnose(pd.DataFrame({"reward": np.linspace(0, 1, 40)}), eval_column="gold")


# The same separation on runs of the softmax-bandit GRPO simulator (MODEL.md s.7), where the
# policy really is trained: the logged reward is the batch mean of B*G sampled 0/1 rewards.
BANDITS = {
    # Bernoulli arms, KL to the uniform reference: an interior fixed point, entropy kept
    "healthy": dict(arm_rewards=(0.3, 0.7), steps=600, lr=0.05, momentum=0.5, kl_coef=0.5),
    # deterministic 0/1 rewards, G = 4, the good arm almost never sampled: all-zero groups
    "advantage_degeneracy": dict(
        arm_rewards=(0.0, 1.0),
        reward_kind="fixed",
        group_size=4,
        steps=300,
        lr=0.05,
        momentum=0.5,
        initial_logits=(0.0, -5.0),
    ),
    # no KL, fast heavy ball: the policy locks onto one arm, entropy 0.69 -> ~0.01 nats
    "policy_concentration": dict(arm_rewards=(0.3, 0.7), steps=600, lr=0.1, momentum=0.9),
}


def bandit_columns(kind: str, seed: int = 1) -> dict[str, np.ndarray]:
    config = gd.BanditConfig(
        **{"group_size": 8, "batch_prompts": 16, "replicas": 1, "seed": seed, **BANDITS[kind]}
    )
    result = gd.simulate(config)
    p = np.clip(result.expected_reward[0], 0.0, 1.0)
    n = config.group_size * config.batch_prompts
    steps = np.arange(1.0, config.steps + 1)
    rng = np.random.default_rng(seed)
    return {
        "steps": steps,
        "reward": rng.binomial(n, p) / n,  # every sample is Bernoulli(expected reward)
        "reward_std": result.group_reward_std[0],
        "frac_reward_zero_std": result.zero_std_fraction[0],
        "entropy": result.entropy[0],
        "kl": result.kl_to_reference[0],
        "learning_rate": np.full(steps.size, config.lr),
        "eval_steps": steps[:0],
        "eval_reward": steps[:0],
    }


@pytest.mark.parametrize("kind", sorted(BANDITS))
def test_bandit_runs_are_separated(kind, tmp_path):
    if not callable(getattr(gd, "simulate", None)):
        pytest.skip("the bandit simulator has not landed")
    d = diagnose(read_back(write_trl(bandit_columns(kind), tmp_path / f"{kind}.json")))
    if kind == "healthy":
        assert d.detected == [] and d.verdict == "healthy_saturation", str(d)
    else:
        assert d.detected == [kind], str(d)


# Real public logs (provenance: tests/data/README.md). Expected verdicts are the README's own
# descriptions where they are unambiguous.
REAL_EXPECTED = {
    "aaravarora01__agent-memory-redteam__trainer_state.json": "advantage_degeneracy",
    "alexchilton__CAS_NLP_MODULE4_GRPO__trainer_state.json": "no trend",
    "Coicozoi__minimind-from-scratch__grpo.log": "no trend",
    "gauri0508__med-record__trainer_state.json": "no trend",
    "Rusheel86__Chaos-Economy__training_logs.json": "no trend",
    "Sunshine535__nips-grpo-dynamics__gate2_rho1.00_seed42.log": "no trend",
    "Rishabh200729__incident-commander-openenv__training_log.json": "healthy_saturation",
    "soumiguria__cognitive-load-manager__reward_curve_full.json": "healthy_saturation",
    # a concave rise that still climbs ~0.1 over its last 200 steps: no failure, plateau near
    "CYCLOP5__metascaler-hack__training_metrics.json": "no failure",
    "yuxuanwang2009__RL_GRPO__grpo_metrics.json": "no failure",
}
# tests/data holds the small ones; the two large ones live only in the shared data directory
_REAL_DIRS = (
    Path(__file__).parent / "data",
    Path(__file__).parents[2] / "shared/data/real-grpo-logs",
)


def _real_path(name: str) -> Path | None:
    return next((d / name for d in _REAL_DIRS if (d / name).is_file()), None)


@pytest.mark.parametrize("name", sorted(REAL_EXPECTED))
def test_real_logs_match_their_descriptions(name):
    path = _real_path(name)
    if path is None:
        pytest.skip(f"{name} is not in tests/data nor in the shared data directory")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reader's data-cleaning notes are not under test here
        run = gd.read_log(path)
    d = diagnose(run)
    expected = REAL_EXPECTED[name]
    if expected == "no failure":
        assert d.detected == [], str(d)
        assert d["healthy_saturation"].verdict in ("detected", "possible"), str(d)
    else:
        assert d.verdict == expected, str(d)
    if expected == "no trend":
        assert d.detected == []


def test_degeneracy_fallbacks_without_frac_column():
    steps = pd.Index(np.arange(1.0, 201.0), name="step")
    rng = np.random.default_rng(3)
    p = np.clip(0.03 + 0.01 * rng.standard_normal(200), 0.0, 1.0)
    # 0/1 rewards and a known group size: the exact degenerate-group probability
    run = gd.Run.from_arrays(np.arange(1, 201), p, metadata={"group_size": 4})
    d = diagnose(run)
    late = p[100:]
    expected = float(np.mean(late**4 + (1 - late) ** 4))
    finding = d["advantage_degeneracy"]
    assert finding.score == pytest.approx(expected, rel=1e-12)
    assert finding.detected and finding.evidence["group_size"] == 4
    # reward_std logged as exactly zero on most steps: those steps' groups are all degenerate
    spread = np.where(np.arange(200) % 5 == 0, 0.2, 0.0)
    frame = pd.DataFrame({"reward": p, "reward_std": spread}, index=steps)
    finding = diagnose(frame)["advantage_degeneracy"]
    assert finding.score == pytest.approx(0.8)
    # nothing to go on: not assessable rather than a guess
    assert diagnose(pd.DataFrame({"reward": p}, index=steps))["advantage_degeneracy"].verdict == (
        "not assessable"
    )


def _cycle_radius(beta: float, c_lag: float, refresh_interval: int) -> float:
    """Spectral radius of the refresh-cycle map, built by pushing the two basis states through
    K steps of the MODEL.md s.3 recurrence in plain NumPy (independent of the stability core)."""
    cycle = np.zeros((2, 2))
    for j, (x_now, x_prev) in enumerate(((1.0, 0.0), (0.0, 1.0))):
        anchor, prev, cur = x_now, x_prev, x_now
        for _ in range(refresh_interval):
            prev, cur = cur, cur + beta * (cur - prev) - c_lag * anchor
        cycle[:, j] = (cur, prev)
    return float(np.max(np.abs(np.linalg.eigvals(cycle))))


@pytest.mark.parametrize("refresh_interval", [1, 37, 38])
def test_hyperparameters_give_exact_stability(refresh_interval):
    hp = gd.Hyperparameters(lr=0.01, momentum=0.9, refresh_interval=refresh_interval)
    columns = make_run("healthy")
    frame = pd.DataFrame(
        {"reward": columns["reward"]}, index=pd.Index(columns["steps"], name="step")
    )
    d = diagnose(frame, hp, curvature=1.0)  # c_lag = eta * kappa = 0.01
    rho = _cycle_radius(0.9, 0.01, refresh_interval)
    assert d.stability["spectral_radius"] == pytest.approx(rho, rel=1e-9)
    # the largest K whose cycle map is stable, by scanning the NumPy twin
    safe = max(k for k in range(1, 60) if _cycle_radius(0.9, 0.01, k) < 1)
    assert d.stability["max_safe_refresh_interval"] == safe == 37
    unstable = rho >= 1
    assert d["dynamical_instability"].detected == unstable
    assert d.verdict == ("dynamical_instability" if unstable else "healthy_saturation")
    assert "exact stability" in str(d)


def test_curvature_estimated_from_the_fit_when_not_given():
    hp = gd.Hyperparameters(lr=0.01, momentum=0.9, refresh_interval=5)
    columns = make_run("healthy")
    frame = pd.DataFrame(
        {"reward": columns["reward"]}, index=pd.Index(columns["steps"], name="step")
    )
    d = diagnose(frame, hp)
    tau = d.fit.params["tau"]
    # continuum (MODEL.md s.4, all forces lagged): tau = gamma / k, gamma = 1 - beta - c L
    c_lag = (1 - 0.9) / (tau + (5 - 1) / 2)
    assert d.stability["c_lag"] == pytest.approx(c_lag, rel=1e-12)
    assert d.stability["spectral_radius"] == pytest.approx(_cycle_radius(0.9, c_lag, 5), rel=1e-9)
    assert "estimated" in d.stability["curvature_source"]
    with pytest.raises(ValueError, match="hyperparameters"):
        diagnose(frame, hyperparameters=3.0)


@settings(max_examples=25, deadline=None)
@given(
    rewards=arrays(
        np.float64,
        st.integers(12, 150),
        elements=st.floats(-5, 5, allow_nan=False, allow_subnormal=False),
    ),
    stride=st.integers(1, 10),
)
def test_any_finite_series_gets_a_well_formed_diagnosis(rewards, stride):
    """Whatever the curve (constant, spiky, tiny, logged every n steps), diagnose answers with
    scores in [0, 1], known verdicts and a JSON-ready document; it never crashes."""
    steps = pd.Index(stride * np.arange(1, rewards.size + 1, dtype=float), name="step")
    d = diagnose(pd.DataFrame({"reward": rewards}, index=steps))
    allowed = {"detected", "possible", "not detected", "not assessable"}
    for finding in d.findings.values():
        assert 0.0 <= finding.score <= 1.0 and finding.verdict in allowed
    assert d.verdict in {
        *FAILURE_MODES,
        "healthy_saturation",
        "no trend",
        "still improving",
        "declining",
    }
    json.dumps(d.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    ("gold_of_train", "hacked"),
    [
        (lambda train, steps: 0.5 * train, False),  # weaker but steady coupling: fine
        (lambda train, steps: np.full(steps.size, 0.3), True),  # gold stalls from the start
        (lambda train, steps: 0.3 + 0.4 * np.exp(-steps / 300), True),  # gold falls throughout
    ],
)
def test_coupling_ratio_variants(gold_of_train, hacked):
    rng = np.random.default_rng(11)
    steps = np.arange(1.0, 601.0)
    train = np.asarray(trajectory_fn()(steps, 0.2, 0.8, 150.0, 0.1), dtype=float)
    frame = pd.DataFrame(
        {"reward": train + 0.03 * rng.standard_normal(steps.size)},
        index=pd.Index(steps, name="step"),
    )
    eval_steps = steps[19::20]
    gold = gold_of_train(np.interp(eval_steps, steps, train), eval_steps)
    frame["eval_reward"] = pd.Series(gold + 0.01 * rng.standard_normal(eval_steps.size), eval_steps)
    finding = diagnose(frame)["reward_hacking"]
    assert finding.detected == hacked, finding.summary
    assert finding.evidence["columns"] == ["reward", "eval_reward"]


@pytest.mark.parametrize(
    "hp",
    [
        gd.Hyperparameters(lr=0.01, momentum=0.9, refresh_interval=4),
        gd.Hyperparameters(
            lr=0.01, momentum=0.9, optimizer="adamw", weight_decay=0.5, adam_preconditioner=0.5
        ),
        gd.Hyperparameters(lr=0.02, momentum=0.5, weight_decay=0.3, delay=3),
    ],
)
def test_curvature_estimate_inverts_the_continuum_model(hp):
    """The fitted-tau curvature estimate is the kappa whose continuum relaxation time is tau."""
    from types import SimpleNamespace

    from grpo_dynamics.diagnose import _estimated_curvature

    kappa = 0.7
    tau = gd.continuum(hp, kappa, lag="mean").tau
    estimate = _estimated_curvature(hp, SimpleNamespace(params={"tau": tau}))
    assert estimate == pytest.approx(kappa, rel=1e-10)


def test_delay_scan_is_capped_so_a_stable_run_diagnoses_quickly(monkeypatch):
    """A delay-stable system (negative lagged curvature, as TRL's k3 gives) must not scan
    every delay up to critical_delay's default limit (each delay costs O(D^2): minutes at
    10,000); the cap is passed down and reported."""
    import importlib

    # The package re-exports the function stability(), which shadows the module attribute.
    stability_module = importlib.import_module("grpo_dynamics.stability")
    seen = []
    original = stability_module.critical_delay

    def recording(*args, **kwargs):
        seen.append(kwargs.get("max_delay"))
        return original(*args, **kwargs)

    monkeypatch.setattr(stability_module, "critical_delay", recording)
    hp = gd.Hyperparameters(lr=0.01, momentum=0.9)
    steps = np.arange(1, 201)
    run = gd.Run.from_arrays(steps, 0.8 - 0.5 * np.exp(-steps / 30.0))
    d = diagnose(run, hp, curvature_lag=-0.5, curvature_now=1.0)
    assert seen == [1000]
    assert d.stability["max_safe_delay"] is None
    assert d.stability["delay_search_limit"] == 1000
