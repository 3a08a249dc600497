"""splitmix64, the one random-bit source of the Numba kernels (bandit and objective family).

A counter/stream-addressed generator makes every replica's draws independent of thread
scheduling, so seeded simulations are identical for any thread count. ``mix64`` is written
with NumPy operators only: the same function runs compiled inside kernels and vectorised
over uint64 arrays in the plain NumPy reference twins.
"""

from __future__ import annotations

import numpy as np
from numba import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
SHIFT30 = np.uint64(30)
SHIFT27 = np.uint64(27)
SHIFT31 = np.uint64(31)
SHIFT11 = np.uint64(11)
ONE = np.uint64(1)
TWO_POW_M53 = 1.0 / 9007199254740992.0  # 53 random bits -> [0, 1)


def mix64_numpy(z):
    """splitmix64 finaliser: a bijection of uint64 with full avalanche (scalars or arrays)."""
    z = (z ^ (z >> SHIFT30)) * MIX1
    z = (z ^ (z >> SHIFT27)) * MIX2
    return z ^ (z >> SHIFT31)


mix64 = njit(cache=True, inline="always", error_model="numpy")(mix64_numpy)
