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
The from-rest oscillator of docs/model.md is fitted by :func:`grpo_dynamics.fit_many`,
not here. This module sits below forecast and imports neither forecast nor diagnose.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Family", "CurveFit", "FAMILIES", "fit_family", "fit_family_batch"]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Family:
    """One curve family: f(x, u, theta), the index of its asymptote, starts and bounds."""

    name: str
    names: tuple[str, ...]
    f: Callable[[Array, Array, Array], Array]
    jac: Callable[[Array, Array, Array], Array]
    asymptote: int  # index of the parameter that is the x -> inf limit


def _stack(*cols: Array) -> Array:
    return np.stack(np.broadcast_arrays(*cols), axis=-1)


# every f/jac takes x, u of shape (n,) or (B, n) and parameters p of shape (p,) or (p, B, 1)
def _exp(x: Array, _u: Array, p: Array) -> Array:
    return np.asarray(p[0] - p[1] * np.exp(-p[2] * x))


def _exp_jac(x: Array, _u: Array, p: Array) -> Array:
    e = np.exp(-p[2] * x)
    return _stack(np.ones_like(e), -e, p[1] * x * e)


def _logistic(x: Array, _u: Array, p: Array) -> Array:
    arg = np.clip(-p[2] * (x - p[3]), -60.0, 60.0)
    return np.asarray(p[0] + (p[1] - p[0]) / (1.0 + np.exp(arg)))


def _logistic_jac(x: Array, _u: Array, p: Array) -> Array:
    s = 1.0 / (1.0 + np.exp(np.clip(-p[2] * (x - p[3]), -60.0, 60.0)))
    ds = s * (1.0 - s) * (p[1] - p[0])
    return _stack(1.0 - s, s, ds * (x - p[3]), -ds * p[2])


def _pow3(_x: Array, u: Array, p: Array) -> Array:
    return np.asarray(p[0] - p[1] * u ** (-p[2]))


def _pow3_jac(_x: Array, u: Array, p: Array) -> Array:
    v = u ** (-p[2])
    return _stack(np.ones_like(v), -v, p[1] * v * np.log(u))


def _weibull(_x: Array, u: Array, p: Array) -> Array:
    return np.asarray(p[0] - (p[0] - p[1]) * np.exp(-((p[2] * u) ** p[3])))


def _weibull_jac(_x: Array, u: Array, p: Array) -> Array:
    ku = p[2] * u
    q = ku ** p[3]
    e = np.exp(-q)
    g = (p[0] - p[1]) * e * q
    return _stack(1.0 - e, e, g * p[3] / p[2], g * np.log(ku))


def _mmf(_x: Array, u: Array, p: Array) -> Array:
    return np.asarray(p[0] - (p[0] - p[1]) / (1.0 + (p[2] * u) ** p[3]))


def _mmf_jac(_x: Array, u: Array, p: Array) -> Array:
    ku = p[2] * u
    q = ku ** p[3]
    h = 1.0 / (1.0 + q)
    g = (p[0] - p[1]) * h * h * q
    return _stack(1.0 - h, h, g * p[3] / p[2], g * np.log(ku))


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
        starts = [
            np.array([plateau[0], plateau[0] - first, 2.0]),
            np.array([plateau[1], plateau[1] - first, 0.5]),
        ]
    elif name == "logistic":
        lo = np.array([-big, a_lo, 0.5, -1.0])
        hi = np.array([big, a_hi, 200.0, 3.0])
        starts = [np.array([first, plateau[0], 8.0, 0.2]), np.array([first, plateau[1], 6.0, 0.6])]
    elif name == "pow3":
        lo = np.array([a_lo, -big, 0.02])
        hi = np.array([a_hi, big, 4.0])
        starts = [
            np.array([plateau[0], sign * max(abs(plateau[0] - first), 1e-3), 1.0]),
            np.array([plateau[1], sign * max(abs(plateau[1] - first), 1e-3), 0.3]),
        ]
    else:  # weibull, mmf
        lo = np.array([a_lo, -big, 0.05, 0.3])
        hi = np.array([a_hi, big, 60.0, 5.0])
        starts = [np.array([plateau[0], first, 3.0, 1.0]), np.array([plateau[1], first, 1.0, 2.0])]
    return [np.clip(s, lo + 1e-9, hi - 1e-9) for s in starts], lo, hi


