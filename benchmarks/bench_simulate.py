"""Benchmark: Numba bandit simulator vs the NumPy simulation a user would write.

The baseline is vectorised over replicas (and prompts and samples): per refresh it draws all
samples with inverse-CDF sampling and per step it recomputes ratios, clip masks and the
one-hot score gradient with array operations. One run per setting (no repeats), K in
{2, 8, 64}, G in {8, 64}. Also: the time of the first simulate() call in a fresh process with
a warm Numba cache. Writes benchmarks/results/simulate.{md,json}.

Run: python benchmarks/bench_simulate.py   (about a minute on 2 cores)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from machine import describe_machine, machine_line

import grpo_dynamics as gd

RESULTS = Path(__file__).parent / "results"


def numpy_vectorised(config: gd.BanditConfig, seed: int) -> np.ndarray:
    """GRPO bandit over all replicas at once with NumPy; returns expected reward (R, steps)."""
    rng = np.random.default_rng(seed)
    r_hi, r_lo, p_hi = config.reward_cells()
    arm_means = config.arm_means()
    ref = config.reference_policy()
    reps, batch = config.replicas, config.batch_prompts
    group, n_arms = config.group_size, config.n_arms
    theta = np.tile(np.asarray(config.initial_logits, dtype=float), (reps, 1))
    buf = np.zeros_like(theta)
    out = np.empty((reps, config.steps))
    rows = np.arange(reps)[:, None, None]
    for t in range(config.steps):
        z = np.exp(theta - theta.max(axis=1, keepdims=True))
        pi = z / z.sum(axis=1, keepdims=True)
        if t % config.refresh_interval == 0:
            pi_old = pi.copy()
            cdf = np.cumsum(pi_old, axis=1)
            u = rng.random((reps, batch, group))
            arms = np.minimum((u[..., None] > cdf[:, None, None, :]).sum(axis=-1), n_arms - 1)
            hit = rng.random((reps, batch, group)) < p_hi[arms]
            rewards = np.where(hit, r_hi[arms], r_lo[arms])
            mean = rewards.mean(axis=2, keepdims=True)
            std = rewards.std(axis=2, ddof=1, keepdims=True)
            flat = np.all(rewards == rewards[:, :, :1], axis=2, keepdims=True)
            adv = np.where(flat, 0.0, (rewards - mean) / (std + config.eps_std))
            onehot = np.eye(n_arms)[arms]  # (R, B, G, n_arms)
            logp_old = np.log(pi_old[rows, arms])
        logp = np.log(pi[rows, arms])
        ratio = np.exp(logp - logp_old)
        clipped = ((adv > 0) & (ratio > 1 + config.eps_high)) | (
            (adv < 0) & (ratio < 1 - config.eps_low)
        )
        coef = np.where(clipped, 0.0, ratio * adv)
        pi_ref_a = ref[arms]
        coef = coef - config.kl_coef * (1 - pi_ref_a / np.exp(logp))
        score = onehot - pi[:, None, None, :]
        grad = (coef[..., None] * score).mean(axis=(1, 2))
        buf = config.momentum * buf - grad
        theta = theta - config.lr * buf
        out[:, t] = pi @ arm_means
    return out


def machine() -> dict:
    return describe_machine()


def first_call_seconds() -> dict:
    code = (
        "import time; t0 = time.perf_counter(); import grpo_dynamics as gd; "
        "t1 = time.perf_counter(); gd.simulate(gd.BanditConfig(steps=100, replicas=4, "
        "kl_coef=0.1, ratio='token', refresh_interval=2)); t2 = time.perf_counter(); "
        "print(t1 - t0, t2 - t1)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # warm cache
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    import_s, call_s = map(float, run.stdout.split())
    return {"import_s": import_s, "first_simulate_s": call_s}


def main() -> None:
    rows = []
    for group in (8, 64):
        for refresh in (2, 8, 64):
            config = gd.BanditConfig(
                arm_rewards=(0.1, 0.4, 0.6, 0.8),
                group_size=group,
                batch_prompts=8,
                steps=512,
                replicas=128,
                lr=0.1,
                momentum=0.9,
                refresh_interval=refresh,
                ratio="token",
                kl_coef=0.1,
                seed=1,
            )
            gd.simulate(config.replace(steps=64, replicas=2))  # compile outside the timing
            t0 = time.perf_counter()
            fast = gd.simulate(config)
            t_fast = time.perf_counter() - t0
            t0 = time.perf_counter()
            slow = numpy_vectorised(config, seed=2)
            t_slow = time.perf_counter() - t0
            samples = config.replicas * config.steps * config.batch_prompts * group
            # sanity: the two simulate the same process (final expected reward, z-score)
            a, b = fast.expected_reward[:, -1], slow[:, -1]
            z = (a.mean() - b.mean()) / np.hypot(a.std(ddof=1), b.std(ddof=1)) * np.sqrt(a.size)
            rows.append(
                {
                    "G": group,
                    "K": refresh,
                    "numba_s": t_fast,
                    "numpy_s": t_slow,
                    "speedup": t_slow / t_fast,
                    "numba_group_samples_per_s": samples / t_fast,
                    "numpy_group_samples_per_s": samples / t_slow,
                    "final_reward_numba": float(a.mean()),
                    "final_reward_numpy": float(b.mean()),
                    "z": float(z),
                }
            )
            print(rows[-1], flush=True)
    first = first_call_seconds()
    info = machine()
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "machine": info,
        "first_call_warm_cache": first,
        "rows": rows,
        "setting": "4 Bernoulli arms (0.1, 0.4, 0.6, 0.8), B=8, 128 replicas, 512 steps, "
        "heavy ball lr 0.1 beta 0.9, PPO ratio eps 0.2, k3 KL 0.1, one run each",
    }
    (RESULTS / "simulate.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        "# simulate benchmark",
        "",
        f"{machine_line(info)} Shared machine: timings are one run each and noisy.",
        "",
        f"Setting: {doc['setting']}. Baseline: NumPy vectorised over replicas, prompts and "
        "samples (benchmarks/bench_simulate.py). Group-samples = replicas x steps x B x G.",
        "",
        "| G | K | Numba s | NumPy s | speedup | Numba group-samples/s | NumPy group-samples/s "
        "| final reward Numba / NumPy (z) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['G']} | {r['K']} | {r['numba_s']:.4f} | {r['numpy_s']:.3f} | "
            f"{r['speedup']:.0f}x | {r['numba_group_samples_per_s']:.3g} | "
            f"{r['numpy_group_samples_per_s']:.3g} | {r['final_reward_numba']:.4f} / "
            f"{r['final_reward_numpy']:.4f} ({r['z']:+.1f}) |"
        )
    lines += [
        "",
        f"First simulate() call in a fresh process with a warm Numba cache: "
        f"{first['first_simulate_s']:.2f} s (package import {first['import_s']:.2f} s).",
        "",
    ]
    (RESULTS / "simulate.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
