"""Log readers and writers (docs/io.md): real logs checked against independent parsing,
exact round trips in every format, messy logs handled with warnings, bad files -> clear errors."""

from __future__ import annotations

import functools
import json
import math
import re
import struct
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grpo_dynamics as gd
from grpo_dynamics.io import (
    CANONICAL_COLUMNS,
    GrpoLogWarning,
    LogFormatError,
    Run,
    read_log,
    read_logs,
    write_log,
)

DATA = Path(__file__).parent / "data"
# the shared collection sits beside the checkout (../shared) or, for a worktree, higher up
SHARED = next(
    (
        parent / "shared" / "data" / "real-grpo-logs"
        for parent in Path(__file__).resolve().parents[1:]
        if (parent / "shared" / "data" / "real-grpo-logs").is_dir()
    ),
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-grpo-logs",
)


def read_quiet(path, **kwargs) -> Run:
    """read_log, collecting its warnings: each must be a GrpoLogWarning and be in run.warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = read_log(path, **kwargs)
    assert all(issubclass(w.category, GrpoLogWarning) for w in caught), [w.message for w in caught]
    assert [str(w.message) for w in caught] == [f"{run.source}: {m}" for m in run.warnings]
    return run


def shared_file(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{name} not available (../shared/data/real-grpo-logs absent)")
    return path


# ---------------------------------------------------------------------------------------------
# Real logs, against an independent extraction (json.load + manual selection, or regex counts)

TRL_FILES = [
    "CYCLOP5__metascaler-hack__training_metrics.json",
    "Rishabh200729__incident-commander-openenv__training_log.json",
    "Rusheel86__Chaos-Economy__training_logs.json",
    "aaravarora01__agent-memory-redteam__trainer_state.json",
    "alexchilton__CAS_NLP_MODULE4_GRPO__trainer_state.json",
    "gauri0508__med-record__trainer_state.json",
]


def _history(name: str) -> list[dict]:
    document = json.loads((DATA / name).read_text())
    return document if isinstance(document, list) else document["log_history"]


@pytest.mark.parametrize("name", TRL_FILES)
def test_trl_logs_match_manual_extraction(name):
    run = read_quiet(DATA / name)
    entries = [e for e in _history(name) if "reward" in e]
    assert len({e["step"] for e in entries}) == len(entries)  # these logs have no restarts
    expected = sorted((e["step"], e["reward"]) for e in entries)
    np.testing.assert_array_equal(run.steps, [s for s, _ in expected])
    np.testing.assert_array_equal(run.reward, [r for _, r in expected])
    for canonical, key in (
        ("reward_std", "reward_std"),
        ("kl", "kl"),
        ("learning_rate", "learning_rate"),
    ):
        by_step = {e["step"]: e[key] for e in entries}
        np.testing.assert_array_equal(
            run.column(canonical, dropna=False).to_numpy(), [by_step[s] for s in run.steps]
        )
    assert run.format == "trl"
    assert run.original_names["reward"] == "reward"


def test_readme_shapes_of_the_real_logs():
    # facts from the README table of the collection, not from the reader
    cyclops = read_quiet(DATA / TRL_FILES[0])
    assert len(cyclops) == 400
    assert cyclops.reward[0] == pytest.approx(0.62, abs=0.005)
    assert cyclops.reward[-50:].mean() == pytest.approx(1.30, abs=0.08)
    assert cyclops.original_names["completion_length"] == "completions/mean_length"
    assert {"entropy", "frac_reward_zero_std", "clip_ratio"} <= set(cyclops.frame.columns)
    # the final TRL summary entries become metadata, not a step
    assert cyclops.metadata["train_summary"]["train_runtime"] == 17469.8813

    rusheel = read_quiet(DATA / TRL_FILES[2])
    assert rusheel.logging_interval == 5
    assert rusheel.reward.min() == pytest.approx(-1.15, abs=0.01)
    assert rusheel.reward.max() == pytest.approx(2.09, abs=0.01)
    assert any("outside [0, 1]" in n for n in rusheel.notes)
    assert rusheel.metadata["batch_size"] == 2 and rusheel.metadata["logging_steps"] == 5

    rishabh = read_quiet(DATA / TRL_FILES[1])
    assert rishabh.logging_interval == 10
    assert rishabh.metadata["group_size"] == 2
    assert rishabh.metadata["learning_rate"] == 5e-6
    assert rishabh.metadata["model_name"] == "Qwen/Qwen2.5-0.5B-Instruct"

    degenerate = read_quiet(DATA / TRL_FILES[3])
    zero_std = [e["frac_reward_zero_std"] for e in _history(TRL_FILES[3])]
    np.testing.assert_array_equal(degenerate.column("frac_reward_zero_std"), zero_std)
    assert np.mean(degenerate.reward == 0.0) > 0.5

    wordle = read_quiet(DATA / TRL_FILES[4])
    assert wordle.reward.mean() == pytest.approx(-0.25, abs=0.15)


def test_literal_nan_in_trainer_state_is_kept_and_warned():
    name = "gauri0508__med-record__trainer_state.json"
    nan_steps = [e["step"] for e in _history(name) if math.isnan(e.get("grad_norm", 0.0))]
    assert len(nan_steps) == 1
    with pytest.warns(GrpoLogWarning, match=rf"grad_norm: 1 non-finite.*steps {nan_steps[0]}"):
        run = read_log(DATA / name)
    assert math.isnan(run.frame.loc[nan_steps[0], "grad_norm"])
    assert run.has("grad_norm") and len(run) == 150


def test_dict_of_lists_without_steps():
    name = "yuxuanwang2009__RL_GRPO__grpo_metrics.json"
    document = json.loads((DATA / name).read_text())
    with pytest.warns(GrpoLogWarning, match="no step column"):
        run = read_log(DATA / name)
    np.testing.assert_array_equal(run.steps, np.arange(len(document["rewards_avg"])))
    np.testing.assert_array_equal(run.reward, document["rewards_avg"])
    np.testing.assert_array_equal(run.column("kl"), document["kl_avg"])
    np.testing.assert_array_equal(run.column("accuracies_avg"), document["accuracies_avg"])
    assert run.original_names == {"reward": "rewards_avg", "kl": "kl_avg"}


def test_console_trl_dicts_sunshine():
    path = DATA / "Sunshine535__nips-grpo-dynamics__gate2_rho1.00_seed42.log"
    text = path.read_text()
    rewards = [float(v) for v in re.findall(r"'reward': '([^']+)'", text)]
    assert len(rewards) == 200
    run = read_quiet(path)
    assert run.warnings == []  # steps recovered from the epoch column and steps per epoch
    np.testing.assert_array_equal(run.steps, np.arange(1, 201))
    np.testing.assert_array_equal(run.reward, rewards)
    assert run.metadata["model_name"] == "Qwen/Qwen3.5-9B"
    assert run.metadata["max_steps"] == 200
    assert run.metadata["train_summary"]["train_runtime"] == 6702.0


def test_console_key_value_lines_coicozoi():
    path = shared_file("Coicozoi__minimind-from-scratch__grpo.log")
    text = path.read_text()
    found = re.findall(r"^Epoch:\[1/1\]\((\d+)/9751\), Reward: (\S+),", text, flags=re.M)
    debug_rewards = len(re.findall(r"^\[DEBUG\] gen\[\d+\] reward=", text, flags=re.M))
    run = _shared_run(path.name)  # read once, shared with the all-logs test below
    assert any(re.match(rf"{debug_rewards} entries .* no step ignored", w) for w in run.warnings)
    np.testing.assert_array_equal(run.steps, [int(s) for s, _ in found])
    np.testing.assert_array_equal(run.reward, [float(r) for _, r in found])
    assert len(run) == 9751
    assert run.original_names["kl"] == "KL_ref"
    assert run.column("Learning Rate").iloc[0] == pytest.approx(3e-7)


def test_per_call_reward_summaries_soumiguria():
    path = shared_file("soumiguria__cognitive-load-manager__reward_curve_full.json")
    document = json.loads(path.read_text())
    with pytest.warns(GrpoLogWarning, match="reward taken from the column 'mean'"):
        run = read_log(path)
    np.testing.assert_array_equal(run.steps, [e["step"] for e in document["training_steps"]])
    np.testing.assert_array_equal(run.reward, [e["mean"] for e in document["training_steps"]])
    assert len(run) == 1117
    assert run.metadata["model_name"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert run.metadata["group_size"] == 4
    assert run.reward[:20].mean() < 0.2 < run.reward[-200:].mean()


# ---------------------------------------------------------------------------------------------
# Round trips: a Run written in each format reads back identically


@st.composite
def runs(draw) -> Run:
    n = draw(st.integers(1, 25))
    steps = np.asarray(
        sorted(draw(st.sets(st.integers(0, 10**6), min_size=n, max_size=n))), dtype=np.int64
    )
    finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
    reward = np.array(draw(st.lists(finite, min_size=n, max_size=n)))
    columns = {}
    for name in draw(
        st.sets(
            st.sampled_from(
                [
                    "kl",
                    "entropy",
                    "eval_reward",
                    "grad_norm",
                    "rewards/format/mean",
                    "eval_loss",
                    "custom",
                ]
            )
        )
    ):
        values = np.array(draw(st.lists(finite, min_size=n, max_size=n)))
        holes = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
        holes[draw(st.integers(0, n - 1))] = False  # at least one finite value
        values[holes] = np.nan
        columns[name] = values
    metadata = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "group_size": st.integers(2, 64),
                "learning_rate": finite,
                "model_name": st.text(max_size=20),
            },
        )
    )
    return Run.from_arrays(steps, reward, metadata=metadata, **columns)


@pytest.mark.parametrize(
    "fmt,name",
    [
        ("trl", "trainer_state.json"),
        ("csv", "log.csv"),
        ("jsonl", "log.jsonl"),
        ("tensorboard", "events.out.tfevents.1.host"),
    ],
)
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(run=runs())
def test_round_trip_is_exact(tmp_path, fmt, name, run):
    path = write_log(run, tmp_path / name, format=fmt)
    back = read_log(path)  # no warnings: pytest turns any into an error
    pd.testing.assert_frame_equal(back.frame, run.frame, check_exact=True)
    assert back.metadata == run.metadata
    assert back.format == fmt
    # the format is told from the name alone as well
    assert read_log(write_log(run, tmp_path / ("again-" + name))).format == fmt


def test_round_trip_of_a_real_log(tmp_path):
    run = read_quiet(DATA / TRL_FILES[1])
    for fmt, name in (
        ("trl", "a.json"),
        ("csv", "a.csv"),
        ("jsonl", "a.jsonl"),
        ("tensorboard", "a.tfevents"),
    ):
        back = read_log(write_log(run, tmp_path / name, format=fmt))
        pd.testing.assert_frame_equal(back.frame, run.frame, check_exact=True)
        assert back.metadata == run.metadata


# ---------------------------------------------------------------------------------------------
# TensorBoard framing against independent references


def _crc32c_bitwise(data: bytes) -> int:
    # bit-at-a-time CRC-32C, written from the polynomial (not the reader's table)
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def test_crc32c_reference_vectors():
    # RFC 3720 appendix B.4 and the usual check value
    vectors = {
        bytes(32): 0x8A9136AA,
        b"\xff" * 32: 0x62A8AB43,
        bytes(range(32)): 0x46DD794E,
        bytes(range(31, -1, -1)): 0x113FDB5C,
        b"123456789": 0xE3069283,
    }
    for data, crc in vectors.items():
        assert _crc32c_bitwise(data) == crc
    from grpo_dynamics.io.tensorboard import _crc32c

    for data, crc in vectors.items():
        assert _crc32c(data) == crc


def _record(payload: bytes) -> bytes:
    def masked(data):
        crc = _crc32c_bitwise(data)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", masked(header)) + payload + struct.pack("<I", masked(payload))


def _len(data: bytes) -> bytes:
    assert len(data) < 128
    return bytes([len(data)])


def _event(step: int, tag: bytes, value_field: bytes) -> bytes:
    # Event{wall_time=1.5 (1, fixed64), step (2, varint), summary (5){value (1){tag (1), ...}}}
    value = b"\x0a" + _len(tag) + tag + value_field
    summary = b"\x0a" + _len(value) + value
    return (
        b"\x09"
        + struct.pack("<d", 1.5)
        + b"\x10"
        + bytes([step])
        + b"\x2a"
        + _len(summary)
        + summary
    )


def test_tensorboard_hand_assembled_events(tmp_path):
    version = b"\x09" + struct.pack("<d", 1.0) + b"\x1a\x0dbrain.Event:2"
    simple = b"\x15" + struct.pack("<f", 0.25)  # simple_value (2, float32), PyTorch style
    # TF2 style: tensor (8) {dtype DT_FLOAT (1)=1, float_val (5) packed}
    tensor_packed = b"\x08\x01\x12\x00\x2a\x04" + struct.pack("<f", 0.75)
    # tensor_content (4) bytes of one DT_DOUBLE
    tensor_content = b"\x08\x02\x12\x00\x22\x08" + struct.pack("<d", 0.1)
    blob = b"".join(
        [
            _record(version),
            _record(_event(1, b"train/reward", simple)),
            _record(_event(1, b"train/kl", b"\x42" + _len(tensor_packed) + tensor_packed)),
            _record(_event(3, b"train/reward", b"\x42" + _len(tensor_content) + tensor_content)),
            _record(_event(3, b"eval/reward", simple)),
        ]
    )
    path = tmp_path / "events.out.tfevents.123.host"
    path.write_bytes(blob)
    run = read_quiet(path)
    assert run.format == "tensorboard"
    np.testing.assert_array_equal(run.steps, [1, 3])
    np.testing.assert_array_equal(run.reward, [0.25, 0.1])
    assert run.column("kl").to_dict() == {1: 0.75}
    assert run.column("eval_reward").to_dict() == {3: 0.25}
    assert run.original_names["reward"] == "train/reward"
    # a directory of event files reads as one run
    assert read_quiet(tmp_path, format="tensorboard").frame.equals(run.frame)
    # a truncated last record (writer killed) is dropped with a warning
    path.write_bytes(blob[:-7])
    with pytest.warns(GrpoLogWarning, match="last record truncated"):
        cut = read_log(path)
    np.testing.assert_array_equal(cut.steps, [1, 3])
    assert not cut.has("eval_reward")
    # a flipped payload byte fails the checksum with the record named
    corrupt = bytearray(blob)
    corrupt[len(_record(version)) + 20] ^= 0xFF
    path.write_bytes(bytes(corrupt))
    with pytest.raises(LogFormatError, match=r"events.out.tfevents.123.host: record 1 .*checksum"):
        read_log(path)


def test_tensorboard_files_written_by_tensorboardx(tmp_path):
    # an independent writer (its own protobuf and CRC code), PyTorch-style float32 simple_value
    tensorboardx = pytest.importorskip("tensorboardX")
    rng = np.random.default_rng(5)
    reward = rng.normal(0.5, 0.2, size=30)
    with tensorboardx.SummaryWriter(logdir=str(tmp_path)) as writer:
        for step, value in enumerate(reward, start=1):
            writer.add_scalar("train/reward", value, step)
            if step % 10 == 0:
                writer.add_scalar("eval/reward", value / 2, step)
                writer.add_histogram("weights", rng.normal(size=100), step)
    run = read_quiet(tmp_path)
    np.testing.assert_array_equal(run.steps, np.arange(1, 31))
    np.testing.assert_array_equal(run.reward, reward.astype(np.float32).astype(float))
    np.testing.assert_array_equal(
        run.column("eval_reward"), (reward[9::10] / 2).astype(np.float32).astype(float)
    )


# ---------------------------------------------------------------------------------------------
# Messy logs


def _trl(tmp_path, history, name="trainer_state.json", **top) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"log_history": history, **top}))
    return path


def test_restart_keeps_last_occurrence(tmp_path):
    first = [{"step": s, "reward": 0.1 * s, "loss": 1.0} for s in range(1, 11)]
    second = [{"step": s, "reward": 0.1 * s + 0.05} for s in range(6, 13)]
    path = _trl(tmp_path, first + second)
    with pytest.warns(GrpoLogWarning, match=r"restart: 5 steps .*6\.\.10.*kept the last"):
        run = read_log(path)
    expected = {e["step"]: e["reward"] for e in first + second}  # dict keeps the last one
    np.testing.assert_array_equal(run.steps, sorted(expected))
    np.testing.assert_array_equal(run.reward, [expected[s] for s in sorted(expected)])
    # the restarted steps carry only what the second run logged
    assert run.frame.loc[1:5, "loss"].eq(1.0).all() and run.frame.loc[6:, "loss"].isna().all()


def test_restart_across_tensorboard_files_and_console_lines(tmp_path):
    # a resumed run writes a new event file (later name) that logs steps 6..10 again
    first = Run.from_arrays(np.arange(1, 11), np.linspace(0, 1, 10), kl=np.ones(10))
    second = Run.from_arrays(np.arange(6, 16), np.linspace(2, 3, 10), kl=np.zeros(10))
    write_log(first, tmp_path / "events.out.tfevents.100.host", format="tensorboard")
    write_log(second, tmp_path / "events.out.tfevents.200.host", format="tensorboard")
    with pytest.warns(GrpoLogWarning, match=r"restart: 5 steps .*6\.\.10"):
        run = read_log(tmp_path)
    expected = dict(zip(first.steps.tolist(), first.reward, strict=True))
    expected.update(zip(second.steps.tolist(), second.reward, strict=True))
    np.testing.assert_array_equal(run.steps, sorted(expected))
    np.testing.assert_array_equal(run.reward, [expected[s] for s in sorted(expected)])
    assert run.column("kl").loc[6:].eq(0.0).all() and run.column("kl").loc[:5].eq(1.0).all()

    console = tmp_path / "restarted.log"
    console.write_text(
        "".join(f"step {s} reward={s / 10}\n" for s in range(1, 5))
        + "resuming from checkpoint-2\n"
        + "".join(f"step {s} reward={s / 10 + 1}\n" for s in range(3, 6))
    )
    with pytest.warns(GrpoLogWarning, match=r"restart: 2 steps .*3\.\.4"):
        run = read_log(console)
    np.testing.assert_array_equal(run.reward, [0.1, 0.2, 1.3, 1.4, 1.5])


def test_eval_entries_merge_on_step_and_every_n(tmp_path):
    history = []
    for step in range(5, 55, 5):
        history.append({"step": step, "reward": 1 - 0.5**step, "kl": 0.01 * step, "epoch": step})
        if step % 10 == 0:  # TRL's eval entries carry their own epoch
            history.append(
                {"step": step, "eval_reward": 0.5, "eval_loss": 2.0, "epoch": step + 1e-9}
            )
    history.append({"step": 50, "train_runtime": 12.0, "train_loss": 0.1})
    path = _trl(tmp_path, history, logging_steps=5, global_step=50)
    run = read_quiet(path)
    assert run.warnings == []
    assert run.logging_interval == 5 and len(run) == 10
    assert run.column("eval_reward").index.tolist() == [10, 20, 30, 40, 50]
    assert "train_loss" not in run.frame and run.metadata["train_summary"]["train_loss"] == 0.1
    assert run.metadata["logging_steps"] == 5
    assert repr(run) == (
        f"Run('trainer_state.json', 10 rewards, steps 5..50, columns={list(run.frame.columns)}, "
        "0 warnings)"
    )
    assert any("every 5 steps" in n for n in run.notes)


def test_nan_rows_and_infinities(tmp_path):
    path = tmp_path / "log.jsonl"
    lines = [
        '{"step": 1, "reward": 0.1, "kl": 0.0}',
        '{"step": 2, "reward": NaN, "kl": 0.2}',
        '{"step": 3, "reward": NaN, "kl": NaN}',
        '{"step": 4, "reward": 0.4, "kl": Infinity}',
    ]
    path.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = read_log(path)
    messages = " | ".join(str(w.message) for w in caught)
    assert "reward: 2 non-finite" in messages and "kl: 2 non-finite" in messages
    assert "1 rows with no finite value dropped" in messages
    assert "reward missing or NaN at 1 logged steps (first 2)" in messages
    np.testing.assert_array_equal(run.steps, [1, 4])
    np.testing.assert_array_equal(run.frame.index, [1, 2, 4])
    assert math.isnan(run.frame.loc[4, "kl"])
    assert run.column("kl").to_dict() == {1: 0.0, 2: 0.2}


def test_rewards_outside_unit_interval_are_kept_without_warning(tmp_path):
    path = _trl(tmp_path, [{"step": s, "reward": -3.0 + s} for s in range(1, 8)])
    run = read_log(path)  # any warning would fail here (filterwarnings=error)
    np.testing.assert_array_equal(run.reward, np.arange(1, 8) - 3.0)
    assert any("outside [0, 1]" in n for n in run.notes)


def test_per_function_rewards_summed_when_no_total(tmp_path):
    history = [
        {
            "step": s,
            "rewards/format/mean": 0.1 * s,
            "rewards/format/std": 9.0,
            "rewards/accuracy/mean": 0.01 * s,
        }
        for s in range(1, 6)
    ]
    with pytest.warns(GrpoLogWarning, match="sum of per-function means"):
        run = read_log(_trl(tmp_path, history))
    np.testing.assert_array_equal(
        run.reward, [e["rewards/format/mean"] + e["rewards/accuracy/mean"] for e in history]
    )
    assert run.original_names["reward"] == "rewards/accuracy/mean + rewards/format/mean"


def test_missing_columns_and_lookups(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("Step,train/reward,train/loss\n1,0.5,2\n2,0.6,1.5\n")
    run = read_quiet(path)
    assert not run.has("kl") and run.has("reward") and run.has("train/loss")
    with pytest.raises(KeyError, match="column 'kl' is not in this run"):
        run.column("kl")
    assert run.column("train/reward").equals(run.column("reward"))
    assert any("absent canonical columns" in n and "kl" in n for n in run.notes)


def test_wandb_csv_export(tmp_path):
    path = tmp_path / "wandb.csv"
    table = pd.DataFrame(
        {
            "Step": [10, 20, 30],
            "my-run - train/reward": [0.1, np.nan, 0.3],
            "my-run - train/reward__MIN": [0.0, np.nan, 0.2],
            "my-run - eval/reward": [np.nan, 0.25, np.nan],
        }
    )
    table.to_csv(path, index=False)
    run = read_quiet(path)
    assert run.warnings == []  # a step with only eval metrics is not a missing reward
    assert "1 steps carry only eval metrics" in run.notes
    np.testing.assert_array_equal(run.steps, [10, 30])
    np.testing.assert_array_equal(run.reward, [0.1, 0.3])
    assert run.column("eval_reward").to_dict() == {20: 0.25}
    assert run.original_names["eval_reward"] == "eval/reward"
    assert "train/reward__MIN" in run.frame


@pytest.mark.parametrize(
    "step_name", ["step", "global_step", "_step", "Step", "train/global_step", "iteration"]
)
def test_csv_step_column_names(tmp_path, step_name):
    path = tmp_path / "log.csv"
    path.write_text(f"{step_name},reward\n3,0.5\n7,0.25\n")
    run = read_quiet(path)
    np.testing.assert_array_equal(run.steps, [3, 7])
    assert step_name not in run.frame


def test_wandb_step_counter_loses_to_global_step(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text(
        '{"_step": 0, "train/global_step": 8, "train/reward": 0.5}\n'
        '{"_step": 1, "train/global_step": 16, "train/reward": 0.75}\n'
    )
    run = read_quiet(path)
    np.testing.assert_array_equal(run.steps, [8, 16])
    assert run.frame["_step"].tolist() == [0.0, 1.0]


def test_console_step_lines_and_unnumbered_dicts(tmp_path):
    path = tmp_path / "train.log"
    path.write_text(
        "loading model...\n"
        "step 1 | loss=0.5 reward=0.25 kl=0.01\n"
        "noise without numbers\n"
        "step 2 | loss=0.4 reward=0.5 kl=0.02\n"
        "[Step 3] reward: 0.75, entropy: 1.2\n"
    )
    run = read_quiet(path)
    np.testing.assert_array_equal(run.steps, [1, 2, 3])
    np.testing.assert_array_equal(run.reward, [0.25, 0.5, 0.75])
    assert run.column("entropy").to_dict() == {3: 1.2}

    dicts = tmp_path / "trl.out"
    dicts.write_text(
        "{'loss': 0.1, 'reward': 0.2, 'epoch': 0.1}\nwarming up\n"
        " 10%|#  | 1/10 {'loss': 0.1, 'reward': 0.4, 'epoch': 0.2}\n"
    )
    with pytest.warns(GrpoLogWarning, match="steps numbered 1..n"):
        run = read_log(dicts)
    np.testing.assert_array_equal(run.steps, [1, 2])
    np.testing.assert_array_equal(run.reward, [0.2, 0.4])


def test_entries_without_step_among_stepped_ones(tmp_path):
    history = [{"step": 1, "reward": 0.1}, {"reward": 0.9}, {"step": 2, "reward": 0.2}]
    with pytest.warns(
        GrpoLogWarning, match=r"1 entries .* no step ignored \(first: log_history\[1\]"
    ):
        run = read_log(_trl(tmp_path, history))
    np.testing.assert_array_equal(run.reward, [0.1, 0.2])


def test_out_of_order_steps_are_sorted(tmp_path):
    run = read_log(
        _trl(
            tmp_path,
            [{"step": 3, "reward": 0.3}, {"step": 1, "reward": 0.1}, {"step": 2, "reward": 0.2}],
        )
    )
    np.testing.assert_array_equal(run.steps, [1, 2, 3])
    np.testing.assert_array_equal(run.reward, [0.1, 0.2, 0.3])


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(st.integers(0, 30), min_size=1, max_size=40),
    rewards=st.lists(st.floats(-5, 5), min_size=40, max_size=40),
)
def test_merge_keeps_last_entry_of_each_step(steps, rewards):
    # reference: a dict assignment in file order keeps the last value of each step
    history = [{"step": s, "reward": r} for s, r in zip(steps, rewards, strict=False)]
    expected: dict[int, float] = {}
    for entry in history:
        expected[entry["step"]] = entry["reward"]
    parsed = json.dumps({"log_history": history})
    from grpo_dynamics.io._normalize import _build_run
    from grpo_dynamics.io.json_log import _read_json

    run = _build_run(_read_json("mem.json", parsed), "mem.json", "trl")
    np.testing.assert_array_equal(run.steps, sorted(expected))
    np.testing.assert_array_equal(run.reward, [expected[s] for s in sorted(expected)])
    # some earlier value overwritten by a different one: right after it (several updates
    # logged under one step) or after other steps came in between (a restart)
    stored: dict[int, float] = {}
    in_a_row: set[int] = set()
    restarted: set[int] = set()
    previous = None
    for s, r in zip(steps, rewards, strict=False):
        if s in stored and stored[s] != r:
            (in_a_row if previous == s else restarted).add(s)
        stored[s], previous = r, s
    assert any(w.startswith("restart") for w in run.warnings) == bool(restarted)
    assert any("in a row" in w for w in run.warnings) == bool(in_a_row - restarted)


def test_tab_separated_export(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_text("global_step\treward\tkl\n2\t0.5\t0.1\n4\t0.7\t\n")
    run = read_quiet(path)
    np.testing.assert_array_equal(run.steps, [2, 4])
    assert run.column("kl").to_dict() == {2: 0.1}


def test_directory_with_trainer_state_and_model_name(tmp_path):
    _trl(tmp_path, [{"step": 1, "reward": 0.5}])
    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": "org/base-1B"}')
    run = read_quiet(tmp_path)
    assert run.metadata["model_name"] == "org/base-1B"
    assert run.source == str(tmp_path / "trainer_state.json")


def test_canonical_names_are_the_documented_ones():
    assert CANONICAL_COLUMNS[:9] == (
        "reward",
        "reward_std",
        "frac_reward_zero_std",
        "entropy",
        "kl",
        "completion_length",
        "clip_ratio",
        "learning_rate",
        "eval_reward",
    )
    doc = (Path(__file__).resolve().parents[1] / "docs" / "io.md").read_text()
    for name in CANONICAL_COLUMNS:
        assert f"`{name}`" in doc


# ---------------------------------------------------------------------------------------------
# Errors name the file and the line or key


@pytest.mark.parametrize("name", ["empty.json", "empty.csv", "empty.log", "empty.jsonl"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_text("  \n")
    with pytest.raises(LogFormatError, match=re.escape(f"{path}: file is empty")):
        read_log(path)


def test_truncated_and_corrupt_json(tmp_path):
    text = (DATA / TRL_FILES[2]).read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: len(text) // 2])
    line = text[: len(text) // 2].count("\n") + 1
    with pytest.raises(
        LogFormatError, match=rf"{re.escape(str(cut))}: line {line} .*truncated JSON"
    ):
        read_log(cut)
    bad = tmp_path / "bad.json"
    bad.write_text('{"log_history": [\n{"step": 1, "reward": 0.5},\n{"step": 2 "reward": 1}]}')
    with pytest.raises(LogFormatError, match=r"bad.json: line 3 column 12: invalid JSON"):
        read_log(bad)
    # a bad line before the end is corruption, not a cut: the file is refused, naming the line
    lines = tmp_path / "bad.jsonl"
    lines.write_text('{"step": 1, "reward": 0.5}\n{"step": 2, "rew\n{"step": 3, "reward": 0.6}\n')
    with pytest.raises(LogFormatError, match=r"bad.jsonl: line 2 .*invalid JSON"):
        read_log(lines)


def test_missing_reward_column(tmp_path):
    path = _trl(tmp_path, [{"step": 1, "loss": 0.5, "kl": 0.1}])
    with pytest.raises(LogFormatError, match=r"trainer_state.json: reward: no reward column.*loss"):
        read_log(path)
    csv = tmp_path / "x.csv"
    csv.write_text("step,loss\n1,2\n")
    with pytest.raises(LogFormatError, match=r"x.csv: reward: no reward column"):
        read_log(csv)


def test_other_malformed_inputs(tmp_path):
    with pytest.raises(LogFormatError, match=r"log_history\[1\]: step field 'step' is not an int"):
        read_log(_trl(tmp_path, [{"step": 1, "reward": 0.5}, {"step": 1.5, "reward": 0.5}]))
    with pytest.raises(LogFormatError, match=r"key 'log_history': is not a list"):
        read_log(_trl(tmp_path, {"step": 1}))
    weird = tmp_path / "w.json"
    weird.write_text('{"name": "x"}')
    with pytest.raises(LogFormatError, match=r"w.json: top level: no per-step data.*keys: name"):
        read_log(weird)
    uneven = tmp_path / "u.json"
    uneven.write_text('{"reward": [1, 2], "kl": [1]}')
    with pytest.raises(LogFormatError, match=r"different lengths: reward=2, kl=1"):
        read_log(uneven)
    chatter = tmp_path / "c.log"
    chatter.write_text("hello\nworld\n")
    with pytest.raises(LogFormatError, match=r"c.log: no metric lines found"):
        read_log(chatter)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_log(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="format must be one of"):
        read_log(weird, format="parquet")


def test_empty_history_and_binary_garbage(tmp_path):
    with pytest.raises(LogFormatError, match=r"trainer_state.json: no per-step records found"):
        read_log(_trl(tmp_path, []))
    garbage = tmp_path / "run.log"
    garbage.write_bytes(b"\x00\xff\xfe" * 50)
    with pytest.raises(LogFormatError, match=r"run.log: byte 1: not UTF-8 text"):
        read_log(garbage)


def test_console_epochs_continue_the_step_count(tmp_path):
    path = tmp_path / "multi.log"
    path.write_text(
        "Epoch:[1/2](9/10), Reward: 0.1, KL_ref: 0.0\n"
        "Epoch:[1/2](10/10), Reward: 0.2, KL_ref: 0.0\n"
        "Epoch:[2/2](1/10), Reward: 0.3, KL_ref: 0.0\n"
    )
    run = read_quiet(path)
    np.testing.assert_array_equal(run.steps, [9, 10, 11])
    np.testing.assert_array_equal(run.reward, [0.1, 0.2, 0.3])


def test_run_and_writer_validation(tmp_path):
    with pytest.raises(ValueError, match=r"kl has shape \(2,\), steps \(3,\)"):
        Run.from_arrays([1, 2, 3], [0.1, 0.2, 0.3], kl=[1, 2])
    with pytest.raises(ValueError, match="steps must be a 1-D array of integers"):
        Run.from_arrays([1.5], [0.1])
    with pytest.raises(ValueError, match="'reward' column"):
        Run(frame=pd.DataFrame({"kl": [1.0]}))
    with pytest.raises(ValueError, match="unique and increasing"):
        Run(frame=pd.DataFrame({"reward": [1.0, 2.0]}, index=[2, 1]))
    run = Run.from_arrays([1], [0.5])
    with pytest.raises(ValueError, match="format must be one of trl, csv, jsonl, tensorboard"):
        write_log(run, tmp_path / "x", format="xml")


def test_batch_never_loses_an_item(tmp_path):
    good = _trl(tmp_path, [{"step": 1, "reward": 0.5}], name="good.json")
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "cut.json").write_text('{"log_history": [{"step": 1, "rew')
    _trl(tmp_path, [{"step": 1, "loss": 0.5}], name="noreward.json")
    (tmp_path / "notes.md").write_text("not a log")  # not a log suffix: not picked up
    results = read_logs([tmp_path, str(tmp_path / "*.nothing")])
    outcome = {Path(p).name: r for p, r in results}
    assert set(outcome) == {"good.json", "empty.json", "cut.json", "noreward.json", "*.nothing"}
    assert isinstance(outcome["good.json"], Run)
    assert outcome["good.json"].source == str(good)
    for name in ("empty.json", "cut.json", "noreward.json"):
        assert isinstance(outcome[name], LogFormatError) and name in str(outcome[name])
    assert isinstance(outcome["*.nothing"], FileNotFoundError)
    globbed = read_logs(str(tmp_path / "g*.json"))
    assert [Path(p).name for p, _ in globbed] == ["good.json"]


# ----------------------------------------------------------------------------------------------
# Run.series / as_run: the one coercion of user data into a Run


def test_as_run_accepts_arrays_frames_and_mappings_alike():
    steps = np.array([3, 1, 2])
    reward = np.array([0.3, 0.1, np.nan])
    from_arrays = gd.as_run(steps, reward)
    t, y = from_arrays.series()
    np.testing.assert_array_equal(t, [1.0, 3.0])  # sorted by step, NaN row dropped
    np.testing.assert_array_equal(y, [0.1, 0.3])
    frame = pd.DataFrame({"step": steps, "train/reward": reward, "kl": [1.0, 2.0, 3.0]})
    from_frame = gd.as_run(frame)
    np.testing.assert_array_equal(from_frame.series()[1], y)
    np.testing.assert_array_equal(from_frame.series("kl")[1], [2.0, 3.0, 1.0])
    from_mapping = gd.as_run({"step": steps, "reward": reward})
    np.testing.assert_array_equal(from_mapping.series()[0], t)
    assert gd.as_run(from_mapping) is from_mapping


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.arange(3),), "data: expected a Run"),
        ((np.arange(3), np.zeros(4)), "reward: shape"),
        ((np.array([0.5, 1.0]), np.zeros(2)), "data: steps must be integers"),
        ((np.array([1, 1]), np.zeros(2)), "data: steps must be unique"),
        ((pd.DataFrame({"a": [1.0]}),), "no reward column"),
        (("not a run",), "data: expected a Run"),
    ],
)
def test_as_run_rejects_bad_input_naming_the_argument(args, message):
    with pytest.raises(ValueError, match=message):
        gd.as_run(*args)


def test_run_series_names_a_missing_column():
    run = gd.as_run(np.arange(4), np.zeros(4))
    with pytest.raises(ValueError, match="column: 'kl' is not in this run"):
        run.series("kl")


# ---------------------------------------------------------------------------------------------
# verl and OpenRLHF logs (issue 12): console lines, metric names in JSONL / W&B exports

VERL_LOG = "uqcxu9__qwen2.5_300step_NEW_CONSIS_RESULT__logs__train_v5_reward.log"


def _verl_metric(text: str, name: str) -> dict[int, float]:
    """An independent parse: per 'step:N' line, the value printed after ' - name:'."""
    found: dict[int, float] = {}
    pattern = re.compile(
        r"step:(\d+) - (?:.*? - )?" + re.escape(name) + r":(?:np\.float64\()?([-+0-9.eE]+|nan)"
    )
    for line in text.splitlines():
        match = pattern.search(line)
        if match:
            found[int(match.group(1))] = float(match.group(2))
    return found


@functools.cache
def _shared_run(name: str, select: tuple[tuple[str, str], ...] = ()) -> Run:
    """A shared log read once for the tests below (warnings are checked in run.warnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrpoLogWarning)
        return read_log(shared_file(name), select=dict(select) or None)


