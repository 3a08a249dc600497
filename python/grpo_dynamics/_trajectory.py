"""Closed-form GRPO reward trajectory, its analytic Jacobian and the parameter conversions.

The deterministic continuum model (docs/model.md, "Continuum model" and "Closed-form
trajectory") is the damped oscillator ``mu tau^2 x'' + tau x' + x = 0`` for the deviation
``x = r - r_inf`` of the mean reward from its plateau. Time is in optimizer steps. Evaluation
happens in the compiled core (``_core.trajectory``), exact in every regime and overflow-free.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core

__all__ = [
    "JACOBIAN_PARAMS",
    "Regime",
    "trajectory",
    "trajectory_jacobian",
    "regime",
    "shape_to_physical",
    "physical_to_shape",
    "shape_to_frequency",
    "frequency_to_shape",
]

#: Column order of :func:`trajectory_jacobian`.
JACOBIAN_PARAMS: tuple[str, ...] = ("r0", "r_inf", "tau", "mu", "t0", "v0")

Regime = Literal["overdamped", "critical", "oscillatory"]

#: mu = 1/4 separates the overdamped (real roots) from the oscillatory (complex roots) regime.
CRITICAL_MU = 0.25


def _times(t: ArrayLike) -> NDArray[np.float64]:
    times = np.asarray(t, dtype=np.float64)
    if times.ndim == 0:
        times = times.reshape(1)
    if times.ndim != 1:
        raise ValueError(f"t must be a scalar or a 1-D array, got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError("t must be finite (found NaN or inf)")
    return times


def trajectory(
    t: ArrayLike,
    r0: float,
    r_inf: float,
    tau: float,
    mu: float,
    *,
    t0: float = 0.0,
    v0: float = 0.0,
) -> NDArray[np.float64]:
    """Mean reward r(t) of the closed-form model (docs/model.md, "Closed-form trajectory").

    Parameters
    ----------
    t : array_like
        Times in optimizer steps (any order). Before ``t0`` the reward is held at ``r0``.
    r0 : float
        Reward at the start ``t0`` (reward units).
    r_inf : float
        Plateau, the fixed point of the dynamics (reward units).
    tau : float
        Relaxation time ``gamma / k`` in steps (> 0): the inverse stiffness in damping units.
    mu : float
        Inertia number ``m k / gamma^2 = 1 / (4 zeta^2)`` (>= 0). ``mu = 0`` is exactly the
        single-exponential saturation law, ``mu = 1/4`` critical damping, ``mu > 1/4``
        oscillation.
    t0 : float, optional
        Start of training (steps); the momentum buffer is empty there.
    v0 : float, optional
        Initial reward velocity (reward units per step); 0 gives the slow start. Has no
        effect when ``mu = 0`` (first-order dynamics cannot carry a velocity).

    Returns
    -------
    numpy.ndarray
        r(t), same length as ``t``.
    """
    return _core.trajectory(_times(t), r0, r_inf, tau, mu, t0, v0)


def trajectory_jacobian(
    t: ArrayLike,
    r0: float,
    r_inf: float,
    tau: float,
    mu: float,
    *,
    t0: float = 0.0,
    v0: float = 0.0,
) -> NDArray[np.float64]:
    """Analytic Jacobian of :func:`trajectory`, shape ``(len(t), 6)``.

    Columns are the derivatives with respect to :data:`JACOBIAN_PARAMS`
    ``(r0, r_inf, tau, mu, t0, v0)``; each is continuous across ``mu = 1/4`` and as
    ``mu -> 0``.
    """
    return _core.trajectory_jacobian(_times(t), r0, r_inf, tau, mu, t0, v0)


def _positive(name: str, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return float(value)


def _nonnegative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def regime(mu: float, *, tol: float = 0.0) -> Regime:
    """Regime of the deterministic trajectory: ``mu < 1/4`` overdamped, ``= 1/4`` critical,
    ``> 1/4`` oscillatory (``|mu - 1/4| <= tol`` counts as critical)."""
    _nonnegative("mu", mu)
    if abs(mu - CRITICAL_MU) <= tol:
        return "critical"
    return "overdamped" if mu < CRITICAL_MU else "oscillatory"


def physical_to_shape(mass: float, damping: float, stiffness: float) -> tuple[float, float]:
    """(m, gamma, k) of ``m x'' + gamma x' + k x = 0`` -> (tau, mu).

    ``tau = gamma / k`` and ``mu = m k / gamma^2``. Dividing the equation by ``k`` gives
    ``mu tau^2 x'' + tau x' + x = 0``, so the trajectory only sees these two combinations.
    """
    _nonnegative("mass", mass)
    damping = _positive("damping", damping)
    stiffness = _positive("stiffness", stiffness)
    return damping / stiffness, mass * stiffness / damping**2


def shape_to_physical(
    tau: float, mu: float, *, stiffness: float = 1.0
) -> tuple[float, float, float]:
    """(tau, mu) -> (m, gamma, k) for a given stiffness ``k`` (the overall scale the trajectory
    cannot see): ``gamma = k tau``, ``m = mu k tau^2``."""
    tau = _positive("tau", tau)
    _nonnegative("mu", mu)
    stiffness = _positive("stiffness", stiffness)
    return mu * stiffness * tau**2, stiffness * tau, stiffness


def shape_to_frequency(tau: float, mu: float) -> tuple[float, float]:
    """(tau, mu) -> (omega0, zeta): ``omega0 = 1 / (tau sqrt(mu))`` rad/step and
    ``zeta = 1 / (2 sqrt(mu))``; ``mu = 0`` gives ``(inf, inf)``."""
    tau = _positive("tau", tau)
    _nonnegative("mu", mu)
    if mu == 0:
        return math.inf, math.inf
    root = math.sqrt(mu)
    return 1.0 / (tau * root), 0.5 / root


def frequency_to_shape(omega0: float, zeta: float) -> tuple[float, float]:
    """(omega0, zeta) -> (tau, mu): ``mu = 1 / (4 zeta^2)``, ``tau = 2 zeta / omega0``."""
    omega0 = _positive("omega0", omega0)
    zeta = _positive("zeta", zeta)
    return 2.0 * zeta / omega0, 0.25 / zeta**2
