"""Compile the Numba kernels before their first use (docs/simulate.md, "Compilation").

The bandit simulator, the two-position trainer and their helpers are Numba kernels compiled on
first call and kept in Numba's on-disk cache beside the package (``__pycache__``). A fresh
install therefore pays about 20 s of compilation (the simulator alone 7-11 s) at its first
simulation; every later process loads the compiled kernels in well under a second.
:func:`warm_up` (``grpo-dynamics warm-up``) pays that cost now, for example right after
``pip install`` or in a container build, so no user-facing call does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from . import _validation as _v

__all__ = ["WARM_UP_STAGES", "warm_up"]

#: the kernel groups, in the order the test suite first needs them
WARM_UP_STAGES = ("simulate", "train", "gradient", "optimizer_step", "probe", "binomial")


def _simulate() -> None:
    from ._simulate import BanditConfig, simulate

    # 2 arms take the sequential-binomial sampler, 8 the cell sampler: one kernel, both paths
    simulate(BanditConfig(steps=2, replicas=1))
    simulate(BanditConfig(arm_rewards=tuple(np.linspace(0.1, 0.8, 8)), steps=2, replicas=1))


def _policy():  # the smallest two-position policy with a sampled tail
    from .objectives import TwoPositionPolicy

    return TwoPositionPolicy((1, 3), [[0.9, 0.5], [0.2, 0.6]], "sampled", tail_vocab=2)


def _train() -> None:
    from .objectives import Objective, Optimizer, train_two_position

    train_two_position(
        _policy(),
        Objective(),
        Optimizer("adam", lr=0.05),
        group_size=2,
        n_groups=1,
        n_steps=2,
        n_replicas=1,
        seed=0,
    )


def _gradient() -> None:
    from . import _objective_kernels as kernels
    from .objectives import Objective, training

    policy = _policy()
    rng = np.random.default_rng(0)
    theta = rng.normal(size=policy.n_params)
    cfg_int, cfg_float = training._config_arrays(policy, Objective(), 1.0)
    kernels.objective_gradient_single(
        theta,
        theta.copy(),
        theta.copy(),
        policy.n_prefixes,
        policy.n_actions,
        np.asarray(policy.lengths, dtype=np.int64),
        rng.integers(0, policy.n_prefixes, (1, 2)),
        rng.integers(0, policy.n_actions, (1, 2)),
        rng.integers(0, 2, (1, 2, policy.max_tail)),
        rng.uniform(0.0, 1.0, (1, 2)),
        cfg_int,
        cfg_float,
    )


def _optimizer_step() -> None:
    from .optimizer import Optimizer, numba_step

    kind, hyper = Optimizer("adam").kernel_arguments()
    z = np.zeros(2)
    numba_step(z, np.ones(2), z.copy(), z.copy(), z.copy(), 0, kind, hyper)


def _probe() -> None:
    from ._simulate import BanditConfig, measure_stiffness

    config = BanditConfig(steps=2, replicas=1)
    measure_stiffness(config, "monte_carlo", start_logits=(0.0, 0.0), groups=6400)


def _binomial() -> None:
    from . import _bandit_kernels as kernels

    kernels.binomial_draws(8, 0.5, 16, 0, 1, np.empty(16, dtype=np.int64))


_STAGES: dict[str, Callable[[], None]] = {
    "simulate": _simulate,
    "train": _train,
    "gradient": _gradient,
    "optimizer_step": _optimizer_step,
    "probe": _probe,
    "binomial": _binomial,
}


def warm_up(
    stages: Sequence[str] | None = None,
    *,
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, float]:
    """Compile the Numba kernels now, into Numba's on-disk cache (module docstring).

    ``stages``: a subset of :data:`WARM_UP_STAGES` (default all, in that order). ``progress``
    is called as ``progress(stage, seconds)`` after each one. Returns the seconds each stage
    took: compiling on a fresh install (about 20 s in all on the benchmark machine), loading
    from the cache afterwards (well under a second). Results of later calls do not depend on
    whether the kernels were warmed.
    """
    chosen = list(WARM_UP_STAGES) if stages is None else list(stages)
    for stage in chosen:
        _v.choice("stages", stage, WARM_UP_STAGES)
    seconds: dict[str, float] = {}
    for stage in chosen:
        start = time.perf_counter()
        _STAGES[stage]()
        seconds[stage] = time.perf_counter() - start
        if progress is not None:
            progress(stage, seconds[stage])
    return seconds