def test_verl_console_log_matches_an_independent_parse():
    path = shared_file(VERL_LOG)
    text = path.read_text(encoding="utf-8")
    score = _verl_metric(text, "critic/score/mean")
    assert len(score) == 700 and sorted(score) == list(range(1, 701))  # LABELS.md: 700 points
    run = _shared_run(VERL_LOG)
    assert run.format == "console" and run.warnings == []
    np.testing.assert_array_equal(run.steps, sorted(score))
    np.testing.assert_array_equal(run.reward, [score[s] for s in sorted(score)])
    for canonical, name in (
        ("entropy", "actor/entropy"),
        ("clip_ratio", "actor/pg_clipfrac"),  # printed as np.float64(...)
        ("grad_norm", "actor/grad_norm"),
        ("learning_rate", "actor/lr"),
        ("completion_length", "response_length/mean"),
        ("truncated_ratio", "response_length/clip_ratio"),
        ("eval_reward", "val-core/econ_agent/reward/mean@1"),
    ):
        expected = _verl_metric(text, name)
        assert expected, name
        assert run.original_names[canonical] == name
        column = run.column(canonical)
        assert column.index.tolist() == sorted(expected)
        np.testing.assert_array_equal(column.to_numpy(), [expected[s] for s in sorted(expected)])
    advantages = _verl_metric(text, "critic/advantages/mean")
    np.testing.assert_array_equal(run.column("critic/advantages/mean"), list(advantages.values()))
    # LABELS.md: starts negative (-0.4), noisy plateau 0.1-0.2 later
    assert run.reward[:20].mean() < 0 < run.reward[-300:].mean()