def fit_family(name: str, x: Array, u: Array, z: Array, a_lo: float, a_hi: float) -> CurveFit:
    """Fit family ``name`` to (x, z); see :func:`fit_family_batch`."""
    return fit_family_batch(name, x, u, [z.size], z, a_lo, a_hi)[0]


def fit_family_batch(
    name: str,
    x: Array,
    u: Array,
    lengths: list[int],
    z: Array,
    a_lo: float,
    a_hi: float,
    max_iter: int = 60,
) -> list[CurveFit]:
    """Fit family ``name`` to the first ``lengths[i]`` points of (x, z), for every i, at once.

    A batched projected Levenberg-Marquardt (analytic Jacobian, parameters clipped to their
    bounds after every step) from a few data-driven starts per piece; the best start wins.
    ``a_lo``/``a_hi`` bound the asymptote (normalised units). Each result carries the
    Gauss-Newton covariance s^2 (J^T J)^+ on the parameters not at a bound (zero rows for
    those at a bound); ``ok`` is False when no start reached a finite answer.
    """
    fam = FAMILIES[name]
    n_par = len(fam.names)
    n = x.size
    starts: list[Array] = []
    owner: list[int] = []
    lo = hi = np.zeros(n_par)
    for i, m in enumerate(lengths):
        st, lo, hi = _starts(name, x[:m], z[:m], a_lo, a_hi)
        starts += st
        owner += [i] * len(st)
    own = np.array(owner)
    P = np.array(starts)  # (B, p)
    W = (np.arange(n)[None, :] < np.array(lengths)[own][:, None]).astype(float)  # (B, n)
    Z = np.broadcast_to(z, W.shape)

    def resid(PP: Array) -> Array:
        with np.errstate(all="ignore"):
            r = fam.f(x[None, :], u[None, :], PP.T[:, :, None]) - Z
        return np.where(W > 0, r, 0.0)

    def cost_of(r: Array) -> Array:
        c = np.sum(r * r, axis=1)
        return np.where(np.isfinite(c), c, np.inf)

    r = resid(P)
    cost = cost_of(r)
    lam = np.full(P.shape[0], 1e-2)
    eye = np.eye(n_par)
    active = np.ones(P.shape[0], dtype=bool)
    for _ in range(max_iter):
        with np.errstate(all="ignore"):
            J = fam.jac(x[None, :], u[None, :], P.T[:, :, None]) * W[:, :, None]
        J[~np.isfinite(J)] = 0.0
        Jt = J.transpose(0, 2, 1)
        A = Jt @ J
        g = (Jt @ r[:, :, None])[:, :, 0]
        diag = np.einsum("bii->bi", A) + 1e-12
        M = A + lam[:, None, None] * diag[:, :, None] * eye
        try:
            step = -np.linalg.solve(M, g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = -np.einsum("bij,bj->bi", np.linalg.pinv(M), g)
        trial = np.clip(P + step, lo, hi)
        r_new = resid(trial)
        c_new = cost_of(r_new)
        better = (c_new < cost) & active
        gain = np.where(better, (cost - c_new) / np.maximum(cost, 1e-300), 0.0)
        P = np.where(better[:, None], trial, P)
        r = np.where(better[:, None], r_new, r)
        cost = np.where(better, c_new, cost)
        lam = np.where(better, np.maximum(lam / 3.0, 1e-9), np.minimum(lam * 4.0, 1e9))
        active &= ~((better & (gain < 1e-6)) | (lam >= 1e6))
        if not active.any():
            break
    out: list[CurveFit] = []
    for i, m in enumerate(lengths):
        rows = np.nonzero(own == i)[0]
        best = rows[int(np.argmin(cost[rows]))]
        if not np.isfinite(cost[best]):
            nan = np.full(n_par, np.nan)
            out.append(CurveFit(fam, nan, np.full((n_par, n_par), np.nan), math.nan, m, False))
            continue
        p = P[best]
        sigma2 = float(cost[best]) / max(m - n_par, 1)
        with np.errstate(all="ignore"):
            jac = np.asarray(fam.jac(x[:m], u[:m], p), dtype=float)
        free = (p > lo + 1e-6 * (hi - lo)) & (p < hi - 1e-6 * (hi - lo))
        cov = np.zeros((n_par, n_par))
        if free.any() and np.all(np.isfinite(jac)):
            jf = jac[:, free]
            cov[np.ix_(free, free)] = sigma2 * np.linalg.pinv(jf.T @ jf)
        out.append(CurveFit(fam, np.asarray(p, float), cov, sigma2, m, True))
    return out
