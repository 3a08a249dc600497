"""watch: once on a real log (values checked against the file parsed here), and following
files that a background thread writes (JSONL appended, TRL trainer_state.json rewritten as a
checkpoint does), in bounded time."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from grpo_dynamics._diagnose import diagnose
from grpo_dynamics.io import read_log
from grpo_dynamics.watch import watch

DATA = Path(__file__).parent / "data"


def test_once_on_a_real_trl_log():
    name = "aaravarora01__agent-memory-redteam__trainer_state.json"
    entries = [e for e in json.loads((DATA / name).read_text())["log_history"] if "reward" in e]
    out = io.StringIO()
    monitor = watch(DATA / name, once=True, out=out)
    text = out.getvalue()
    last = max(entries, key=lambda e: e["step"])
    assert monitor.last_step == last["step"]
    assert len(monitor) == len({e["step"] for e in entries})
    assert text.startswith(f"grpo-dynamics watch {name}")
    assert f"step {last['step']} " in text and f"reward {last['reward']:.4g}" in text
    # frac_reward_zero_std ~ 1 throughout: confirmed at once from the backlog
    assert "advantage_degeneracy" in text and "CRITICAL" in text
    assert text.count("\n") == len(text.splitlines())  # one block, printed once
    # named after the file: its report is diagnose of the file as read_log reads it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = diagnose(read_log(DATA / name))
    assert monitor.name == name
    assert monitor.report().to_dict() == expected.to_dict()


def test_once_on_a_missing_file_names_the_argument(tmp_path):
    with pytest.raises(ValueError, match="^path: "):
        watch(tmp_path / "nope.jsonl", once=True, out=io.StringIO())


@pytest.mark.parametrize(("option", "value"), [("interval", 0.0), ("idle_timeout", -1.0)])
def test_bad_timing_names_the_argument(tmp_path, option, value):
    with pytest.raises(ValueError, match=f"^{option}: "):
        watch(tmp_path / "x.jsonl", out=io.StringIO(), **{option: value})


def _rewards(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    steps = np.arange(1, n + 1)
    return 0.8 - 0.6 * np.exp(-steps / 30.0) + 0.03 * rng.standard_normal(n)


def test_follows_an_appended_jsonl_log(tmp_path):
    path = tmp_path / "metrics.jsonl"
    reward = _rewards(60)

    def writer() -> None:
        for start in range(0, 60, 15):  # four bursts, as a trainer logs
            with path.open("a") as handle:
                for i in range(start, start + 15):
                    handle.write(json.dumps({"step": i + 1, "reward": float(reward[i])}) + "\n")
            time.sleep(0.3)

    thread = threading.Thread(target=writer)
    began = time.monotonic()
    thread.start()
    out = io.StringIO()
    monitor = watch(path, interval=0.05, idle_timeout=1.0, out=out)
    elapsed = time.monotonic() - began
    thread.join()
    assert len(monitor) == 60 and monitor.last_step == 60
    np.testing.assert_allclose(monitor.frame()["reward"].to_numpy(), reward)
    blocks = out.getvalue().split("\n\n")
    assert len(blocks) >= 2  # redrawn as the file grew (appended: out is not a terminal)
    assert "step 60 " in blocks[-1]
    assert elapsed < 10.0


def test_follows_a_rewritten_trainer_state(tmp_path):
    path = tmp_path / "trainer_state.json"
    reward = _rewards(40)

    def checkpoint(n: int) -> None:
        history = [{"step": i + 1, "reward": float(reward[i]), "loss": 0.1} for i in range(n)]
        state = {"global_step": n, "log_history": history}
        partial = tmp_path / "trainer_state.json.tmp"
        partial.write_text(json.dumps(state))
        os.replace(partial, path)  # as a checkpoint save lands

    checkpoint(20)

    def writer() -> None:
        time.sleep(0.4)
        checkpoint(40)

    thread = threading.Thread(target=writer)
    thread.start()
    monitor = watch(path, interval=0.05, idle_timeout=1.2, out=io.StringIO())
    thread.join()
    assert len(monitor) == 40
    np.testing.assert_allclose(monitor.frame()["reward"].to_numpy(), reward)


def test_redraws_in_place_on_a_terminal(tmp_path):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "reward": 0.1 * s}) + "\n" for s in (1, 2)))

    def writer() -> None:
        time.sleep(0.3)
        with path.open("a") as handle:
            handle.write(json.dumps({"step": 3, "reward": 0.3}) + "\n")

    thread = threading.Thread(target=writer)
    thread.start()
    out = Terminal()
    watch(path, interval=0.05, idle_timeout=0.8, out=out)
    thread.join()
    assert "\x1b[" in out.getvalue() and "F\x1b[J" in out.getvalue()


def test_a_line_cut_by_the_writer_is_left_for_later(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "reward": 0.01 * s}) for s in range(1, 21)]
    path.write_text("\n".join(lines) + "\n" + lines[0][:9])  # the writer is mid-line
    monitor = watch(path, once=True, out=io.StringIO())
    assert len(monitor) == 20 and monitor.last_step == 20