def test_verl_console_lines_with_colours_wrappers_and_kl_loss(tmp_path):
    lines = []
    for step in range(1, 6):
        lines.append(
            f"\x1b[36m(main_task pid=123)\x1b[0m step:{step} - actor/entropy:{0.6 - step / 100}"
            f" - actor/kl_loss:np.float64({step / 1000}) - actor/ppo_kl:np.float64(0.0)"
            f" - critic/rewards/mean:{0.3 + step / 10} - response_length/clip_ratio:0.01"
            f" - actor/lr:np.float64(1e-06) - training/global_step:{step} - tag:abc"
        )
    path = tmp_path / "verl.log"
    path.write_text("(main_task pid=123) Using LocalLogger\n" + "\n".join(lines) + "\n")
    run = read_quiet(path)
    np.testing.assert_array_equal(run.steps, np.arange(1, 6))
    np.testing.assert_allclose(run.reward, 0.3 + np.arange(1, 6) / 10, rtol=0, atol=0)
    np.testing.assert_array_equal(run.column("kl"), np.arange(1, 6) / 1000)
    assert run.original_names["reward"] == "critic/rewards/mean"  # no critic/score/mean here
    assert run.original_names["kl"] == "actor/kl_loss"
    np.testing.assert_array_equal(run.column("actor/ppo_kl"), np.zeros(5))  # not the ref KL
    assert run.column("learning_rate").eq(1e-6).all()
    assert "training/global_step" not in run.frame.columns
    assert any("tag (5x)" in n for n in run.notes)


