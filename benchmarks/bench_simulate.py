"""Benchmark: Numba bandit simulator vs the NumPy simulations a user would write.

Two baselines, both vectorised over replicas:
- the per-sample twin (numpy_vectorised): per refresh it draws every sample with inverse-CDF
  sampling and per step it recomputes ratios, clip masks and the one-hot score gradient with
  array operations. One run per setting, K in {2, 8, 64}, G in {8, 64}.
- the count loop (numpy_multinomial, the stronger one): per refresh it draws each group's arm
  counts with rng.multinomial(G, pi) and the successes per arm with rng.binomial, and forms
  the gradient from the (arm, reward) counts, as the simulator does. Compared at 8 arms, G = 16,
  B = 1, on-policy (K = 1), interleaved repetitions, with 2 Numba threads and with 1.
Also: the two exact group samplers over arms x G (where simulate() switches), the first
simulate() call in a fresh process with a warm Numba cache, and the cold compile (an empty
cache). Writes benchmarks/results/simulate.{md,json}.

Run: python benchmarks/bench_simulate.py   (about two minutes on 2 cores)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
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


def numpy_multinomial(config: gd.BanditConfig, seed: int) -> np.ndarray:
    """The same GRPO bandit drawing counts: rng.multinomial(G, pi) arm counts per group and
    rng.binomial successes per arm, the gradient summed over the (arm, reward) cells; returns
    the expected reward (R, steps). Vectorised over replicas and prompts."""
    rng = np.random.default_rng(seed)
    r_hi, r_lo, p_hi = config.reward_cells()
    arm_means = config.arm_means()
    ref = config.reference_policy()
    reps, batch, group = config.replicas, config.batch_prompts, config.group_size
    eps_low, eps_high = config.clip_band()
    theta = np.tile(np.asarray(config.initial_logits, dtype=float), (reps, 1))
    buf = np.zeros_like(theta)
    out = np.empty((reps, config.steps))
    shape = (reps, batch, config.n_arms)
    for t in range(config.steps):
        z = np.exp(theta - theta.max(axis=1, keepdims=True))
        pi = z / z.sum(axis=1, keepdims=True)
        if t % config.refresh_interval == 0:
            pi_old = pi
            counts = rng.multinomial(group, np.broadcast_to(pi[:, None, :], shape))
            hits = rng.binomial(counts, p_hi)  # (R, B, arms)
            misses = counts - hits
            mean = (hits @ r_hi + misses @ r_lo) / group  # (R, B)
            dev_hi, dev_lo = r_hi - mean[..., None], r_lo - mean[..., None]
            std = np.sqrt((hits * dev_hi**2 + misses * dev_lo**2).sum(axis=-1) / (group - 1))
            top = np.maximum(
                np.where(hits > 0, r_hi, -np.inf).max(-1),
                np.where(misses > 0, r_lo, -np.inf).max(-1),
            )
            low = np.minimum(
                np.where(hits > 0, r_hi, np.inf).min(-1),
                np.where(misses > 0, r_lo, np.inf).min(-1),
            )
            scale = np.where(top == low, 0.0, 1.0 / (std + config.eps_std))[..., None]
            adv_hi, adv_lo = dev_hi * scale, dev_lo * scale
            n_arm = counts.sum(axis=1)  # (R, arms)
        ratio = pi / pi_old
        s = ratio[:, None, :]
        keep_hi = np.where(adv_hi > 0, s <= 1 + eps_high, s >= 1 - eps_low)
        keep_lo = np.where(adv_lo > 0, s <= 1 + eps_high, s >= 1 - eps_low)
        cells = np.where(keep_hi, hits * adv_hi, 0.0) + np.where(keep_lo, misses * adv_lo, 0.0)
        weight = cells.sum(axis=1) * ratio - config.kl_coef * n_arm * (1 - ref / pi)
        weight /= batch * group
        grad = weight - pi * weight.sum(axis=1, keepdims=True)
        buf = config.momentum * buf - grad
        theta = theta - config.lr * buf
        out[:, t] = pi @ arm_means
    return out


def count_loop_comparison(repeats: int = 7) -> dict:
    """simulate() vs numpy_multinomial at 8 arms, G = 16, B = 1, K = 1: interleaved repeats,
    Numba on 2 threads and on 1; ratios of the best times and the median per-repeat ratio."""
    config = gd.BanditConfig(
        arm_rewards=tuple(float(p) for p in np.linspace(0.1, 0.8, 8)),
        group_size=16,
        batch_prompts=1,
        steps=1000,
        replicas=1024,
        lr=0.1,
        momentum=0.9,
        refresh_interval=1,
        ratio="token",
        kl_coef=0.1,
        seed=1,
    )
    gd.simulate(config.replace(steps=8, replicas=2))  # compile outside the timing
    threads = numba.get_num_threads()
    times: dict[str, list[float]] = {"numba_2": [], "numba_1": [], "numpy": []}
    finals: dict[str, np.ndarray] = {}
    load_start = os.getloadavg()
    for _ in range(repeats):
        for key, run in (
            ("numba_2", lambda: gd.simulate(config).expected_reward),
            ("numpy", lambda: numpy_multinomial(config, seed=2)),
            ("numba_1", lambda: gd.simulate(config).expected_reward),
        ):
            numba.set_num_threads(1 if key == "numba_1" else threads)
            t0 = time.perf_counter()
            reward = run()
            times[key].append(time.perf_counter() - t0)
            finals[key] = reward[:, -1]
    numba.set_num_threads(threads)
    samples = config.replicas * config.steps * config.batch_prompts * config.group_size
    a, b = finals["numba_2"], finals["numpy"]
    z = (a.mean() - b.mean()) / np.hypot(a.std(ddof=1), b.std(ddof=1)) * np.sqrt(a.size)
    result: dict[str, object] = {
        "setting": "8 Bernoulli arms (0.1 .. 0.8 evenly), G=16, B=1, K=1 (on-policy), "
        f"{config.replicas} replicas x {config.steps} steps, heavy ball lr 0.1 beta 0.9, "
        f"PPO ratio eps 0.2, k3 KL 0.1; {repeats} interleaved repeats",
        "group_samples": samples,
        "times_s": times,
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "numba_threads": threads,
        "final_reward_numba": float(a.mean()),
        "final_reward_numpy": float(b.mean()),
        "z": float(z),
    }
    for key in ("numba_2", "numba_1"):
        result[f"speedup_best_{key}"] = min(times["numpy"]) / min(times[key])
        result[f"speedup_median_{key}"] = statistics.median(
            p / n for p, n in zip(times["numpy"], times[key], strict=True)
        )
    for key in times:
        result[f"group_samples_per_s_{key}"] = samples / min(times[key])
    return result


def sampler_crossover(repeats: int = 3) -> list[dict]:
    """Time per group-step of the two exact group samplers (cells one by one, sequential
    binomials) on 1 thread over arms x G: where simulate() switches (_simulate._per_sample)."""
    from grpo_dynamics._simulate import _per_sample, _run

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    rows = []
    for arms in (2, 4, 8, 32, 128):
        for group in (4, 16, 64, 256, 1024):
            config = gd.BanditConfig(
                arm_rewards=tuple(float(p) for p in np.linspace(0.1, 0.9, arms)),
                group_size=group,
                steps=max(20, 50_000 // (4 * arms + group)),
                replicas=4,
                lr=0.05,
                momentum=0.5,
                seed=1,
            )
            ns = {}
            for per_sample in (True, False):
                _run(config.replace(steps=2, replicas=1), per_sample)  # compile
                best = np.inf
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    _run(config, per_sample)
                    best = min(best, time.perf_counter() - t0)
                ns[per_sample] = best / (config.steps * config.replicas) * 1e9
            rows.append(
                {
                    "arms": arms,
                    "G": group,
                    "cells_ns": ns[True],
                    "binomials_ns": ns[False],
                    "simulate_uses": "cells" if _per_sample(config) else "binomials",
                }
            )
    numba.set_num_threads(threads)
    return rows


def cold_compile_seconds() -> dict:
    """simulate() in a fresh process with an empty Numba cache (compiles the kernel)."""
    code = (
        "import time; t0 = time.perf_counter(); import grpo_dynamics as gd; "
        "gd.simulate(gd.BanditConfig(steps=100, replicas=4)); print(time.perf_counter() - t0)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        run = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
        )
    return {"import_and_first_simulate_s": float(run.stdout.split()[-1])}


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
    info = machine()  # the load at the start
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
    counts = count_loop_comparison()
    print(counts, flush=True)
    crossover = sampler_crossover()
    first = first_call_seconds()
    cold = cold_compile_seconds()
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "machine": info,
        "count_loop": counts,
        "sampler_crossover": crossover,
        "first_call_warm_cache": first,
        "cold_compile": cold,
        "rows": rows,
        "setting": "4 Bernoulli arms (0.1, 0.4, 0.6, 0.8), B=8, 128 replicas, 512 steps, "
        "heavy ball lr 0.1 beta 0.9, PPO ratio eps 0.2, k3 KL 0.1, one run each",
    }
    (RESULTS / "simulate.json").write_text(json.dumps(doc, indent=2) + "\n")
    times = counts["times_s"]
    lines = [
        "# simulate benchmark",
        "",
        f"{machine_line(info)} Shared machine: absolute rates are noisy, ratios are measured "
        "in the same run.",
        "",
        "## Against the NumPy count loop (8 arms, G = 16, B = 1, on-policy)",
        "",
        f"Setting: {counts['setting']}. Baseline: `numpy_multinomial`, vectorised over replicas, "
        "draws `rng.multinomial(G, pi)` arm counts and `rng.binomial` successes per group and "
        "sums the gradient over the (arm, reward) cells (benchmarks/bench_simulate.py). "
        f"Load average {counts['load_average_start']} at the start of this part, "
        f"{counts['load_average_end']} at its end.",
        "",
        "| | best s | median s | group-samples/s (best) | speedup vs count loop (best / median "
        "of repeats) |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("numba_2", f"simulate, {counts['numba_threads']} threads"),
        ("numba_1", "simulate, 1 thread"),
        ("numpy", "NumPy count loop"),
    ):
        speed = (
            f"{counts[f'speedup_best_{key}']:.1f}x / {counts[f'speedup_median_{key}']:.1f}x"
            if key != "numpy"
            else "1"
        )
        lines.append(
            f"| {label} | {min(times[key]):.3f} | {statistics.median(times[key]):.3f} | "
            f"{counts[f'group_samples_per_s_{key}']:.3g} | {speed} |"
        )
    lines += [
        "",
        f"Final expected reward simulate / NumPy: {counts['final_reward_numba']:.4f} / "
        f"{counts['final_reward_numpy']:.4f} (z = {counts['z']:+.1f}).",
        "",
        "## Against the per-sample NumPy twin",
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
        "## Which group sampler (1 thread, ns per group-step)",
        "",
        "Both samplers are exact; simulate() picks one per config (_simulate._per_sample). "
        "Setting: Bernoulli arms evenly in 0.1 .. 0.9, B=1, K=1, 4 replicas, best of 3.",
        "",
        "| arms | G | cells one by one | sequential binomials | simulate uses |",
        "|---|---|---|---|---|",
    ]
    for r in crossover:
        lines.append(
            f"| {r['arms']} | {r['G']} | {r['cells_ns']:.0f} | {r['binomials_ns']:.0f} | "
            f"{r['simulate_uses']} |"
        )
    lines += [
        "",
        f"First simulate() call in a fresh process with a warm Numba cache: "
        f"{first['first_simulate_s']:.2f} s (package import {first['import_s']:.2f} s). "
        f"Cold (empty Numba cache, compiles the kernel): "
        f"{cold['import_and_first_simulate_s']:.1f} s including the import.",
        "",
    ]
    (RESULTS / "simulate.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
