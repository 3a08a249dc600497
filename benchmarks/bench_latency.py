"""Latency a user feels: each command in a fresh interpreter, wall time including start-up.

Cases (issue targets in brackets): `grpo-dynamics --help` [<= 0.3 s], `import grpo_dynamics`
[<= 0.3 s], `grpo-dynamics diagnose` of one 500-step TRL log [<= 1.0 s], of 20 logs [<= 3 s],
`grpo-dynamics demo` [<= 4 s]. Baseline in the same run: `python -c pass` (the interpreter
alone) and `python -c "import numpy, scipy.optimize, pandas"` (what any scipy-based script
pays before it does anything). Median and spread of ``REPEATS`` runs after one warm-up (the
warm-up fills the Numba cache and the OS page cache, as on a user's second call).

Writes benchmarks/results/latency.md and latency.json. Run: python benchmarks/bench_latency.py
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe_machine, machine_line

import grpo_dynamics as gd

RESULTS = Path(__file__).parent / "results"
REPEATS = 7
TARGETS = {
    "python -c pass (interpreter only)": None,
    "import numpy, scipy.optimize, pandas (baseline script)": None,
    "import grpo_dynamics": 0.3,
    "grpo-dynamics --help": 0.3,
    "diagnose 1 log (500 steps)": 1.0,
    "diagnose 20 logs": 3.0,
    "demo": 4.0,
}


def _trl_log(path: Path, steps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(1, steps + 1)
    reward = gd.trajectory(t.astype(float), 0.2, 0.8, 60.0, 0.1) + rng.normal(0, 0.04, steps)
    history = [
        {
            "step": int(s),
            "reward": float(r),
            "reward_std": 0.3,
            "kl": float(0.001 * s),
            "entropy": float(0.5 - 0.0004 * s),
            "completions/mean_length": 200.0,
            "frac_reward_zero_std": 0.1,
            "grad_norm": float(abs(rng.normal(1.0, 0.1))),
        }
        for s, r in zip(t, reward, strict=True)
    ]
    path.write_text(json.dumps({"log_history": history, "global_step": steps}))


def _time(command: list[str], cwd: Path) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, done.returncode


def main() -> None:
    exe = shutil.which("grpo-dynamics")
    cli = [exe] if exe else [sys.executable, "-m", "grpo_dynamics.cli"]
    info = describe_machine()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one = root / "one" / "trainer_state.json"
        one.parent.mkdir()
        _trl_log(one, 500, 0)
        many = root / "many"
        many.mkdir()
        for i in range(20):
            _trl_log(many / f"run{i:02d}_trainer_state.json", 500, i)
        cases = {
            "python -c pass (interpreter only)": [sys.executable, "-c", "pass"],
            "import numpy, scipy.optimize, pandas (baseline script)": [
                sys.executable,
                "-c",
                "import numpy, scipy.optimize, pandas",
            ],
            "import grpo_dynamics": [sys.executable, "-c", "import grpo_dynamics"],
            "grpo-dynamics --help": [*cli, "--help"],
            "diagnose 1 log (500 steps)": [*cli, "diagnose", str(one)],
            "diagnose 20 logs": [*cli, "diagnose", str(many)],
            "demo": [*cli, "demo", "--out", str(root / "demo")],
        }
        rows = []
        for name, command in cases.items():
            _time(command, root)  # warm-up
            runs = [_time(command, root) for _ in range(REPEATS)]
            times = [t for t, _ in runs]
            codes = sorted({code for _, code in runs})
            if codes != [0]:  # a failing command is fast: never report it as a latency
                raise SystemExit(f"{name}: exit codes {codes} ({' '.join(command)}, cwd {root})")
            target = TARGETS[name]
            median = statistics.median(times)
            rows.append(
                {
                    "case": name,
                    "median_s": round(median, 3),
                    "min_s": round(min(times), 3),
                    "max_s": round(max(times), 3),
                    "exit_codes": codes,
                    "target_s": target,
                    "meets_target": None if target is None else bool(median <= target),
                }
            )
            print(f"{name:55s} {median:6.3f} s  (min {min(times):.3f}, max {max(times):.3f})")
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latency.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    lines = [
        "# Latency: fresh process per call, wall time including interpreter start-up",
        "",
        machine_line(info) + f" Load average at the end: {info['load_average_end']}.",
        "",
        f"Median of {REPEATS} runs after one warm-up; `python benchmarks/bench_latency.py`.",
        "",
        "| case | median (s) | min (s) | max (s) | target (s) | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = "" if row["meets_target"] is None else ("yes" if row["meets_target"] else "no")
        target = "" if row["target_s"] is None else f"{row['target_s']:.1f}"
        lines.append(
            f"| {row['case']} | {row['median_s']:.3f} | {row['min_s']:.3f} | "
            f"{row['max_s']:.3f} | {target} | {met} |"
        )
    (RESULTS / "latency.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