def test_verl_and_openrlhf_names_in_jsonl_and_wandb_csv(tmp_path):
    rng = np.random.default_rng(7)
    reward = np.round(rng.uniform(0, 1, 8), 6)
    verl = tmp_path / "verl.jsonl"
    verl.write_text(
        "".join(
            json.dumps(
                {
                    "step": s,
                    "critic/score/mean": r,
                    "actor/entropy": 1.0 - r,
                    "actor/kl_loss": r / 100,
                    "response_length/mean": 100 + s,
                    "actor/pg_clipfrac": 0.01,
                    "actor/grad_norm": 2.0,
                    "critic/advantages/mean": 0.0,
                }
            )
            + "\n"
            for s, r in zip(range(1, 9), reward, strict=True)
        )
    )
    run = read_quiet(verl)
    np.testing.assert_array_equal(run.reward, reward)
    np.testing.assert_array_equal(run.column("entropy"), 1.0 - reward)
    np.testing.assert_array_equal(run.column("completion_length"), 100 + np.arange(1, 9))
    assert {"kl", "clip_ratio", "grad_norm", "critic/advantages/mean"} <= set(run.frame.columns)
    # the same metrics nested one level down: {"step": N, "data": {...}}
    nested = tmp_path / "nested.jsonl"
    nested.write_text(
        "".join(
            json.dumps({"step": s, "data": {"critic/score/mean": r, "actor/entropy": 1.0 - r}})
            + "\n"
            for s, r in zip(range(1, 9), reward, strict=True)
        )
    )
    run = read_quiet(nested)
    np.testing.assert_array_equal(run.steps, np.arange(1, 9))
    np.testing.assert_array_equal(run.reward, reward)
    np.testing.assert_array_equal(run.column("entropy"), 1.0 - reward)

    # OpenRLHF's W&B run: train/<name> with train/global_step
    openrlhf = tmp_path / "openrlhf.csv"
    header = "train/global_step,train/reward,train/policy_loss,train/actor_lr,train/kl,"
    header += "train/ppo_clip_ratio,train/response_length,train/entropy_loss,train/ppo_kl\n"
    rows = "".join(
        f"{s},{r},0.1,5e-07,0.002,0.03,{200 + s},0.9,0.001\n"
        for s, r in zip(range(10, 90, 10), reward, strict=True)
    )
    openrlhf.write_text(header + rows)
    run = read_quiet(openrlhf)
    np.testing.assert_array_equal(run.steps, np.arange(10, 90, 10))
    np.testing.assert_array_equal(run.reward, reward)
    assert run.original_names == {
        "reward": "train/reward",
        "entropy": "train/entropy_loss",
        "kl": "train/kl",
        "completion_length": "train/response_length",
        "clip_ratio": "train/ppo_clip_ratio",
        "learning_rate": "train/actor_lr",
        "loss": "train/policy_loss",
    }
    assert "train/ppo_kl" in run.frame.columns


