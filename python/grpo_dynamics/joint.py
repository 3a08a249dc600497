"""Joint fits that share the closed-form parameters across runs (docs/fitting.md, "Joint fits").

Two designs of MODEL.md's fitting section:

- :func:`fit_joint` — one ``(r0, r_inf, tau, mu)`` (or any subset of them) shared by several
  runs, each with its own noise variance. Runs that differ only in the group size ``G`` should
  share the deterministic trajectory (group-size invariance) while their fluctuation scales as
  ``1/G``; the result carries a likelihood-ratio test of the sharing against separate fits and
  the per-run noise variances to check the ``1/G`` law.
- :func:`fit_scaling` — ``tau_i = A * size_i^(-a)`` across model sizes, with per-run ``r0``,
  ``r_inf`` and ``mu``: the exponent ``a`` is the curvature-scaling exponent of the
  single-exponential saturation law.

Both minimise ``sum_i RSS_i / sigma_i^2 + n_i log sigma_i^2`` (Gaussian likelihood with a
noise variance per run) by alternating a weighted least-squares solve (scipy's trust-region
reflective solver on the stacked residuals, with the analytic Jacobian of the compiled
trajectory) and the closed-form update ``sigma_i^2 = RSS_i / n_i`` until the variances settle.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .fit import fit
from .trajectory import trajectory, trajectory_jacobian

__all__ = ["JointFit", "ScalingFit", "fit_joint", "fit_scaling"]

_SHAPE = ("r0", "r_inf", "tau", "mu")
_MAX_VARIANCE_ROUNDS = 50


@dataclass(frozen=True)
class JointFit:
    """Parameters shared across runs plus per-run ones (docs/fitting.md, "Joint fits").

    ``params`` holds the shared values, ``run_params`` one dict per run with every shape
    parameter (shared ones repeated). ``noise_variance`` is the per-run ML estimate RSS_i / n_i
    (reward units squared). ``lr_statistic`` / ``lr_pvalue`` test the sharing against separate
    per-run fits (chi-square with ``lr_dof`` degrees of freedom): a small p-value says the runs
    do not share these parameters.
    """

    shared: tuple[str, ...]
    params: dict[str, float]
    stderr: dict[str, float]
    run_params: list[dict[str, float]]
    covariance: NDArray[np.float64] = field(repr=False)
    noise_variance: NDArray[np.float64]
    n_points: NDArray[np.int64]
    log_likelihood: float
    aic: float
    lr_statistic: float
    lr_dof: int
    lr_pvalue: float
    status: str
    t0: float = 0.0

    def predict(self, run: int, t: ArrayLike) -> NDArray[np.float64]:
        """Fitted mean reward of run ``run`` at steps ``t``."""
        p = self.run_params[run]
        return trajectory(t, p["r0"], p["r_inf"], p["tau"], p["mu"], t0=self.t0)


@dataclass(frozen=True)
class ScalingFit:
    """``tau_i = amplitude * size_i^(-exponent)`` with per-run ``r0``, ``r_inf``, ``mu``."""

    amplitude: float
    exponent: float
    amplitude_stderr: float
    exponent_stderr: float
    run_params: list[dict[str, float]]
    noise_variance: NDArray[np.float64]
    log_likelihood: float
    status: str
    t0: float = 0.0


def _series(
    runs: Sequence[tuple[ArrayLike, ArrayLike]],
) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
    if len(runs) < 2:
        raise ValueError(f"runs: a joint fit needs at least 2 runs, got {len(runs)}")
    out = []
    for i, pair in enumerate(runs):
        try:
            t_raw, r_raw = pair
        except (TypeError, ValueError):
            raise ValueError(f"runs[{i}]: expected a (t, r) pair") from None
        t = np.asarray(t_raw, dtype=np.float64)
        r = np.asarray(r_raw, dtype=np.float64)
        if t.ndim != 1 or t.shape != r.shape:
            raise ValueError(
                f"runs[{i}]: t and r must be 1-D of equal length, got {t.shape} and {r.shape}"
            )
        keep = np.isfinite(r)
        if not np.all(np.isfinite(t)):
            raise ValueError(f"runs[{i}]: t must be finite")
        t, r = t[keep], r[keep]
        if t.size < 5:
            raise ValueError(f"runs[{i}]: needs at least 5 finite points, has {t.size}")
        if np.any(np.diff(t) <= 0):
            raise ValueError(f"runs[{i}]: t must be strictly increasing")
        out.append((t, r))
    return out


def _solve(
    series: list[tuple[NDArray[np.float64], NDArray[np.float64]]],
    unpack: Callable[
        [NDArray[np.float64]], tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]]
    ],
    x0: NDArray[np.float64],
    lower: NDArray[np.float64],
    upper: NDArray[np.float64],
    t0: float,
) -> tuple[
    NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], bool
]:
    """Alternate weighted least squares and sigma_i^2 = RSS_i / n_i; returns
    (x, covariance, rss per run, variance per run, converged)."""
    from scipy.optimize import least_squares

    sizes = np.array([t.size for t, _ in series])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    variance = np.ones(len(series))

    def residuals_and_jacobian(x: NDArray[np.float64], want_jac: bool):
        shapes, maps = unpack(x)
        res = np.empty(offsets[-1])
        jac = np.zeros((offsets[-1], x.size)) if want_jac else None
        for i, ((t, r), shape) in enumerate(zip(series, shapes, strict=True)):
            rows = slice(offsets[i], offsets[i + 1])
            scale = 1.0 / math.sqrt(variance[i])
            res[rows] = (trajectory(t, *shape, t0=t0) - r) * scale
            if jac is not None:
                jac[rows] = trajectory_jacobian(t, *shape, t0=t0)[:, :4] @ maps[i] * scale
        return res, jac

    x = x0.copy()
    converged = False
    for _ in range(_MAX_VARIANCE_ROUNDS):
        solution = least_squares(
            lambda x: residuals_and_jacobian(x, False)[0],
            x,
            jac=lambda x: residuals_and_jacobian(x, True)[1],
            bounds=(lower, upper),
            method="trf",
            x_scale="jac",
            xtol=1e-13,
            ftol=1e-13,
            gtol=1e-13,
        )
        x = solution.x
        res, _ = residuals_and_jacobian(x, False)
        rss = np.array(
            [
                np.sum((res[offsets[i] : offsets[i + 1]]) ** 2) * variance[i]
                for i in range(len(series))
            ]
        )
        new_variance = np.maximum(rss / sizes, 1e-300)
        settled = np.allclose(new_variance, variance, rtol=1e-9, atol=0)
        variance = new_variance
        if settled:
            converged = True
            break
    _, jac = residuals_and_jacobian(x, True)
    assert jac is not None
    # Variances are ML estimates, so the weighted residuals have unit scale: Cov = (J^T J)^-1.
    covariance = np.linalg.pinv(jac.T @ jac)
    return x, covariance, rss, variance, converged


def _gaussian_log_likelihood(rss: NDArray[np.float64], sizes: NDArray[np.int64]) -> float:
    return float(-0.5 * np.sum(sizes * (np.log(2 * np.pi * rss / sizes) + 1.0)))


def fit_joint(
    runs: Sequence[tuple[ArrayLike, ArrayLike]],
    *,
    shared: Sequence[str] = _SHAPE,
    t0: float = 0.0,
) -> JointFit:
    """Fit the oscillator to several runs at once, sharing ``shared`` parameters.

    Parameters
    ----------
    runs : sequence of (t, r)
        Steps and rewards of each run (NaN rewards are dropped).
    shared : sequence of str
        Which of ``r0, r_inf, tau, mu`` are common to all runs (default: all four, the
        group-size invariance hypothesis). The others are fitted per run.
    t0 : float
        Common start of training (steps).

    Returns
    -------
    JointFit
        With the likelihood-ratio test of the sharing against separate per-run fits.
    """
    shared = tuple(shared)
    unknown = [name for name in shared if name not in _SHAPE]
    if unknown or not shared:
        raise ValueError(f"shared: choose a non-empty subset of {_SHAPE}, got {shared!r}")
    series = _series(runs)
    separate = [fit(t, r, t0=t0) for t, r in series]
    if any(s.status == "bad_input" for s in separate):
        raise ValueError("runs: a run could not be fitted on its own (bad input)")
    n_runs = len(series)
    free = [name for name in _SHAPE if name not in shared]
    n_x = len(shared) + n_runs * len(free)
    per_run_values = np.array([[s.params[name] for name in _SHAPE] for s in separate])
    per_run_lower = np.array([[s.bounds[name][0] for name in _SHAPE] for s in separate])
    per_run_upper = np.array([[s.bounds[name][1] for name in _SHAPE] for s in separate])

    # x = [shared..., run 0 free..., run 1 free..., ...]; shape_i = fixed linear map of x.
    index = {name: j for j, name in enumerate(_SHAPE)}
    maps = []
    for i in range(n_runs):
        m = np.zeros((4, n_x))
        for k, name in enumerate(shared):
            m[index[name], k] = 1.0
        for k, name in enumerate(free):
            m[index[name], len(shared) + i * len(free) + k] = 1.0
        maps.append(m)

    def unpack(x: NDArray[np.float64]):
        return [m @ x for m in maps], maps

    x0 = np.concatenate(
        [
            np.median(per_run_values[:, [index[n] for n in shared]], axis=0),
            per_run_values[:, [index[n] for n in free]].ravel(),
        ]
    )
    lower = np.concatenate(
        [
            per_run_lower[:, [index[n] for n in shared]].min(axis=0),
            per_run_lower[:, [index[n] for n in free]].ravel(),
        ]
    )
    upper = np.concatenate(
        [
            per_run_upper[:, [index[n] for n in shared]].max(axis=0),
            per_run_upper[:, [index[n] for n in free]].ravel(),
        ]
    )
    x0 = np.clip(x0, lower, upper)
    x, covariance, rss, variance, converged = _solve(series, unpack, x0, lower, upper, t0)

    sizes = np.array([t.size for t, _ in series], dtype=np.int64)
    log_lik = _gaussian_log_likelihood(rss, sizes)
    separate_log_lik = _gaussian_log_likelihood(np.array([s.rss for s in separate]), sizes)
    # Each run has its own variance in both models; sharing removes (n_runs - 1) copies of
    # each shared parameter.
    lr_dof = (n_runs - 1) * len(shared)
    lr_stat = max(0.0, 2.0 * (separate_log_lik - log_lik))
    from scipy.special import chdtrc

    stderr_all = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    shapes, _ = unpack(x)
    return JointFit(
        shared=shared,
        params={name: float(x[k]) for k, name in enumerate(shared)},
        stderr={name: float(stderr_all[k]) for k, name in enumerate(shared)},
        run_params=[dict(zip(_SHAPE, map(float, s), strict=True)) for s in shapes],
        covariance=covariance,
        noise_variance=variance,
        n_points=sizes,
        log_likelihood=log_lik,
        aic=2.0 * (n_x + n_runs) - 2.0 * log_lik,
        lr_statistic=lr_stat,
        lr_dof=lr_dof,
        lr_pvalue=float(chdtrc(lr_dof, lr_stat)),
        status="converged" if converged else "max_iter",
        t0=t0,
    )


def fit_scaling(
    runs: Sequence[tuple[ArrayLike, ArrayLike]],
    sizes: ArrayLike,
    *,
    t0: float = 0.0,
) -> ScalingFit:
    """Fit ``tau_i = amplitude * size_i^(-exponent)`` jointly across runs of different model
    sizes (any positive size unit), with ``r0``, ``r_inf`` and ``mu`` per run.

    The exponent is the curvature-scaling exponent: ``tau = gamma / k`` falls as the
    curvature of a larger model's objective grows (docs/model.md, "The closed-form trajectory").
    """
    series = _series(runs)
    size = np.asarray(sizes, dtype=np.float64)
    if size.shape != (len(series),):
        raise ValueError(f"sizes: expected {len(series)} model sizes, got shape {size.shape}")
    if not np.all(np.isfinite(size)) or np.any(size <= 0):
        raise ValueError("sizes: model sizes must be finite and > 0")
    if np.unique(size).size < 2:
        raise ValueError("sizes: need at least two distinct model sizes to fit an exponent")
    separate = [fit(t, r, t0=t0) for t, r in series]
    if any(s.status == "bad_input" for s in separate):
        raise ValueError("runs: a run could not be fitted on its own (bad input)")
    n_runs = len(series)
    log_size = np.log(size)
    # Start: log tau = log A - a log size by ordinary least squares on the separate fits.
    slope, intercept = np.polyfit(log_size, np.log([s.params["tau"] for s in separate]), 1)
    per_run = ("r0", "r_inf", "mu")
    x0 = np.concatenate(
        [[intercept, -slope], [[s.params[n] for n in per_run] for s in separate]], axis=None
    )
    lower = np.concatenate(
        [[-np.inf, -np.inf], [[s.bounds[n][0] for n in per_run] for s in separate]], axis=None
    )
    upper = np.concatenate(
        [[np.inf, np.inf], [[s.bounds[n][1] for n in per_run] for s in separate]], axis=None
    )
    x0 = np.clip(x0, lower, upper)

    def unpack(x: NDArray[np.float64]):
        log_amplitude, exponent = x[0], x[1]
        shapes, maps = [], []
        for i in range(n_runs):
            r0, r_inf, mu = x[2 + 3 * i : 5 + 3 * i]
            tau = math.exp(log_amplitude - exponent * log_size[i])
            m = np.zeros((4, x.size))
            m[0, 2 + 3 * i] = 1.0
            m[1, 3 + 3 * i] = 1.0
            m[3, 4 + 3 * i] = 1.0
            m[2, 0] = tau  # d tau / d log A
            m[2, 1] = -tau * log_size[i]  # d tau / d a
            shapes.append(np.array([r0, r_inf, tau, mu]))
            maps.append(m)
        return shapes, maps

    x, covariance, rss, variance, converged = _solve(series, unpack, x0, lower, upper, t0)
    shapes, _ = unpack(x)
    amplitude = math.exp(x[0])
    n_points = np.array([t.size for t, _ in series], dtype=np.int64)
    return ScalingFit(
        amplitude=amplitude,
        exponent=float(x[1]),
        amplitude_stderr=amplitude * math.sqrt(max(covariance[0, 0], 0.0)),  # delta method
        exponent_stderr=math.sqrt(max(covariance[1, 1], 0.0)),
        run_params=[dict(zip(_SHAPE, map(float, s), strict=True)) for s in shapes],
        noise_variance=variance,
        log_likelihood=_gaussian_log_likelihood(rss, n_points),
        status="converged" if converged else "max_iter",
        t0=t0,
    )
