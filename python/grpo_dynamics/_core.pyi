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
def trajectory_rows(
    params: ArrayLike, t: ArrayLike, t0: float = 0.0, threads: int = 1
) -> NDArray[np.float64]: ...

# --- fit ------------------------------------------------------------------------------------

#: Status names indexed by the numeric status codes of fit_batch (kFitStatusNames in fit.hpp).
FIT_STATUS_NAMES: tuple[str, ...]
#: Largest FitOptions.max_iter.
MAX_FIT_ITER: int

class FitOptions:
    """Options of the bounded Levenberg-Marquardt fitter (docs/fitting.md); keyword-only,
    validated on construction (a ValueError naming the field)."""

    max_iter: int
    ftol: float
    xtol: float
    gtol: float
    n_starts: int
    restart_rss_ratio: float
    t0: float
    range_widen: float
    mu_max: float
    singular_rcond: float
    nested_mu0: bool
    nested_mu_max: float
    window: int
    def __init__(
        self,
        *,
        max_iter: int = 200,
        ftol: float = 1e-10,
        xtol: float = 1e-10,
        gtol: float = 1e-10,
        n_starts: int = 2,
        restart_rss_ratio: float = 2.0,
        t0: float = 0.0,
        range_widen: float = 1.0,
        mu_max: float = 10000.0,
        singular_rcond: float = 1e-12,
        nested_mu0: bool = True,
        nested_mu_max: float = 0.01,
        window: int = 0,
    ) -> None: ...

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
    options: FitOptions = ...,
) -> dict[str, Any]: ...
def logistic_curve(
    t: ArrayLike, r_lo: float, r_hi: float, t_mid: float, s: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def fit_model_param_names(model: str) -> list[str]: ...
def _fit_normal_sums(
    t_first: float,
    dt: float,
    y: ArrayLike,
    w: ArrayLike,
    r0: float,
    r_inf: float,
    tau: float,
    mu: float,
    t0: float,
    n_params: int,
    scale: ArrayLike | None = None,
) -> tuple[bool, float, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]: ...
def _fit_kernel_isa() -> str: ...

# --- stability ------------------------------------------------------------------------------

#: Regime names by regime code (-1 marks an invalid grid point).
REGIME_NAMES: dict[int, str]
#: Size caps (docs/stability.md): refresh interval, delay (O(D^2) per point), delay for the dense
#: (D+1)x(D+1) eigen/Lyapunov solves, smallest scan ratio of critical_scale.
MAX_REFRESH_INTERVAL: int
MAX_DELAY: int
MAX_DENSE_DELAY: int
MIN_SCAN_RATIO: float

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
    decoupled_decay: float = 0.0,
) -> float: ...
def stability_grid(
    momentum: ArrayLike,
    c_lag: ArrayLike,
    c_now: ArrayLike,
    lag_steps: ArrayLike,
    lag_model: str,
    threads: int = 0,
) -> dict[str, NDArray[Any]]: ...