# ---------------------------------------------------------------------------------------------
# Every shared real log reads (47 runs); files with several runs select one


def _readme_runs() -> list[tuple[str, dict[str, str] | None, int | None, tuple[int, int] | None]]:
    """(file, select, points, (first, last)) for every run in the collection's README tables."""
    readme = SHARED / "README.md"
    if not readme.is_file():
        return []
    runs = []
    for line in readme.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.match(r"^[\w.\-()]+__", cells[0]):
            continue
        match = re.match(r'^(\S+)(?: \[(?:rows with )?(\w+)=="(.*)"\])?$', cells[0])
        assert match, cells[0]
        name, column, value = match.groups()
        points = re.search(r"(\d+) points \((\d+)-(\d+)\)", cells[-1])
        runs.append(
            (
                name,
                {column: value} if column else None,
                int(points.group(1)) if points else None,
                (int(points.group(2)), int(points.group(3))) if points else None,
            )
        )
    return runs


def test_the_readme_lists_47_runs():
    if not (SHARED / "README.md").is_file():
        pytest.skip("../shared/data/real-grpo-logs absent")
    runs = _readme_runs()
    assert len(runs) == 47
    assert {name for name, *_ in runs} == {p.name for p in SHARED.iterdir() if p.suffix != ".md"}


