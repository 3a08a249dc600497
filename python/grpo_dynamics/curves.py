"""Learning-curve families the forecast combines (docs/forecast.md, "Candidate curves").

Each family is a saturating curve of the step, fitted by bounded least squares (scipy's
trust-region reflective solver) in normalised units: ``x = (t - t_first) / span`` so the
fitted part covers [0, 1], and ``z = (y - centre) / scale``. Power families use
``u = x + x_shift`` (one logging interval) so they are finite at the first point.

- ``exponential``: a - b exp(-k x) (asymptote a).
- ``logistic``: L + (U - L) / (1 + exp(-k (x - x0))) (asymptote U): slow start, rise, plateau.
- ``pow3``: c - a u^-alpha (asymptote c): the power-law saturation of Domhan et al. (2015).
- ``weibull``: c - (c - b) exp(-(k u)^d) (Janoschek / Weibull growth, asymptote c).
- ``mmf``: c - (c - b) / (1 + (k u)^d) (Morgan-Mercer-Flodin, asymptote c).

Every asymptote is bounded to ``asymptote_bounds`` (the reward's possible range when known,
else a few observed ranges around the data) so no fit extrapolates to an absurd plateau.
The from-rest oscillator of docs/model.md is fitted by :func:`grpo_dynamics.fit.fit_many`,
not here. This module sits below forecast and imports neither forecast nor diagnose.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import least_squares

__all__ = ["Family", "CurveFit", "FAMILIES", "fit_family"]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Family:
    """One curve family: f(x, u, theta), the index of its asymptote, starts and bounds."""

    name: str
    names: tuple[str, ...]
    f: Callable[[Array, Array, Array], Array]
    jac: Callable[[Array, Array, Array], Array]
    asymptote: int  # index of the parameter that is the x -> inf limit


def _exp(x: Array, _u: Array, p: Array) -> Array:
    return np.asarray(p[0] - p[1] * np.exp(-p[2] * x))


def _logistic(x: Array, _u: Array, p: Array) -> Array:
    arg = np.clip(-p[2] * (x - p[3]), -60.0, 60.0)
    return np.asarray(p[0] + (p[1] - p[0]) / (1.0 + np.exp(arg)))


def _pow3(_x: Array, u: Array, p: Array) -> Array:
    return np.asarray(p[0] - p[1] * u ** (-p[2]))


def _weibull(_x: Array, u: Array, p: Array) -> Array:
    return np.asarray(p[0] - (p[0] - p[1]) * np.exp(-((p[2] * u) ** p[3])))


def _mmf(_x: Array, u: Array, p: Array) -> Array:
    return np.asarray(p[0] - (p[0] - p[1]) / (1.0 + (p[2] * u) ** p[3]))


def _exp_jac(x: Array, _u: Array, p: Array) -> Array:
    e = np.exp(-p[2] * x)
    return np.column_stack([np.ones_like(x), -e, p[1] * x * e])


def _logistic_jac(x: Array, _u: Array, p: Array) -> Array:
    s = 1.0 / (1.0 + np.exp(np.clip(-p[2] * (x - p[3]), -60.0, 60.0)))
    ds = s * (1.0 - s) * (p[1] - p[0])
    return np.column_stack([1.0 - s, s, ds * (x - p[3]), -ds * p[2]])


def _pow3_jac(_x: Array, u: Array, p: Array) -> Array:
    v = u ** (-p[2])
    return np.column_stack([np.ones_like(u), -v, p[1] * v * np.log(u)])


def _weibull_jac(_x: Array, u: Array, p: Array) -> Array:
    ku = p[2] * u
    q = ku ** p[3]
    e = np.exp(-q)
    g = (p[0] - p[1]) * e * q
    return np.column_stack([1.0 - e, e, g * p[3] / p[2], g * np.log(ku)])


def _mmf_jac(_x: Array, u: Array, p: Array) -> Array:
    ku = p[2] * u
    q = ku ** p[3]
    h = 1.0 / (1.0 + q)
    g = (p[0] - p[1]) * h * h * q
    return np.column_stack([1.0 - h, h, g * p[3] / p[2], g * np.log(ku)])


FAMILIES: dict[str, Family] = {
    "exponential": Family("exponential", ("a", "b", "k"), _exp, _exp_jac, 0),
    "logistic": Family("logistic", ("L", "U", "k", "x0"), _logistic, _logistic_jac, 1),
    "pow3": Family("pow3", ("c", "a", "alpha"), _pow3, _pow3_jac, 0),
    "weibull": Family("weibull", ("c", "b", "k", "d"), _weibull, _weibull_jac, 0),
    "mmf": Family("mmf", ("c", "b", "k", "d"), _mmf, _mmf_jac, 0),
}


@dataclass(frozen=True)
class CurveFit:
    """A fitted family in normalised units: parameters, covariance and residual variance."""

    family: Family
    params: Array
    covariance: Array
    sigma2: float
    n: int
    ok: bool

    def predict(self, x: Array, u: Array) -> Array:
        return self.family.f(x, u, self.params)

    @property
    def asymptote(self) -> float:
        return float(self.params[self.family.asymptote])


def _starts(
    name: str, x: Array, z: Array, a_lo: float, a_hi: float
) -> tuple[list[Array], Array, Array]:
    """Data-driven starts and (lower, upper) bounds for one family in normalised units."""
    k = max(3, z.size // 5)
    first, last = float(np.mean(z[:k])), float(np.mean(z[-k:]))
    big = 10.0 * max(a_hi - a_lo, 1.0)

    def inside(v: float) -> float:
        return float(min(max(v, a_lo + 1e-9), a_hi - 1e-9))

    rise = last - first
    sign = 1.0 if rise >= 0 else -1.0
    plateau = [inside(last + 0.3 * rise), inside(last + 1.5 * rise)]
    if name == "exponential":
        lo = np.array([a_lo, -big, 0.05])
        hi = np.array([a_hi, big, 60.0])
        starts = [np.array([plateau[0], plateau[0] - first, 2.0]),
                  np.array([plateau[1], plateau[1] - first, 0.5])]
    elif name == "logistic":
        lo = np.array([-big, a_lo, 0.5, -1.0])
        hi = np.array([big, a_hi, 200.0, 3.0])
        starts = [np.array([first, plateau[0], 8.0, 0.2]), np.array([first, plateau[1], 6.0, 0.6])]
    elif name == "pow3":
        lo = np.array([a_lo, -big, 0.02])
        hi = np.array([a_hi, big, 4.0])
        starts = [np.array([plateau[0], sign * max(abs(plateau[0] - first), 1e-3), 1.0]),
                  np.array([plateau[1], sign * max(abs(plateau[1] - first), 1e-3), 0.3])]
    else:  # weibull, mmf
        lo = np.array([a_lo, -big, 0.05, 0.3])
        hi = np.array([a_hi, big, 60.0, 5.0])
        starts = [np.array([plateau[0], first, 3.0, 1.0]), np.array([plateau[1], first, 1.0, 2.0])]
    return [np.clip(s, lo + 1e-9, hi - 1e-9) for s in starts], lo, hi


def fit_family(
    name: str, x: Array, u: Array, z: Array, a_lo: float, a_hi: float
) -> CurveFit:
    """Fit family ``name`` to (x, z) by bounded least squares from a few starts.

    ``a_lo``/``a_hi`` bound the asymptote (normalised units). Returns the best start's fit
    with its Gauss-Newton covariance s^2 (J^T J)^+ (zero rows for parameters at a bound);
    ``ok`` is False when no start converged to a finite answer.
    """
    fam = FAMILIES[name]
    starts, lo, hi = _starts(name, x, z, a_lo, a_hi)
    best = None
    best_cost = math.inf
    for p0 in starts:

        def resid(p: Array) -> Array:
            return fam.f(x, u, p) - z

        def jac(p: Array) -> Array:
            return fam.jac(x, u, p)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = least_squares(resid, p0, jac=jac, bounds=(lo, hi), method="trf",
                                    max_nfev=100, x_scale="jac")
            except (ValueError, FloatingPointError):
                continue
        if np.isfinite(res.cost) and res.cost < best_cost:
            best, best_cost = res, float(res.cost)
    p = len(fam.names)
    if best is None:
        nan = np.full(p, np.nan)
        return CurveFit(fam, nan, np.full((p, p), np.nan), math.nan, int(z.size), False)
    dof = max(z.size - p, 1)
    sigma2 = 2.0 * best_cost / dof
    jac = np.asarray(best.jac, dtype=float)
    free = (best.x > lo + 1e-6 * (hi - lo)) & (best.x < hi - 1e-6 * (hi - lo))
    cov = np.zeros((p, p))
    if free.any():
        jf = jac[:, free]
        cov_free = sigma2 * np.linalg.pinv(jf.T @ jf)
        cov[np.ix_(free, free)] = cov_free
    return CurveFit(fam, np.asarray(best.x, float), cov, sigma2, int(z.size), True)
