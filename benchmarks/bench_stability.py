"""stability_grid against the Python loop of numpy.linalg.eigvals a user would otherwise write.

One run, side by side, on the same matrices: the refresh model's 2x2 cycle matrices (K = 1..64,
and a grid of 1,000 stiffnesses x K = 1..1,000, where the cycle map costs O(log K) by binary
powering) and the delay model's companion matrices (D = 0..64). The loop is timed on eigvals
alone, with the matrices built beforehand (the build cost is reported separately), which favours
the baseline.
A batched numpy.linalg.eigvals over stacked matrices is reported too, as the best NumPy can do.

    python benchmarks/bench_stability.py   # writes benchmarks/results/stability.{json,md}
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from machine import describe_machine, machine_line

from grpo_dynamics import stability_grid

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, object]:
    return describe_machine()


def cycle_matrix(beta: float, c_lag: float, k: int) -> np.ndarray:
    """What a user writes: K per-step maps on (x_t, x_{t-1}, anchor) multiplied, anchor reset."""
    step = np.array([[1 + beta, -beta, -c_lag], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    reset = np.array([[1.0, 0, 0], [0, 1, 0], [1, 0, 0]])
    return (np.linalg.matrix_power(step, k) @ reset)[:2, :2]


def companion_matrix(beta: float, c_lag: float, delay: int) -> np.ndarray:
    n = max(delay + 1, 2)
    matrix = np.zeros((n, n))
    matrix[0, 0] = 1 + beta
    matrix[0, 1] -= beta
    matrix[0, delay] -= c_lag
    matrix[np.arange(1, n), np.arange(n - 1)] = 1.0
    return matrix


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def rates(
    n_grid: int,
    t_grid: float,
    n_loop: int,
    t_loop: float,
    t_build: float,
    t_batched: float,
    error: float,
) -> dict[str, float]:
    """Throughputs and ratios shared by both models' result rows."""
    grid_rate = n_grid / t_grid
    return {
        "points": n_grid,
        "grid_points_per_s": grid_rate,
        "loop_points": n_loop,
        "loop_eigvals_points_per_s": n_loop / t_loop,
        "loop_build_points_per_s": n_loop / t_build,
        "batched_eigvals_points_per_s": n_loop / t_batched,
        "ratio_vs_loop": grid_rate / (n_loop / t_loop),
        "ratio_vs_batched": grid_rate / (n_loop / t_batched),
        "max_relative_difference_rho": float(error),
    }


def best_of(repeats: int, fn):
    """The fastest of several runs (the machine may be shared): (value, seconds)."""
    runs = [timed(fn) for _ in range(repeats)]
    return runs[0][0], min(t for _, t in runs)


def compare_refresh(
    beta: np.ndarray, c_lag: np.ndarray, k: np.ndarray, n_loop: int, target: float
) -> dict[str, object]:
    """Grid on all points vs the eigvals loop and batched eigvals on the first n_loop points.

    rho is compared where numpy's is finite and nonzero (an unstable cycle of K ~ 1000 can
    overflow in both); the points where it is not must be unstable in the grid too.
    """
    n_grid = beta.size
    stability_grid(beta[:1000], c_lag[:1000], k[:1000])  # warm-up (thread start-up, page faults)
    grid, t_grid = best_of(3, lambda: stability_grid(beta, c_lag, k))
    matrices, t_build = timed(
        lambda: [cycle_matrix(beta[i], c_lag[i], int(k[i])) for i in range(n_loop)]
    )
    loop_rho, t_loop = timed(lambda: [np.max(np.abs(np.linalg.eigvals(m))) for m in matrices])
    loop_rho = np.array(loop_rho)
    stack = np.array(matrices)
    batched, t_batched = timed(lambda: np.max(np.abs(np.linalg.eigvals(stack)), axis=1))
    ok = np.isfinite(loop_rho) & (loop_rho > 0)
    rho = grid.spectral_radius[:n_loop]
    error = np.max(np.abs(loop_rho[ok] - rho[ok]) / loop_rho[ok])
    overflowed = ~np.isfinite(loop_rho)
    return {
        **rates(n_grid, t_grid, n_loop, t_loop, t_build, t_batched, error),
        "max_refresh_interval": int(k.max()),
        "compared_points": int(ok.sum()),
        "overflowed_points": int(overflowed.sum()),
        "overflowed_points_unstable_in_grid": bool(
            np.all(grid.regime_code[:n_loop][overflowed] == 2)
        ),
        "batched_max_relative_difference_rho": float(
            np.max(np.abs(batched[ok] - loop_rho[ok]) / loop_rho[ok])
        ),
        "target_points_per_s": target,
    }


def bench_refresh(rng: np.random.Generator) -> dict[str, object]:
    n_grid = 2_000_000
    beta = rng.uniform(0.0, 0.99, n_grid)
    c_lag = 10 ** rng.uniform(-3.0, 0.0, n_grid)
    k = rng.integers(1, 65, n_grid)
    return compare_refresh(beta, c_lag, k, 20_000, 1_000_000)