@pytest.mark.parametrize(
    ("name", "select", "points", "span"),
    _readme_runs() or [pytest.param(None, None, None, None, marks=pytest.mark.skip)],
    ids=lambda v: v[:40] if isinstance(v, str) else None,
)
def test_every_shared_real_log_reads(name, select, points, span):
    run = _shared_run(name, tuple((select or {}).items()))
    assert len(run) > 0 and np.isfinite(run.reward).all()
    if select:
        assert run.metadata["selected"] == select
    if points is not None:  # the README's own count and step range
        assert len(run) == points
        if not any(w.startswith("no step column") for w in run.warnings):
            assert (int(run.steps[0]), int(run.steps[-1])) == span


def test_multi_run_csv_selects_one_run_by_its_column():
    path = shared_file("memoryoffish__nlp_grpo__results__curves_wave1.csv")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)  # independent: raw text cells
    arms = list(dict.fromkeys(table["arm"]))
    assert len(arms) == 4
    for arm in arms:
        rows = table[(table["arm"] == arm) & (table["critic/score/mean"] != "")]
        run = _shared_run(path.name, (("arm", arm),))
        np.testing.assert_array_equal(run.steps, rows["step"].astype(int))
        np.testing.assert_array_equal(run.reward, rows["critic/score/mean"].astype(float))
        assert run.original_names["entropy"] == "actor/entropy_loss"
        assert run.original_names["eval_reward"] == "val/test_score/game24"
    # without select: the first run, and a warning naming the column and the runs
    with pytest.warns(GrpoLogWarning, match=r"4 runs told apart by column 'arm'.*select="):
        first = read_log(path)
    np.testing.assert_array_equal(first.reward, read_quiet(path, select={"arm": arms[0]}).reward)
    with pytest.raises(LogFormatError, match=r"curves_wave1.csv: select 'run': no such column"):
        read_log(path, select={"run": "x"})
    with pytest.raises(LogFormatError, match=r"curves_wave1.csv: select .*no row matches.*'n8"):
        read_log(path, select={"arm": "n16"})


