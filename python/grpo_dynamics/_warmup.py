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

#: the kernel groups a user's calls compile: simulate(), the two-position trainer
#: (objectives.train_two_position) and the Monte Carlo stiffness probe (measure_stiffness)
WARM_UP_STAGES = ("simulate", "train", "probe")


def _simulate() -> None:
    from ._simulate import BanditConfig, simulate

    # 2 arms take the sequential-binomial sampler, 8 the cell sampler: one kernel, both paths
    simulate(BanditConfig(steps=2, replicas=1))
    simulate(BanditConfig(arm_rewards=tuple(np.linspace(0.1, 0.8, 8)), steps=2, replicas=1))


def _train() -> None:
    from .objectives import Objective, Optimizer, TwoPositionPolicy, train_two_position

    # the smallest two-position policy with a sampled tail
    policy = TwoPositionPolicy((1, 3), [[0.9, 0.5], [0.2, 0.6]], "sampled", tail_vocab=2)
    train_two_position(
        policy,
        Objective(),
        Optimizer("adam", lr=0.05),
        group_size=2,
        n_groups=1,
        n_steps=2,
        n_replicas=1,
        seed=0,
    )


def _probe() -> None:
    from ._simulate import BanditConfig, measure_stiffness

    config = BanditConfig(steps=2, replicas=1)
    measure_stiffness(config, "monte_carlo", start_logits=(0.0, 0.0), groups=6400)


_STAGES: dict[str, Callable[[], None]] = {"simulate": _simulate, "train": _train, "probe": _probe}


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
