"""Benchmark: two-position GRPO training, Numba kernel vs the NumPy reference (docs/objectives.md).

The baseline is what a user would otherwise write: the same training loop in NumPy, vectorised
over replicas (backend="numpy", the kernel's test twin). One run each after a warm-up call (the
Numba compile time is reported separately). Both draw identical samples (counter-based RNG), so
the final states are also compared. Writes benchmarks/results/objectives.{md,json}.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from machine import describe_machine, machine_line

from grpo_dynamics.objectives import (
    Optimizer,
    TwoPositionPolicy,
    objective_preset,
    train_two_position,
)

RESULTS = Path(__file__).parent / "results"
POLICY = TwoPositionPolicy(
    lengths=(1, 3, 6), success_prob=[[0.9, 0.5, 0.1], [0.2, 0.6, 0.8]], prefix_mode="sampled"
)
TAIL_POLICY = TwoPositionPolicy(POLICY.lengths, POLICY.success_prob, "sampled", tail_vocab=4)
CASES = [
    (
        "grpo + adamw",
        POLICY,
        objective_preset("grpo"),
        Optimizer("adamw", lr=0.05, weight_decay=0.01),
    ),
    (
        "gspo + heavy_ball, K=4",
        POLICY,
        objective_preset("gspo", eps_low=0.05, eps_high=0.05),
        Optimizer("heavy_ball", lr=0.3, momentum=0.9),
    ),
    (
        "dapo + adam, tail logits V=4",
        TAIL_POLICY,
        objective_preset("dapo"),
        Optimizer("adam", lr=0.05, beta2=0.95),
    ),
]
SIZE = dict(group_size=8, n_groups=8, n_steps=400, n_replicas=256, seed=0)


def _machine() -> dict[str, object]:
    return describe_machine()


def main() -> None:
    rows = []
    for name, policy, objective, optimizer in CASES:
        refresh = 4 if "K=4" in name else 1
        kwargs = dict(SIZE, refresh_interval=refresh)
        start = time.perf_counter()
        train_two_position(
            policy, objective, optimizer, **{**kwargs, "n_steps": 2, "n_replicas": 2}
        )
        warmup = time.perf_counter() - start
        start = time.perf_counter()
        fast = train_two_position(policy, objective, optimizer, backend="numba", **kwargs)
        t_numba = time.perf_counter() - start
        start = time.perf_counter()
        slow = train_two_position(policy, objective, optimizer, backend="numpy", **kwargs)
        t_numpy = time.perf_counter() - start
        rows.append(
            {
                "case": name,
                "refresh_interval": refresh,
                "numba_s": t_numba,
                "numpy_s": t_numpy,
                "speedup": t_numpy / t_numba,
                "first_call_s": warmup,
                "max_abs_theta_diff": float(np.abs(fast.theta - slow.theta).max()),
            }
        )
        print(rows[-1], flush=True)
    machine = _machine()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "objectives.json").write_text(
        json.dumps({"machine": machine, "size": SIZE, "rows": rows}, indent=2) + "\n"
    )
    lines = [
        "# Two-position GRPO training: Numba kernel vs NumPy reference",
        "",
        f"{machine_line(machine)} Shared with other jobs, so timings are noisy.",
        "",
        f"Workload: {SIZE['n_replicas']} replicas x {SIZE['n_steps']} optimizer steps, "
        f"{SIZE['n_groups']} groups of G = {SIZE['group_size']} per rollout, policy with 2 "
        "prefixes x 3 actions (lengths 1/3/6; tail tokens deterministic, or drawn from a "
        "4-symbol softmax in the last case). Baseline: the same loop in NumPy vectorised over "
        'replicas (`backend="numpy"`). One timed run each after a small warm-up call; '
        "`first call` is the warm-up including Numba's compile or cache load.",
        "",
        "| case | NumPy (s) | Numba (s) | speed-up | first call (s) | max abs theta diff |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['numpy_s']:.2f} | {r['numba_s']:.3f} | "
            f"{r['speedup']:.0f}x | {r['first_call_s']:.1f} | "
            f"{r['max_abs_theta_diff']:.1e} |"
        )
    lines += ["", "Reproduce: `python benchmarks/bench_objectives.py`.", ""]
    (RESULTS / "objectives.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