def test_select_in_jsonl_and_its_bad_uses(tmp_path):
    path = tmp_path / "two.jsonl"
    path.write_text(
        "".join(
            json.dumps({"run": run, "step": s, "reward": 0.1 * s + (run == "b")}) + "\n"
            for run in ("a", "b")
            for s in range(1, 4)
        )
    )
    run = read_quiet(path, select={"run": "b"})
    np.testing.assert_allclose(run.reward, [1.1, 1.2, 1.3], rtol=1e-15)
    with pytest.raises(ValueError, match=r"^select: only CSV and JSONL .* 'trl'"):
        read_log(_trl(tmp_path, [{"step": 1, "reward": 0.5}]), select={"run": "a"})
    with pytest.raises(ValueError, match=r"^select: must be a non-empty mapping"):
        read_log(path, select={})
    with pytest.raises(ValueError, match=r"^select: must be a non-empty mapping"):
        read_log(path, select=["run"])  # type: ignore[arg-type]


def test_jsonl_eval_records_and_minibatch_records_under_one_step(tmp_path):
    entries = [{"type": "eval", "grpo_step": 0, "reward": 0.05}]
    for step in range(1, 4):
        entries.append({"type": "rollout", "grpo_step": step, "reward": 0.1 * step})
        for batch in range(2):  # two optimizer updates logged under one rollout step
            entries.append({"type": "train", "grpo_step": step, "loss": step + batch / 10})
    entries.append({"type": "eval", "grpo_step": 3, "reward": 0.9})
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    with pytest.warns(GrpoLogWarning, match=r"3 steps logged several times in a row"):
        run = read_log(path)
    np.testing.assert_array_equal(run.steps, [1, 2, 3])
    np.testing.assert_allclose(run.reward, [0.1, 0.2, 0.3], rtol=1e-15)
    np.testing.assert_array_equal(run.column("loss"), [1.1, 2.1, 3.1])  # the last update's
    assert run.column("eval_reward").to_dict() == {0: 0.05, 3: 0.9}


def test_console_dicts_with_bare_nan_are_kept(tmp_path):
    path = shared_file("johnson7788__RLDecisionAgent__docs__Unsloth__train_grpo.log")
    text = path.read_text(encoding="utf-8")
    dicts = re.findall(r"\{'loss': [^{}\n]*'reward': ([-0-9.e]+)[^{}\n]*\}", text)
    nan_norms = len(re.findall(r"\{'loss'[^{}\n]*'grad_norm': nan", text))
    assert len(dicts) == 46 and nan_norms == 20  # LABELS.md: 46 steps, 20 NaN grad norms
    run = read_quiet(path)
    assert any(w.startswith("grad_norm: 20 non-finite") for w in run.warnings)
    np.testing.assert_array_equal(run.reward, [float(r) for r in dicts])


def test_printed_reward_tensors_give_mean_and_std(tmp_path):
    path = shared_file("josephdutoit__probability-aligned-llms__logs__grpo.log")
    text = path.read_text(encoding="utf-8")
    groups = [
        np.array([float(v) for v in g.split(",")])
        for g in re.findall(r"rewards: tensor\(\[([^\]]*)\]", text)
    ]
    assert len(groups) == 197  # README: 197 points
    with pytest.warns(GrpoLogWarning, match="no step column"):
        run = read_log(path)
    assert run.format == "console"  # '[2025-12-12 ...' is not a JSON array
    np.testing.assert_array_equal(run.reward, [g.mean() for g in groups])
    np.testing.assert_array_equal(run.column("reward_std"), [g.std(ddof=1) for g in groups])
    assert np.mean(run.reward == -1.0) > 0.9  # LABELS.md: dead reward, every sample -1


# ---------------------------------------------------------------------------------------------
# Lost data (issue 14): no column, record or file lost to one bad value


