# Stubs for the compiled module grpo_dynamics._core (kept in step with cpp/bindings/*.cpp).

# --- trajectory ---------------------------------------------------------------------------
import numpy as np
from numpy.typing import ArrayLike, NDArray

def trajectory(
    t: ArrayLike, r0: float, r_inf: float, tau: float, mu: float, t0: float = 0.0, v0: float = 0.0
) -> NDArray[np.float64]: ...
def trajectory_jacobian(
    t: ArrayLike, r0: float, r_inf: float, tau: float, mu: float, t0: float = 0.0, v0: float = 0.0
) -> NDArray[np.float64]: ...
def trajectory_uniform(
    t_first: float, dt: float, n: int, r0: float, r_inf: float, tau: float, mu: float,
    t0: float = 0.0, v0: float = 0.0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
