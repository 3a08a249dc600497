"""The reward range a log's own numbers prove (grpo_dynamics.io.reward_range, docs/io.md).

Logs are written here from samples drawn with NumPy (the per-step mean and std computed by
NumPy from the samples, as a trainer does), then read back with read_log; the inference must
find [0, 1] exactly when the samples are 0/1, and nothing otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_LOGS, read_shared_log

import grpo_dynamics as gd
from grpo_dynamics.io.reward_range import infer_reward_range


def _probabilities(n_steps: int) -> np.ndarray:
    return np.linspace(0.05, 0.8, n_steps)


def _samples(kind: str, p: float, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "binary":
        return (rng.random(n) < p).astype(float)
    if kind == "zero_or_1.5":  # two-valued, but not 0/1
        return 1.5 * (rng.random(n) < p / 1.5)
    if kind == "partial":  # 0, 0.5 or 1: partial credit
        return rng.choice([0.0, 0.5, 1.0], size=n, p=[1 - p, p / 2, p / 2])
    return np.clip(rng.normal(p, 0.2, n), 0.0, 1.0)  # continuous in [0, 1]


def _trl_log(
    path: Path,
    kinds: dict[str, str],
    *,
    n_steps: int = 30,
    n: int = 64,
    ddof: int = 1,
    weights: dict[str, float] | None = None,
    decimals: int | None = None,
    seed: int = 0,
) -> Path:
    """A TRL trainer_state.json with per-function mean/std columns and their weighted sum."""
    rng = np.random.default_rng(seed)
    history = []
    for step, p in enumerate(_probabilities(n_steps), start=1):
        entry: dict[str, float] = {"step": step}
        total = np.zeros(n)
        for name, kind in kinds.items():
            x = _samples(kind, float(p), n, rng)
            total += (weights or {}).get(name, 1.0) * x
            entry[f"rewards/{name}/mean"] = float(np.mean(x))
            entry[f"rewards/{name}/std"] = float(np.std(x, ddof=ddof))
        entry["reward"] = float(np.mean(total))
        if decimals is not None:
            entry = {k: round(v, decimals) if k != "step" else v for k, v in entry.items()}
        history.append(entry)
    path.write_text(json.dumps({"log_history": history, "global_step": n_steps}))
    return path


def _own_std_log(path: Path, kind: str, *, n: int = 256, ddof: int = 1, seed: int = 0) -> Path:
    """A JSONL log of one reward column with the std over all of the step's samples."""
    rng = np.random.default_rng(seed)
    lines = []
    for step, p in enumerate(_probabilities(40), start=1):
        x = _samples(kind, float(p), n, rng)
        lines.append(
            json.dumps(
                {
                    "step": step,
                    "reward": float(np.mean(x)),
                    "std_reward": float(np.std(x, ddof=ddof)),
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _read(path: Path) -> gd.Run:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gd.read_log(path)


@pytest.mark.parametrize(("ddof", "samples"), [(1, "N = 256 samples per step"), (0, "population")])
def test_a_reward_with_its_own_std_of_01_samples_is_in_0_1(
    tmp_path: Path, ddof: int, samples: str
) -> None:
    found = infer_reward_range(_read(_own_std_log(tmp_path / "m.jsonl", "binary", ddof=ddof)))
    assert found is not None
    assert (found.low, found.high) == (0.0, 1.0)
    assert "std_reward" in found.reason and samples in found.reason


@pytest.mark.parametrize("kind", ["zero_or_1.5", "partial", "continuous"])
def test_a_reward_whose_std_is_not_that_of_01_samples_has_no_range(
    tmp_path: Path, kind: str
) -> None:
    assert infer_reward_range(_read(_own_std_log(tmp_path / "m.jsonl", kind))) is None


def test_per_function_01_rewards_summed_give_0_to_their_number(tmp_path: Path) -> None:
    run = _read(_trl_log(tmp_path / "t.json", {"correct": "binary", "format": "binary"}))
    found = infer_reward_range(run)
    assert found is not None and (found.low, found.high) == (0.0, 2.0)
    assert "correct" in found.reason and "format" in found.reason


def test_one_01_function_gives_0_1_also_when_logged_to_four_decimals(tmp_path: Path) -> None:
    path = _trl_log(tmp_path / "t.json", {"acc": "binary"}, n=256, decimals=4)
    found = infer_reward_range(_read(path))
    assert found is not None and (found.low, found.high) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("kinds", "weights"),
    [
        ({"acc": "binary", "fmt": "partial"}, None),  # one function is not 0/1
        ({"acc": "binary", "fmt": "binary"}, {"fmt": 0.5}),  # a weighted sum: range unknown
        ({"acc": "continuous"}, None),
    ],
)
def test_per_function_evidence_must_hold_for_every_function_and_the_sum(
    tmp_path: Path, kinds: dict[str, str], weights: dict[str, float] | None
) -> None:
    assert infer_reward_range(_read(_trl_log(tmp_path / "t.json", kinds, weights=weights))) is None


def test_a_two_valued_reward_other_than_01_is_not_taken_for_one(tmp_path: Path) -> None:
    # {0, 1.5}: std^2 / (p (1 - p)) = (1.5 - p) / (1 - p) lies in [1, 2] but moves with p
    rng = np.random.default_rng(3)
    x = [1.5 * (rng.random(256) < 0.2) for _ in range(30)]
    run = gd.Run.from_arrays(
        np.arange(30),
        [float(np.mean(v)) for v in x],
        reward_std=[float(np.std(v, ddof=1)) for v in x],
    )
    assert infer_reward_range(run) is None


def test_a_01_reward_whose_mean_never_moves_is_not_enough() -> None:
    # the relation is only tested where the mean covers some of [0, 1] (MIN_SPREAD): a pair
    # {0, b} with b near 1 would pass it at a fixed mean
    rng = np.random.default_rng(4)
    x = [(rng.random(4096) < 0.3).astype(float) for _ in range(30)]
    run = gd.Run.from_arrays(
        np.arange(30),
        [float(np.mean(v)) for v in x],
        reward_std=[float(np.std(v, ddof=1)) for v in x],
    )
    assert infer_reward_range(run) is None


def test_only_steps_up_to_upto_are_read(tmp_path: Path) -> None:
    run = _read(_own_std_log(tmp_path / "m.jsonl", "binary"))
    frame = run.frame.copy()
    frame.loc[frame.index > 30, "reward_std"] *= 1.3  # after step 30 the std is no longer 0/1's
    broken = gd.Run.from_arrays(
        frame.index.to_numpy(),
        frame["reward"].to_numpy(),
        reward_std=frame["reward_std"].to_numpy(),
    )
    assert infer_reward_range(broken) is None
    found = infer_reward_range(broken, upto=30)
    assert found is not None and (found.low, found.high) == (0.0, 1.0)


def test_forecast_uses_the_range_the_log_proves_and_says_so(tmp_path: Path) -> None:
    run = _read(_own_std_log(tmp_path / "m.jsonl", "binary"))
    auto = gd.forecast(run, fraction=0.5)
    assert auto.reward_range == (0.0, 1.0)
    assert any("reward range [0, 1] from the log" in w for w in auto.warnings)
    assert 0.0 <= auto.end.lower <= auto.end.upper <= 1.0
    bare = gd.forecast(run, fraction=0.5, reward_range=None)
    assert bare.reward_range is None
    assert not any("reward range" in w for w in bare.warnings)
    given = gd.forecast(run, fraction=0.5, reward_range=(0.0, 2.0))
    assert given.reward_range == (0.0, 2.0)
    t, y = run.series("reward")  # bare arrays carry no std: nothing is inferred
    assert gd.forecast(t, y, fraction=0.5).reward_range is None


def test_forecast_rejects_a_reward_range_word_it_does_not_know(tmp_path: Path) -> None:
    run = _read(_own_std_log(tmp_path / "m.jsonl", "binary"))
    with pytest.raises(ValueError, match="reward_range"):
        gd.forecast(run, reward_range="guess")  # type: ignore[arg-type]


@pytest.mark.skipif(not SHARED_LOGS.exists(), reason="shared real logs not beside the checkout")
def test_shared_logs_a_01_accuracy_log_is_found_and_a_continuous_one_is_not() -> None:
    jsonl = (
        "ShibukiZero__assignment5-alignment__artifacts__experiments__main__ch7__grpo_baselines"
        "__runs__reinforce_with_baseline__metrics.jsonl"
    )
    found = infer_reward_range(read_shared_log(jsonl))
    assert found is not None and (found.low, found.high) == (0.0, 1.0)
    assert "N = 256" in found.reason  # 32 questions x 8 rollouts per step in that log
    # TRL per-function rewards with continuous values (std far from a 0/1 reward's)
    assert (
        infer_reward_range(read_shared_log("CYCLOP5__metascaler-hack__training_metrics.json"))
        is None
    )


def test_the_monitor_forecasts_within_the_range_trl_logs_prove() -> None:
    from grpo_dynamics.monitor import Monitor, _make_forecast

    rng = np.random.default_rng(5)
    monitor = Monitor(refit_every=10_000)
    for step, p in enumerate(np.linspace(0.1, 0.85, 60), start=1):
        x = (rng.random(64) < p).astype(float)
        monitor.update(
            step,
            {
                "reward": float(np.mean(x)),
                "rewards/accuracy/mean": float(np.mean(x)),
                "rewards/accuracy/std": float(np.std(x, ddof=1)),
            },
        )
    assert _make_forecast(monitor.run(), "auto").reward_range == (0.0, 1.0)
    assert _make_forecast(monitor.run(), (0.0, 2.0)).reward_range == (0.0, 2.0)
    assert _make_forecast(monitor.run(), None).reward_range is None
    assert monitor.reward_range == "auto"  # the default


def test_the_precision_a_log_was_written_with_is_read_from_its_numbers() -> None:
    from grpo_dynamics.io.reward_range import _decimals

    x = np.random.default_rng(6).random(50)
    assert _decimals(x) is None  # full precision: no rounding slack
    assert _decimals(np.round(x, 4)) == 4
    assert _decimals(np.round(x, 7)) == 7
    assert _decimals(np.arange(256) / 256) == 8  # k / 256 needs eight decimals exactly


# ---------------------------------------------------------------------------------------------
# rewards that are not 0/1 but come close (found by review): none may pass


def _stats(values: np.ndarray, probs: list[np.ndarray], n: int, seed: int):  # noqa: ANN202
    rng = np.random.default_rng(seed)
    xs = [rng.choice(values, size=n, p=pr) for pr in probs]
    return np.array([x.mean() for x in xs]), np.array([x.std(ddof=1) for x in xs])


@pytest.mark.parametrize("decimals", [None, 4, 2])
@pytest.mark.parametrize(
    ("values", "n"),
    [
        ((0.0, 1.05), 256),  # a 0/1 score a little above 1
        ((0.0, 1.2), 40),  # exact means b k / N with few decimals at full precision
        ((0.0, 1.5), 25),
        ((0.2, 1.2), 256),  # a 0/1 score plus an always-on 0.2 format bonus
    ],
)
def test_two_valued_rewards_other_than_01_never_pass(
    values: tuple[float, float], n: int, decimals: int | None
) -> None:
    lo, hi = values
    probs = []
    for mean in np.linspace(lo + 0.02, lo + 0.12, 30):  # an early, low-mean prefix
        q = (mean - lo) / (hi - lo)
        probs.append(np.array([1.0 - q, q]))
    for seed in range(5):
        m, s = _stats(np.array(values), probs, n, seed)
        if decimals is not None:
            m, s = np.round(m, decimals), np.round(s, decimals)
        run = gd.Run.from_arrays(np.arange(30), m, reward_std=s)
        assert infer_reward_range(run) is None, (values, n, decimals, seed)


def test_a_step_whose_spread_no_01_sample_can_have_fails_the_log() -> None:
    rng = np.random.default_rng(8)
    x = [(rng.random(256) < p).astype(float) for p in np.linspace(0.2, 0.7, 20)]
    m = [float(np.mean(v)) for v in x] + [1.0]  # then samples 0 and 2: mean 1, std 1
    s = [float(np.std(v, ddof=1)) for v in x] + [1.0]
    assert infer_reward_range(gd.Run.from_arrays(np.arange(20), m[:20], reward_std=s[:20]))
    assert infer_reward_range(gd.Run.from_arrays(np.arange(21), m, reward_std=s)) is None


def test_two_01_functions_logged_to_four_decimals_give_0_2(tmp_path: Path) -> None:
    path = _trl_log(tmp_path / "t.json", {"acc": "binary", "fmt": "binary"}, n=256, decimals=4)
    found = infer_reward_range(_read(path))
    assert found is not None and (found.low, found.high) == (0.0, 2.0)


def test_a_forecast_reads_the_range_of_its_prefix_only(tmp_path: Path) -> None:
    run = _read(_own_std_log(tmp_path / "m.jsonl", "binary"))
    frame = run.frame
    late = frame.index > 30
    std = frame["reward_std"].to_numpy().copy()
    std[late] *= 1.3  # after step 30 the std is not 0/1's
    broken = gd.Run.from_arrays(frame.index.to_numpy(), frame["reward"].to_numpy(), reward_std=std)
    assert gd.forecast(broken, upto=30).reward_range == (0.0, 1.0)
    assert gd.forecast(broken).reward_range is None
    std2 = frame["reward_std"].to_numpy().copy()
    std2[~late] *= 1.3  # the reverse: the prefix does not show it, the whole log neither
    early_broken = gd.Run.from_arrays(
        frame.index.to_numpy(), frame["reward"].to_numpy(), reward_std=std2
    )
    assert gd.forecast(early_broken, upto=30).reward_range is None


def _accuracy_monitor(reward_range: object) -> object:
    from grpo_dynamics.monitor import Monitor

    rng = np.random.default_rng(5)
    monitor = Monitor(refit_every=25, confirm=1, reward_range=reward_range)  # type: ignore[arg-type]
    for step, p in enumerate(0.97 - 0.8 * np.exp(-np.arange(1, 301) / 30), start=1):
        x = (rng.random(256) < p).astype(float)
        monitor.update(step, {"reward": float(x.mean()), "reward_std": float(x.std(ddof=1))})
    return monitor


def test_the_monitor_states_an_accuracy_plateau_inside_the_range_the_log_shows() -> None:
    # an accuracy approaching 0.97 (N = 256 per step): the forecast the monitor makes uses the
    # range [0, 1] the log shows and judges its band against that range; the plateau it states
    # covers 0.97 and stays below 1
    from grpo_dynamics.monitor import _make_forecast

    auto = _accuracy_monitor("auto")
    assert _make_forecast(auto.run(), "auto").reward_range == (0.0, 1.0)  # type: ignore[attr-defined]
    stated = auto.forecast  # type: ignore[attr-defined]
    assert stated is not None
    assert stated.plateau_lo <= 0.97 <= stated.plateau_hi < 1.0
    assert stated.plateau_hi - stated.plateau_lo < 0.05
    with pytest.raises(ValueError, match="reward_range"):
        _accuracy_monitor("guess")


def test_cli_forecast_reads_the_range_unless_told_not_to(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    import json as _json

    from grpo_dynamics.cli import main

    path = _own_std_log(tmp_path / "m.jsonl", "binary")
    for flags, expected in (([], [0.0, 1.0]), (["--no-reward-range"], None)):
        assert main(["forecast", str(path), "--fraction", "0.5", "--json", *flags]) == 0
        doc = _json.loads(capsys.readouterr().out)
        item = doc[0] if isinstance(doc, list) else doc
        assert item["reward_range"] == expected


def _binary_log(n_steps: int, n: int = 256, seed: int = 9, lo: float = 0.2, hi: float = 0.7):  # noqa: ANN202
    rng = np.random.default_rng(seed)
    x = [(rng.random(n) < p).astype(float) for p in np.linspace(lo, hi, n_steps)]
    return np.array([v.mean() for v in x]), np.array([v.std(ddof=1) for v in x])


def test_a_01_log_with_one_odd_step_fails() -> None:
    m, s = _binary_log(20)
    assert infer_reward_range(gd.Run.from_arrays(np.arange(20), m, reward_std=s))
    for odd_mean, odd_std in ((0.5, 0.0), (1.02, 0.0), (1.02, 0.1), (-0.01, 0.05)):
        # 0.5 with no spread: every sample 0.5 (partial credit); outside [0, 1]: not 0/1
        run = gd.Run.from_arrays(np.arange(21), [*m, odd_mean], reward_std=[*s, odd_std])
        assert infer_reward_range(run) is None, (odd_mean, odd_std)


def test_a_std_column_that_is_not_the_samples_std_proves_nothing() -> None:
    m, s = _binary_log(20)
    # the standard error of the mean (std / sqrt(N)): its ratio is constant but far below 1
    run = gd.Run.from_arrays(np.arange(20), m, reward_std=s / 16.0)
    assert infer_reward_range(run) is None


def test_a_score_one_percent_above_1_is_told_apart_at_full_precision() -> None:
    # {0, 1.01}: std^2 / (p (1 - p)) = (1.01 - p) / (1 - p) moves by ~1 % over p in 0.1-0.6
    m, s = _stats(
        np.array([0.0, 1.01]),
        [np.array([1 - q, q]) for q in np.linspace(0.1, 0.6, 30) / 1.01],
        4096,
        seed=10,
    )
    assert infer_reward_range(gd.Run.from_arrays(np.arange(30), m, reward_std=s)) is None


def test_a_few_steps_prove_nothing() -> None:
    m, s = _binary_log(4, lo=0.2, hi=0.6)  # four resolvable steps, below MIN_STEPS
    assert infer_reward_range(gd.Run.from_arrays(np.arange(4), m, reward_std=s)) is None
    m, s = _binary_log(6, lo=0.2, hi=0.6)
    assert infer_reward_range(gd.Run.from_arrays(np.arange(6), m, reward_std=s))


def test_one_column_at_full_precision_means_the_log_was_not_rounded() -> None:
    from grpo_dynamics.io.reward_range import _precision

    exact = np.arange(1, 40) / 40  # means k / 40: few decimals, yet written at full precision
    full = np.random.default_rng(11).random(39)
    assert _precision(exact, full) == 0.0
    assert _precision(np.round(full, 3), np.round(full, 4)) == 0.5e-4


def test_a_given_range_the_data_contradict_is_said_out_loud() -> None:
    t = np.arange(1.0, 81.0)
    y = 0.5 + 0.3 * (1 - np.exp(-t / 20)) + 0.01 * np.random.default_rng(12).standard_normal(80)
    fc = gd.forecast(t, y, reward_range=(0.9, 1.0))
    assert any("lie outside it" in w and "80 of 80" in w for w in fc.warnings)
    assert not any("lie outside" in w for w in gd.forecast(t, y, reward_range=(0, 1)).warnings)
    with pytest.raises(ValueError, match=r"reward_range: must be \(lo, hi\), 'auto' or None"):
        gd.forecast(t, y, reward_range=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lo < hi"):
        gd.forecast(t, y, reward_range=(1.0, 0.0))


def test_watch_passes_the_range_choice_to_its_monitor(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    import io

    from grpo_dynamics.cli import main
    from grpo_dynamics.watch import watch

    path = _own_std_log(tmp_path / "m.jsonl", "binary")
    assert watch(path, once=True, out=io.StringIO()).reward_range == "auto"
    assert watch(path, once=True, out=io.StringIO(), reward_range=None).reward_range is None
    given = watch(path, once=True, out=io.StringIO(), reward_range=(0, 2))
    assert given.reward_range == (0.0, 2.0)
    with pytest.raises(ValueError, match="reward_range"):
        watch(path, once=True, out=io.StringIO(), reward_range="guess")  # type: ignore[arg-type]
    assert main(["watch", str(path), "--once", "--no-reward-range"]) == 0
    with pytest.raises(SystemExit):
        main(["watch", str(path), "--once", "--no-reward-range", "--reward-range", "0", "1"])
    capsys.readouterr()
