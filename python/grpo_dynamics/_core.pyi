# Stubs for the compiled module grpo_dynamics._core (kept in step with cpp/bindings/*.cpp).

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

# --- trajectory ---------------------------------------------------------------------------

def trajectory(
    t: ArrayLike, r0: float, r_inf: float, tau: float, mu: float, t0: float = 0.0, v0: float = 0.0
) -> NDArray[np.float64]: ...
def trajectory_jacobian(
    t: ArrayLike, r0: float, r_inf: float, tau: float, mu: float, t0: float = 0.0, v0: float = 0.0
) -> NDArray[np.float64]: ...
def trajectory_uniform(
    t_first: float,
    dt: float,
    n: int,
    r0: float,
    r_inf: float,
    tau: float,
    mu: float,
    t0: float = 0.0,
    v0: float = 0.0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...

# --- fit ------------------------------------------------------------------------------------

def fit_batch(
    t: ArrayLike,
    t_offsets: ArrayLike,
    r: ArrayLike,
    offsets: ArrayLike,
    weights: ArrayLike | None,
    model: str,
    lower: ArrayLike,
    upper: ArrayLike,
    p0: ArrayLike | None,
    threads: int,
    t0: float = 0.0,
    max_iter: int = 200,
    n_starts: int = 2,
    ftol: float = 1e-10,
    xtol: float = 1e-10,
    gtol: float = 1e-10,
    range_widen: float = 1.0,
    mu_max: float = 1e4,
    restart_rss_ratio: float = 2.0,
    nested_mu0: bool = True,
    nested_mu_max: float = 1e-2,
    window: int = 0,
) -> dict[str, Any]: ...
def logistic_curve(
    t: ArrayLike, r_lo: float, r_hi: float, t_mid: float, s: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def fit_model_param_names(model: str) -> list[str]: ...

# --- stability ------------------------------------------------------------------------------
def stability_transition_matrix(
    momentum: float, c_lag: float, c_now: float, lag_model: str, lag_steps: int
) -> NDArray[np.float64]: ...
def refresh_cycle(
    momentum: float, c_lag: float, c_now: float, refresh_interval: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def stability_spectrum(
    momentum: float, c_lag: float, c_now: float, lag_model: str, lag_steps: int
) -> dict[str, Any]: ...
def stationary_variance_unit(
    momentum: float, c_lag: float, c_now: float, lag_model: str, lag_steps: int
) -> tuple[float, NDArray[np.float64]]: ...
def solve_discrete_lyapunov(transition: ArrayLike, noise: ArrayLike) -> NDArray[np.float64]: ...
def roots_inside_radius(coeffs: list[float], radius: float) -> bool: ...
def critical_refresh_interval(
    momentum: float, c_lag: float, c_now: float, max_interval: int
) -> int: ...
def critical_delay(momentum: float, c_lag: float, c_now: float, max_delay: int) -> int: ...
def critical_scale(
    momentum: float,
    c_lag: float,
    c_now: float,
    lag_model: str,
    lag_steps: int,
    criterion: str,
    scan_ratio: float,
) -> float: ...
def stability_grid(
    momentum: ArrayLike,
    c_lag: ArrayLike,
    c_now: ArrayLike,
    lag_steps: ArrayLike,
    lag_model: str,
    threads: int = 0,
) -> dict[str, NDArray[Any]]: ...
