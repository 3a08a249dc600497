"""Log reading speed: grpo_dynamics.read_log beside what a user would otherwise write.

Baselines (each does less than read_log: no canonical names, no restart/NaN handling):
- TRL trainer_state.json: json.load + pandas DataFrame(log_history).groupby("step").last()
- TensorBoard event file: the protobuf package's compiled Event parser (tensorboardX's
  event_pb2, as tbparse/tensorboard use) over the TFRecord framing, without CRC checks
- console log: one regex over the file text

One timed run per case after a warm-up. Writes benchmarks/results/io.md and io.json.
Run: python benchmarks/bench_io.py
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from machine import describe_machine, machine_line

import grpo_dynamics as gd

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-grpo-logs"


def timed(function, *args):
    function(*args)  # warm-up (imports, caches)
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def simulated_run(steps: int, extra: int, seed: int = 0) -> gd.Run:
    rng = np.random.default_rng(seed)
    t = np.arange(1, steps + 1)
    columns = {f"metric_{i:02d}": rng.normal(size=steps) for i in range(extra)}
    columns["kl"] = np.abs(rng.normal(0.01, 0.003, size=steps))
    columns["eval_reward"] = np.where(t % 50 == 0, rng.normal(0.5, 0.1, size=steps), np.nan)
    reward = 0.8 - 0.5 * np.exp(-t / 300) + rng.normal(0, 0.05, size=steps)
    return gd.Run.from_arrays(t, reward, metadata={"group_size": 8}, **columns)


def baseline_trl(path: Path) -> pd.DataFrame:
    with open(path) as handle:
        history = json.load(handle)["log_history"]
    return pd.DataFrame(history).groupby("step").last()


def baseline_tensorboard(path: Path) -> pd.DataFrame:
    from tensorboardX.proto import event_pb2

    data = path.read_bytes()
    offset = 0
    rows: dict[int, dict[str, float]] = {}
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
        offset += 16 + length
        for value in event.summary.value:
            if value.HasField("tensor") and value.tensor.double_val:
                rows.setdefault(event.step, {})[value.tag] = value.tensor.double_val[0]
            elif value.HasField("simple_value"):
                rows.setdefault(event.step, {})[value.tag] = value.simple_value
    return pd.DataFrame.from_dict(rows, orient="index").sort_index()


def baseline_console(path: Path) -> pd.DataFrame:
    found = re.findall(r"\((\d+)/\d+\), Reward: (\S+),", path.read_text())
    return pd.DataFrame({"reward": [float(r) for _, r in found]}, index=[int(s) for s, _ in found])


def read_quietly(path: Path) -> gd.Run:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gd.GrpoLogWarning)
        return gd.read_log(path)


def machine() -> str:
    import tensorboardX

    return machine_line(
        describe_machine(pandas=pd.__version__, tensorboardX=tensorboardX.__version__)
    )


def main() -> int:
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        run = simulated_run(5000, 25)
        trl = gd.write_log(run, Path(tmp) / "trainer_state.json", format="trl")
        tb = gd.write_log(run, Path(tmp) / "events.out.tfevents.bench", format="tensorboard")
        for label, path, baseline in (
            ("TRL trainer_state.json, 5000 steps x 28 metrics", trl, baseline_trl),
            ("TensorBoard event file, 5000 steps x 28 tags", tb, baseline_tensorboard),
        ):
            ours, read = timed(read_quietly, path)
            base, frame = timed(baseline, path)
            # both must see the same rewards
            assert np.array_equal(read.reward, frame["reward"].dropna().to_numpy())
            cases.append((label, path.stat().st_size, ours, base))
    console = SHARED / "Coicozoi__minimind-from-scratch__grpo.log"
    if console.is_file():
        ours, read = timed(read_quietly, console)
        base, frame = timed(baseline_console, console)
        assert np.array_equal(read.reward, frame["reward"].to_numpy())
        cases.append(("console log (real, 9751 steps, 3.8 MB)", console.stat().st_size, ours, base))

    load = os.getloadavg()[0]
    lines = [
        "# Reading logs: read_log vs a hand-written baseline",
        "",
        f"{machine()} 1-min load average {load:.1f} at the end (shared machine, timings noisy).",
        "",
        "One timed run each after a warm-up. Baselines do less: no canonical names, no restart,",
        "NaN or summary handling, and the TensorBoard baseline skips the CRC-32C checks and uses",
        "the compiled protobuf parser (the way tbparse/tensorboard read event files).",
        "",
        "| case | size (KB) | read_log (s) | baseline (s) | read_log / baseline |",
        "|---|---|---|---|---|",
    ]
    for label, size, ours, base in cases:
        lines.append(f"| {label} | {size // 1024} | {ours:.3f} | {base:.3f} | {ours / base:.1f}x |")
    lines += ["", "Reproduce: `python benchmarks/bench_io.py`.", ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "io.md").write_text("\n".join(lines))
    (RESULTS / "io.json").write_text(
        json.dumps(
            {
                "machine": machine(),
                "load_average_1min": load,
                "cases": [
                    {"case": c, "bytes": s, "read_log_s": o, "baseline_s": b, "ratio": o / b}
                    for c, s, o, b in cases
                ],
            },
            indent=1,
        )
        + "\n"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