def bench_refresh_long(rng: np.random.Generator) -> dict[str, object]:
    """1,000 stiffnesses x K = 1..1,000 (the grid of issue 13), momentum drawn per point; the
    loop subset is a random sample of 20,000 of its points."""
    c_values, k_values = np.geomspace(1e-3, 1.0, 1000), np.arange(1, 1001)
    c_lag, k = (a.ravel() for a in np.meshgrid(c_values, k_values, indexing="ij"))
    order = rng.permutation(c_lag.size)  # so that the loop subset samples the whole grid
    beta = rng.uniform(0.0, 0.99, c_lag.size)
    return compare_refresh(beta, c_lag[order], k[order], 20_000, 2_000_000)


def bench_delay(rng: np.random.Generator) -> dict[str, object]:
    n_grid, n_loop = 40_000, 1_300  # loop subset: 20 points per delay value
    beta = rng.uniform(0.0, 0.99, n_grid)
    c_lag = 10 ** rng.uniform(-3.0, 0.0, n_grid)
    delay = np.tile(np.arange(0, 65), n_grid // 65 + 1)[:n_grid]
    rng.shuffle(delay)
    stability_grid(beta[:500], c_lag[:500], delay[:500], lag_model="delay")
    grid, t_grid = timed(lambda: stability_grid(beta, c_lag, delay, lag_model="delay"))
    matrices, t_build = timed(
        lambda: [companion_matrix(beta[i], c_lag[i], int(delay[i])) for i in range(n_loop)]
    )
    loop_rho, t_loop = timed(lambda: [np.max(np.abs(np.linalg.eigvals(m))) for m in matrices])
    loop_rho = np.array(loop_rho)

    def batched() -> np.ndarray:
        out = np.empty(n_loop)
        for d in np.unique(delay[:n_loop]):
            index = np.flatnonzero(delay[:n_loop] == d)
            out[index] = np.max(
                np.abs(np.linalg.eigvals(np.array([matrices[i] for i in index]))), axis=1
            )
        return out

    _, t_batched = timed(batched)
    error = np.max(np.abs(loop_rho - grid.spectral_radius[:n_loop]) / loop_rho)
    regimes = {
        name: int(np.sum(grid.regime == name)) for name in ("overdamped", "oscillatory", "unstable")
    }
    return {
        **rates(n_grid, t_grid, n_loop, t_loop, t_build, t_batched, error),
        "max_delay": 64,
        "regime_counts": regimes,
        "target_ratio_vs_loop": 50,
    }


def main() -> None:
    rng = np.random.default_rng(20261123)
    result = {
        "machine": machine(),
        "refresh": bench_refresh(rng),
        "refresh_long": bench_refresh_long(rng),
        "delay": bench_delay(rng),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stability.json").write_text(json.dumps(result, indent=2) + "\n")
    r, long, d = result["refresh"], result["refresh_long"], result["delay"]
    m = result["machine"]
    lines = [
        "# stability_grid benchmark",
        "",
        f"{machine_line(m)} One run of `python benchmarks/bench_stability.py`.",
        "",
        "Baseline: a Python loop of `numpy.linalg.eigvals` over the same matrices, built",
        "beforehand (build time not counted). Also shown: one batched `eigvals` call on",
        "stacked matrices.",
        "",
        "| model | grid points/s | loop eigvals points/s | ratio vs loop | batched eigvals points/s"
        " | ratio vs batched | max rel. diff in rho | target |",
        "|---|---|---|---|---|---|---|---|",
        f"| refresh (2x2 cycle, K=1..64) | {r['grid_points_per_s']:,.0f} | "
        f"{r['loop_eigvals_points_per_s']:,.0f} | {r['ratio_vs_loop']:.0f}x | "
        f"{r['batched_eigvals_points_per_s']:,.0f} | {r['ratio_vs_batched']:.1f}x | "
        f"{r['max_relative_difference_rho']:.1e} | >= 1,000,000 points/s |",
        f"| refresh (1,000 c x K=1..1,000) | {long['grid_points_per_s']:,.0f} | "
        f"{long['loop_eigvals_points_per_s']:,.0f} | {long['ratio_vs_loop']:.0f}x | "
        f"{long['batched_eigvals_points_per_s']:,.0f} | {long['ratio_vs_batched']:.1f}x | "
        f"{long['max_relative_difference_rho']:.1e} | >= 2,000,000 points/s |",
        f"| delay (companion, D=0..64) | {d['grid_points_per_s']:,.0f} | "
        f"{d['loop_eigvals_points_per_s']:,.0f} | {d['ratio_vs_loop']:.0f}x | "
        f"{d['batched_eigvals_points_per_s']:,.0f} | {d['ratio_vs_batched']:.1f}x | "
        f"{d['max_relative_difference_rho']:.1e} | >= 50x loop |",
        "",
        f"Building the matrices in the loop costs a further {r['loop_build_points_per_s']:,.0f} "
        f"(refresh, matrix_power of per-step maps) and "
        f"{d['loop_build_points_per_s']:,.0f} (delay) points/s.",
        f"Grid rates are the best of 3 runs. K up to 1,000: rho compared on "
        f"{long['compared_points']:,} of the {long['loop_points']:,} loop points; on the other "
        f"{long['overflowed_points']:,} numpy's product overflows (all unstable in the grid: "
        f"{long['overflowed_points_unstable_in_grid']}).",
        f"Delay grid regimes: {d['regime_counts']}.",
        "",
    ]
    (RESULTS / "stability.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