def test_one_non_numeric_csv_cell_keeps_its_column(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(
        "# exported\nstep,reward,kl,note\n1,0.1,0.01,ok\n2,-,0.02,ok\n\n3,0.3,abc,x\n"
        "4,0.5%,0.04,y\n5,0.5,0.05,z\n"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = read_log(path)
    messages = [str(w.message) for w in caught]
    assert any(
        m.startswith(f"{path}: column 'reward': 2 non-numeric cell(s) read as NaN at ")
        and "line 4 ('-')" in m
        and "line 7 ('0.5%')" in m
        for m in messages
    ), messages
    assert any(
        "column 'kl': 1 non-numeric cell(s)" in m and "line 6 ('abc')" in m for m in messages
    )
    np.testing.assert_array_equal(run.steps, [1, 3, 5])
    np.testing.assert_array_equal(run.reward, [0.1, 0.3, 0.5])
    kl = run.column("kl", dropna=False)
    np.testing.assert_array_equal(kl.loc[[1, 2, 4, 5]], [0.01, 0.02, 0.04, 0.05])
    assert math.isnan(kl.loc[3])
    assert "note" not in run.frame.columns and any("note" in n for n in run.notes)


def test_jsonl_cut_in_its_last_line_keeps_the_records_before(tmp_path):
    whole = [{"step": s, "reward": s / 10} for s in range(1, 6)]
    text = "".join(json.dumps(e) + "\n" for e in whole)
    path = tmp_path / "killed.jsonl"
    path.write_text(text + '{"step": 6, "rew')  # the writer died mid-line
    with pytest.warns(GrpoLogWarning, match=rf"{re.escape(str(path))}: line 6: last line cut"):
        run = read_log(path)
    np.testing.assert_array_equal(run.steps, [e["step"] for e in whole])
    np.testing.assert_array_equal(run.reward, [e["reward"] for e in whole])
    assert any(w.startswith("line 6:") for w in run.warnings)


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_deeply_nested_json_names_the_file(tmp_path, suffix):
    path = tmp_path / f"deep{suffix}"
    path.write_text('{"step": 1, "reward": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(LogFormatError, match=rf"^{re.escape(str(path))}: .*nested too deeply"):
        read_log(path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("huge.json", '{"log_history": [{"step": 1, "reward": 0.1}, {"step": 1e30, "reward": 1}]}'),
        (
            "huge_int.json",
            '[{"step": 1, "reward": 0.1}, {"step": 1' + "0" * 400 + ', "reward": 1}]',
        ),
        ("huge.jsonl", '{"step": 1, "reward": 0.1}\n{"step": 1e30, "reward": 0.2}\n'),
        ("huge.csv", "step,reward\n1,0.1\n1e30,0.2\n"),
        ("huge.log", "step 1 reward=0.1\nstep 1000000000000000000000000000000 reward=0.2\n"),
    ],
)
def test_steps_of_1e30_name_the_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LogFormatError, match=rf"^{re.escape(str(path))}: .*out of range"):
        read_log(path)


def test_the_tensorboard_codec_needs_no_tensorflow_or_protobuf():
    import ast as python_ast

    import grpo_dynamics.io.tensorboard as codec

    tree = python_ast.parse(Path(codec.__file__).read_text())
    imported = {
        (node.module or "") if isinstance(node, python_ast.ImportFrom) else alias.name
        for node in python_ast.walk(tree)
        if isinstance(node, (python_ast.Import, python_ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= {
        "__future__",
        "json",
        "struct",
        "collections.abc",
        "pathlib",
        "typing",
        "numpy",
        "_aliases",
        "_errors",
        "_records",
    }, imported


def test_from_arrays_and_as_run_reject_steps_beyond_exact_integers():
    with pytest.raises(ValueError, match=r"^steps: must be within \+-2\*\*53, got 1e\+30"):
        Run.from_arrays([1.0, 1e30], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"^steps: must be within"):
        gd.as_run(np.array([1.0, 1e30]), [0.1, 0.2])


def _big_trainer_state(path: Path, rows: int) -> None:
    """A TRL trainer_state.json: train entries, an eval entry every 500 steps, NaN grad norms
    every 997 steps, the final summary entry; written line by line (not held as objects)."""
    rng = np.random.default_rng(14)
    numbers = rng.random((rows, 6))
    with path.open("w") as out:
        out.write(f'{{\n  "global_step": {rows},\n  "log_history": [\n')
        for i in range(rows):
            step = i + 1
            entry = {
                "completion_length": 50.0 + 250.0 * numbers[i, 0],
                "epoch": step / rows,
                "grad_norm": math.nan if step % 997 == 0 else float(numbers[i, 1]),
                "kl": 0.01 * numbers[i, 2],
                "learning_rate": 1e-6,
                "loss": 0.1 * numbers[i, 3],
                "reward": float(numbers[i, 4]),
                "reward_std": 0.3 * numbers[i, 5],
                "step": step,
            }
            out.write("    " + json.dumps(entry) + ",\n")
            if step % 500 == 0:
                evaluation = {"epoch": step / rows, "eval_loss": float(numbers[i, 0]), "step": step}
                out.write("    " + json.dumps(evaluation) + ",\n")
        summary = {"epoch": 1.0, "step": rows, "train_loss": 0.05, "train_runtime": 1000.5}
        out.write("    " + json.dumps(summary) + '\n  ],\n  "logging_steps": 1\n}\n')


def test_large_trainer_state_is_read_within_three_times_its_size(tmp_path):
    # issue 14: a 200 MB trainer_state.json peaked at 12x its size; log_history is now decoded
    # entry by entry into compact arrays. 30,000 entries (8 MB) keep the suite fast: the peak
    # is the same multiple of the size at 8 and at 24 MB (2.45x measured at both), and the
    # fixed costs of a read weigh more in a smaller file, so the bound is no easier to meet
    import tracemalloc

    path = tmp_path / "trainer_state.json"
    rows = 30_000
    _big_trainer_state(path, rows)
    size = path.stat().st_size
    assert 6e6 < size < 12e6
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        run = read_quiet(path)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 3 * size, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"

    # the same run built independently from json.load
    with path.open() as handle:
        history = json.load(handle)["log_history"]
    train = [e for e in history if "reward" in e]
    np.testing.assert_array_equal(run.steps, [e["step"] for e in train])
    np.testing.assert_array_equal(run.reward, [e["reward"] for e in train])
    for column in ("kl", "reward_std", "grad_norm", "completion_length"):
        np.testing.assert_array_equal(
            run.column(column, dropna=False).to_numpy(), [e[column] for e in train]
        )
    evaluations = [e for e in history if "eval_loss" in e]
    eval_loss = run.column("eval_loss")
    np.testing.assert_array_equal(eval_loss.index, [e["step"] for e in evaluations])
    np.testing.assert_array_equal(eval_loss.to_numpy(), [e["eval_loss"] for e in evaluations])
    # an eval entry's epoch is the one kept at its step
    np.testing.assert_array_equal(run.column("epoch").to_numpy(), [e["epoch"] for e in train])
    nan_steps = [e["step"] for e in train if math.isnan(e["grad_norm"])]
    assert any(
        w.startswith(f"grad_norm: {len(nan_steps)} non-finite value(s) (NaN/inf) at steps 997,")
        for w in run.warnings
    ), run.warnings
    assert run.metadata["train_summary"] == {"train_loss": 0.05, "train_runtime": 1000.5}
    assert run.metadata["global_step"] == rows


def _messy_trainer_state(seed: int) -> dict:
    """Seeded trainer_state documents with restarts, repeats, eval entries, NaN, summaries."""
    rng = np.random.default_rng(seed)
    history: list[dict] = []
    steps = list(range(1, int(rng.integers(2, 30))))
    if rng.random() < 0.25:  # a restart from an earlier checkpoint
        steps += list(range(int(rng.integers(1, 10)), int(rng.integers(10, 25))))
    for step in steps:
        entry = {"loss": float(rng.random()), "reward": float(rng.random()), "step": step}
        if rng.random() < 0.1:
            entry["reward"] = float(rng.choice([math.nan, math.inf]))
        if rng.random() < 0.1:
            entry["kl"] = rng.choice([None, "n/a", True, 3])
        entry["epoch"] = step / 10
        history.append(entry)
        if rng.random() < 0.2:
            evaluation = {"epoch": step / 10 + 0.01, "eval_loss": float(rng.random())}
            history.append({**evaluation, "step": step})
        if rng.random() < 0.05:
            history.append(dict(history[-1]))
    if rng.random() < 0.5:
        history.append({"epoch": 3.0, "step": steps[-1], "train_loss": 0.1, "total_flos": 1e9})
    return {"global_step": steps[-1], "log_history": history, "logging_steps": 1}


@pytest.mark.parametrize("seed", range(60))
def test_trainer_state_streaming_matches_reading_the_whole_document(tmp_path, seed, monkeypatch):
    # the compact path (json_log._stream_trainer_state) against json.loads + one dict per record
    import grpo_dynamics.io.json_log as json_log

    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(_messy_trainer_state(seed), indent=seed % 3 or None))
    streamed = read_quiet(path)
    with monkeypatch.context() as patch:
        patch.setattr(json_log, "_stream_trainer_state", lambda text: None)
        whole = read_quiet(path)
    pd.testing.assert_frame_equal(streamed.frame, whole.frame)
    assert streamed.warnings == whole.warnings
    assert streamed.notes == whole.notes
    assert repr(streamed.metadata) == repr(whole.metadata)
    assert streamed.original_names == whole.original_names
