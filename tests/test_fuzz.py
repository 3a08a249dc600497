"""Hardening: malformed logs and arbitrary numbers never crash, hang or answer silently wrong.

Every reader, on any file, returns a Run or raises LogFormatError (a ValueError naming the
file); every public numeric entry point returns a finite documented result or raises
ValueError/TypeError; the CLI turns each bad file of a batch into an error row and keeps the
good ones. Each case runs under a time bound (docs/reliability.md).
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grpo_dynamics as gd
from grpo_dynamics.io import GrpoLogWarning, LogFormatError
from grpo_dynamics.trend import trend_test

GOOD_TRL = {
    "log_history": [{"step": s, "reward": 0.1 + 0.002 * s, "kl": 0.01} for s in range(1, 61)]
}


def _malformed_corpus(root: Path) -> dict[str, Path]:
    """Files a user's disk really holds: empty, cut, binary, mis-encoded, huge, corrupted."""
    files: dict[str, bytes] = {
        "empty.json": b"",
        "blank.csv": b"\n\n  \n",
        "cut.json": json.dumps(GOOD_TRL).encode()[:-40],
        "binary.jsonl": bytes(range(256)) * 8,
        "utf16.csv": "step,reward\n1,0.5\n2,0.6\n".encode("utf-16"),
        "latin1.csv": "step,reward,note\n1,0.5,caf\xe9\n2,0.6,na\xefve\n".encode("latin-1"),
        "nested.json": b"[" * 5000 + b"]" * 5000,
        "huge_steps.jsonl": b'{"step": 1e30, "reward": 0.5}\n{"step": 2e30, "reward": 0.6}\n',
        "nan_only.csv": b"step,reward\n1,nan\n2,nan\n3,nan\n",
        "no_reward.csv": b"step,loss\n1,0.5\n2,0.4\n",
        "text.log": b"this is not a training log\n" * 50,
        "one_line.jsonl": b'{"step": 1, "reward": 0.5}\n',
        "bad_cell.csv": b"step,reward,kl\n1,0.1,0.01\n2,-,0.02\n3,0.3,abc\n4,0.4,0.04\n"
        b"5,0.5,0.05\n",
        "cut_last_line.jsonl": b"".join(
            json.dumps({"step": s, "reward": 0.1 * s}).encode() + b"\n" for s in range(1, 8)
        )
        + b'{"step": 8, "rew',
    }
    # a TensorBoard event file whose record CRC is corrupted
    payload = b"\x00" * 12
    header = struct.pack("<Q", len(payload))
    files["events.out.tfevents.123.host"] = header + b"\xde\xad\xbe\xef" + payload + b"\x00" * 4
    paths = {}
    for name, data in files.items():
        path = root / name
        path.write_bytes(data)
        paths[name] = path
    good = root / "good_trainer_state.json"
    good.write_text(json.dumps(GOOD_TRL))
    paths["good_trainer_state.json"] = good
    return paths


def test_every_reader_survives_the_malformed_corpus(tmp_path):
    for name, path in _malformed_corpus(tmp_path).items():
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", GrpoLogWarning)  # what was done to the data
                run = gd.read_log(path)
        except LogFormatError as error:
            assert path.name in str(error), (name, str(error))
        except ValueError as error:  # LogFormatError is the documented form; ValueError minimum
            pytest.fail(f"{name}: ValueError that is not a LogFormatError: {error}")
        else:
            assert isinstance(run, gd.Run), name
            assert len(run) >= 1, name
        assert time.perf_counter() - start < 5.0, name


def test_a_cut_last_line_keeps_the_records_before_it(tmp_path):
    path = _malformed_corpus(tmp_path)["cut_last_line.jsonl"]
    with pytest.warns(GrpoLogWarning, match="line 8"):
        run = gd.read_log(path)
    assert len(run) == 7
    assert any("line 8" in w for w in run.warnings)


def test_a_bad_cell_blanks_that_cell_not_the_column(tmp_path):
    path = _malformed_corpus(tmp_path)["bad_cell.csv"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GrpoLogWarning)
        run = gd.read_log(path)
    messages = [str(w.message) for w in caught]
    assert any("'reward'" in m and "line 3" in m for m in messages), messages
    assert any("'kl'" in m and "line 4" in m for m in messages), messages
    steps, reward = run.series("reward")
    np.testing.assert_array_equal(steps, [1, 3, 4, 5])
    assert run.has("kl")


@pytest.fixture(scope="module", autouse=True)
def cli_batch(tmp_path_factory) -> Iterator[tuple[subprocess.Popen[str], dict[str, Path]]]:
    """``python -m grpo_dynamics.cli diagnose`` on the malformed corpus plus an overflowing
    log, in its own process, started when this module starts so that it runs beside the
    in-process tests and is collected by the last test of this file (killed at the end if
    not)."""
    root = tmp_path_factory.mktemp("corpus")
    paths = _malformed_corpus(root)
    overflow = root / "overflow.csv"
    overflow.write_text("step,reward\n" + "".join(f"{s},{1e300 * (s % 3)}\n" for s in range(1, 40)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "grpo_dynamics.cli", "diagnose", str(root), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc, paths
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
anything = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(anything, min_size=0, max_size=40), st.sampled_from(["oscillator", "exponential"]))
def test_fit_returns_a_status_or_raises_value_error(values, model):
    r = np.asarray(values, dtype=float)
    t = np.arange(r.size, dtype=float)
    try:
        result = gd.fit(t, r, model=model)
    except ValueError:
        return
    assert result.status in gd.FIT_STATUSES
    if result.status == "converged":
        assert all(math.isfinite(v) for v in result.params.values())


@settings(max_examples=60, deadline=2000)
@given(st.lists(anything, min_size=0, max_size=80))
def test_trend_verdict_is_defined_for_any_series(values):
    r = np.asarray(values, dtype=float)
    result = trend_test(np.arange(r.size), r)
    assert result.direction in ("rising", "falling", "none")
    assert 0.0 <= result.p_value <= 1.0


@settings(max_examples=80, deadline=2000)
@given(finite, finite, finite, finite, st.sampled_from([1, 2, 8, 64]))
def test_stability_answers_or_rejects_any_numbers(lr, momentum, curvature, c_now, refresh):
    try:
        hp = gd.Hyperparameters(lr=lr, momentum=momentum, refresh_interval=refresh)
        report = gd.stability(hp, curvature_lag=curvature, curvature_now=abs(c_now))
    except ValueError:
        return
    assert report.regime in ("overdamped", "oscillatory", "unstable")
    assert report.spectral_radius >= 0.0 and not math.isnan(report.spectral_radius)


def test_cli_batch_reports_every_file_and_never_prints_a_traceback(cli_batch):
    proc, paths = cli_batch
    stdout, stderr = proc.communicate(timeout=240)
    assert "Traceback" not in stderr, stderr[-2000:]
    assert proc.returncode == 1
    document = json.loads(stdout)
    items = document if isinstance(document, list) else document.get("runs", document)
    names = {Path(str(item.get("file", item.get("path", "")))).name for item in items}
    assert {"good_trainer_state.json", "overflow.csv"} <= names
    assert len(items) == len(paths) + 1
