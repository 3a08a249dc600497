"""Joint fits that share the closed-form parameters across runs (docs/fitting.md, "Joint fits").

Two designs of docs/model.md §5 (fitting):

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
trajectory) and the update of the variances until they settle: free per run
(``sigma_i^2 = RSS_i / n_i``) or, when the group sizes are given, the two-term noise law
``sigma_i^2 = s_p^2 / B_i + s_c^2 / (B_i G_i)`` (prompt sampling plus completion sampling,
docs/model.md "Fitting"), whose two variances are estimated by maximum likelihood.

A parameter that ends on a bound has a NaN standard error and is listed in ``unidentified``,
as in :func:`grpo_dynamics.fit` (docs/fitting.md, "Identification").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._fit import FitResult, fit
from ._trajectory import trajectory, trajectory_jacobian

__all__ = [
    "JointFit",
    "ScalingFit",
    "NoiseModel",
    "GroupSizeTimescales",
    "fit_joint",
    "fit_scaling",
    "fit_noise_model",
]

_SHAPE = ("r0", "r_inf", "tau", "mu")
_MAX_VARIANCE_ROUNDS = 50
# Same rule as fit.py: within this fraction of the bound (timescales and mu: of the bound's
# magnitude; levels: of the interval's width) a parameter counts as held by the bound.
_BOUND_RTOL = 1e-6
# As fit.py's core: J^T J whose scaled eigenvalues span more than this ratio is singular.
_SINGULAR_RATIO = 1e-12
# As fit.py's nested_mu0 rule: a mu optimum in (0, _NESTED_MU_MAX] is identified only at second
# order; the fit with that mu held at 0 is reported when it is not worse by AIC.
_NESTED_MU_MAX = 1e-2


@dataclass(frozen=True)
class NoiseModel:
    """Per-step noise of the logged mean reward: ``s_p^2 / B + s_c^2 / (B G)`` (docs/fitting.md,
    "Joint fits").

    ``prompt_variance`` (s_p^2, which prompts were drawn) and ``completion_variance`` (s_c^2,
    which completions were sampled for them) in reward units squared, maximum-likelihood
    estimates from the per-run residual sums of squares, with standard errors from the Fisher
    information (NaN for an estimate on its bound 0, which is then listed in
    ``unidentified``). ``residual_variance`` is each run's RSS_i / n_i, ``predicted_variance``
    the law's value. ``lr_statistic``/``lr_pvalue`` test the law against a free variance per
    run (chi-square with ``lr_dof = n_runs - 2``); a small p-value says the law does not hold.
    """

    prompt_variance: float
    completion_variance: float
    prompt_variance_stderr: float
    completion_variance_stderr: float
    covariance: NDArray[np.float64] = field(repr=False)
    group_sizes: NDArray[np.float64] = field(repr=False)
    batch_sizes: NDArray[np.float64] = field(repr=False)
    residual_variance: NDArray[np.float64] = field(repr=False)
    predicted_variance: NDArray[np.float64] = field(repr=False)
    lr_statistic: float
    lr_dof: int
    lr_pvalue: float
    unidentified: dict[str, str] = field(default_factory=dict)

    def variance(self, group_size: ArrayLike, batch_size: ArrayLike = 1.0) -> NDArray[np.float64]:
        """Predicted variance of one logged mean reward at group size G and B prompts."""
        g = np.asarray(group_size, dtype=np.float64)
        b = np.asarray(batch_size, dtype=np.float64)
        return np.asarray(self.prompt_variance / b + self.completion_variance / (b * g))


@dataclass(frozen=True)
class GroupSizeTimescales:
    """How the mean curve's timescale depends on the group size: per-run ``tau`` from the
    separate fits, and ``tau = amplitude * G^exponent`` fitted by weighted least squares on
    ``log tau`` (weights ``(tau / stderr)^2``) over the runs whose ``tau`` is identified
    (``used``). ``exponent`` is NaN when fewer than two distinct group sizes remain."""

    group_sizes: NDArray[np.float64]
    tau: NDArray[np.float64]
    tau_stderr: NDArray[np.float64]
    used: NDArray[np.bool_]
    exponent: float
    exponent_stderr: float
    amplitude: float


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
    #: Parameters the data do not identify, with the reason (``"tau"`` for a shared one,
    #: ``"tau[2]"`` for run 2's own); a parameter on its bound has a NaN stderr and is listed
    #: here (mu on its lower bound 0, the exponential, is a point estimate and is not).
    unidentified: dict[str, str] = field(default_factory=dict)
    #: True iff every run's r_inf and tau are identified.
    identified: bool = True
    #: With ``group_sizes``: the two-term noise law fitted under the shared curve; the
    #: likelihood-ratio test of the sharing above then uses it. None otherwise.
    noise: NoiseModel | None = None
    #: With ``group_sizes``: per-run timescales and their power law in G (read it when the
    #: sharing is rejected). None otherwise.
    timescales: GroupSizeTimescales | None = None

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
    #: Per-run parameters on a bound (``"mu[1]"``: NaN stderr), with the reason.
    unidentified: dict[str, str] = field(default_factory=dict)


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


VarianceUpdate = Callable[[NDArray[np.float64], NDArray[np.int64]], NDArray[np.float64]]


def _free_variances(rss: NDArray[np.float64], sizes: NDArray[np.int64]) -> NDArray[np.float64]:
    return np.asarray(rss / sizes, dtype=np.float64)


def _on_bound(
    x: NDArray[np.float64],
    lower: NDArray[np.float64],
    upper: NDArray[np.float64],
    positive: NDArray[np.bool_],
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(at lower, at upper) with fit.py's tolerance."""
    with np.errstate(invalid="ignore"):
        width = upper - lower
        tol_lo = _BOUND_RTOL * np.where(positive, np.abs(lower), width)
        tol_hi = _BOUND_RTOL * np.where(positive, np.abs(upper), width)
        at_lo = np.isfinite(lower) & (x - lower <= np.where(np.isfinite(tol_lo), tol_lo, 0.0))
        at_hi = np.isfinite(upper) & (upper - x <= np.where(np.isfinite(tol_hi), tol_hi, 0.0))
    return at_lo, at_hi & ~at_lo


def _solve(
    series: list[tuple[NDArray[np.float64], NDArray[np.float64]]],
    unpack: Callable[
        [NDArray[np.float64]], tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]]
    ],
    x0: NDArray[np.float64],
    lower: NDArray[np.float64],
    upper: NDArray[np.float64],
    t0: float,
    positive: NDArray[np.bool_],
    variance_update: VarianceUpdate = _free_variances,
    fixed: NDArray[np.bool_] | None = None,
) -> tuple[
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
    bool,
    NDArray[np.bool_],
    NDArray[np.bool_],
]:
    """Alternate weighted least squares and the variance update; returns (x, covariance, rss
    per run, variance per run, converged, at lower bound, at upper bound). Components in
    ``fixed`` stay at their ``x0`` value and count as on their lower bound. The covariance is
    taken on the parameters off their bounds; rows and columns of those on a bound are NaN, and
    the whole covariance is NaN when J^T J is singular (as in fit.py)."""
    if fixed is not None and fixed.any():
        keep = ~fixed
        full = x0.copy()

        def reduced(
            xr: NDArray[np.float64],
        ) -> tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]]:
            x = full.copy()
            x[keep] = xr
            shapes, maps = unpack(x)
            return shapes, [m[:, keep] for m in maps]

        xr, cov_r, rss, variance, converged, lo_r, hi_r = _solve(
            series,
            reduced,
            x0[keep],
            lower[keep],
            upper[keep],
            t0,
            positive[keep],
            variance_update,
        )
        x = full.copy()
        x[keep] = xr
        covariance = np.full((x.size, x.size), np.nan)
        covariance[np.ix_(keep, keep)] = cov_r
        at_lo = fixed.copy()
        at_lo[keep] = lo_r
        at_hi = np.zeros(x.size, dtype=bool)
        at_hi[keep] = hi_r
        return x, covariance, rss, variance, converged, at_lo, at_hi
    from scipy.optimize import least_squares

    sizes = np.array([t.size for t, _ in series], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    variance = np.ones(len(series))

    def residuals_and_jacobian(
        x: NDArray[np.float64], want_jac: bool
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
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
    rss = np.zeros(len(series))
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
        new_variance = np.maximum(variance_update(rss, sizes), 1e-300)
        settled = np.allclose(new_variance, variance, rtol=1e-9, atol=0)
        variance = new_variance
        if settled:
            converged = True
            break
    _, jac = residuals_and_jacobian(x, True)
    assert jac is not None
    at_lo, at_hi = _on_bound(x, lower, upper, positive)
    free = ~(at_lo | at_hi)
    # Variances are ML estimates, so the weighted residuals have unit scale: Cov = (J^T J)^-1,
    # on the free parameters (a parameter held by a bound has no Wald interval, as in fit.py).
    covariance = np.full((x.size, x.size), np.nan)
    jf = jac[:, free]
    info = jf.T @ jf
    d = np.sqrt(np.diag(info))
    if free.any() and np.all(d > 0):
        # Inverse from the eigen-decomposition of the diagonally scaled matrix; a nearly
        # singular one (e.g. mu just above 0, where its column is a combination of r0 and
        # tau's) has no Wald interval: NaN, never the truncated variance a pseudo-inverse gives.
        w, v = np.linalg.eigh(info / np.outer(d, d))
        if w.min() > _SINGULAR_RATIO * w.max():
            covariance[np.ix_(free, free)] = (v / w) @ v.T / np.outer(d, d)
    return x, covariance, rss, variance, converged, at_lo, at_hi


def _log_likelihood(
    rss: NDArray[np.float64], sizes: NDArray[np.int64], variance: NDArray[np.float64]
) -> float:
    """Gaussian log-likelihood of runs with residual sums ``rss`` at noise ``variance``."""
    return float(-0.5 * np.sum(sizes * np.log(2 * np.pi * variance) + rss / variance))


def _gaussian_log_likelihood(rss: NDArray[np.float64], sizes: NDArray[np.int64]) -> float:
    return _log_likelihood(rss, sizes, rss / sizes)


def _noise_design(
    n_runs: int, group_sizes: ArrayLike, batch_sizes: ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(G, B, design matrix [1/B, 1/(B G)]) with the arguments checked."""
    g = np.asarray(group_sizes, dtype=np.float64).reshape(-1)
    if g.shape != (n_runs,):
        raise ValueError(f"group_sizes: expected {n_runs} values, one per run, got {g.size}")
    if not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(f"group_sizes: must be > 0, got {g.min() if g.size else g}")
    if np.unique(g).size < 2:
        raise ValueError(
            "group_sizes: need at least two distinct group sizes to separate s_p and s_c"
        )
    if batch_sizes is None:
        b = np.ones(n_runs)
    else:
        b = np.broadcast_to(np.asarray(batch_sizes, dtype=np.float64), (n_runs,)).copy()
        if not np.all(np.isfinite(b)) or np.any(b <= 0):
            raise ValueError(f"batch_sizes: must be > 0, got {b.min()}")
    return g, b, np.column_stack([1.0 / b, 1.0 / (b * g)])


def _noise_ml(
    rss: NDArray[np.float64], sizes: NDArray[np.int64], design: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Maximum-likelihood (s_p^2, s_c^2) >= 0 of ``v_i = design_i . theta`` from residual sums:
    minimises ``sum_i n_i log v_i + RSS_i / v_i``. Returns (theta, covariance from the expected
    Fisher information ``sum_i n_i / (2 v_i^2) d_i d_i^T``; NaN rows for an estimate on 0).

    Interior optimum by Fisher scoring, which here is iteratively reweighted least squares of
    ``RSS_i / n_i`` on the design with weights ``n_i / v_i^2`` (step halving keeps it
    descending and inside ``theta > 0``); the two boundary optima (one variance 0) are in
    closed form, ``theta_j = sum_i (RSS_i / d_ij) / sum_i n_i``; the lowest objective wins.
    """
    s2 = rss / sizes

    def objective(theta: NDArray[np.float64]) -> float:
        v = design @ theta
        if np.any(v <= 0) or np.any(theta < 0):
            return math.inf
        return float(np.sum(sizes * np.log(v) + rss / v))

    candidates = []
    for j in range(2):
        theta = np.zeros(2)
        theta[j] = float(np.sum(rss / design[:, j]) / np.sum(sizes))
        candidates.append(theta)
    # Interior: start from the better boundary optimum moved inside.
    best_boundary = min(candidates, key=objective)
    theta = np.maximum(best_boundary, 0.5 * best_boundary.max())
    value = objective(theta)
    for _ in range(200):
        w = sizes / (design @ theta) ** 2
        proposal = np.linalg.solve(design.T @ (design * w[:, None]), design.T @ (w * s2))
        step = proposal - theta
        accepted = False
        for _ in range(40):
            trial = theta + step
            trial_value = objective(trial)
            if trial_value <= value:
                accepted = True
                break
            step = step / 2.0
        if not accepted:
            break
        done = np.all(np.abs(trial - theta) <= 1e-13 * np.abs(trial)) or value - trial_value <= (
            1e-15 * abs(value)
        )
        theta, value = trial, trial_value
        if done:
            break
    if np.all(theta > 0):
        candidates.append(theta)
    theta = min(candidates, key=objective).copy()
    v = design @ theta
    info = (design * (sizes / (2.0 * v**2))[:, None]).T @ design
    covariance = np.full((2, 2), np.nan)
    free = theta > 0
    covariance[np.ix_(free, free)] = np.linalg.inv(info[np.ix_(free, free)])
    return theta, covariance


def fit_noise_model(
    residual_sums: ArrayLike,
    n_points: ArrayLike,
    group_sizes: ArrayLike,
    batch_sizes: ArrayLike | None = None,
) -> NoiseModel:
    """Fit ``Var = s_p^2 / B + s_c^2 / (B G)`` to per-run residual sums of squares.

    Parameters
    ----------
    residual_sums : array_like
        RSS_i of each run around its mean curve (reward units squared).
    n_points : array_like
        Number of points behind each RSS_i.
    group_sizes, batch_sizes : array_like
        G_i (completions per prompt) and B_i (prompts per step; default 1, which makes
        ``s_p^2`` the G-independent part of one logged mean's variance).

    The per-step residuals are taken as independent Gaussian with variance v_i; the two
    variances are their maximum-likelihood estimates (docs/fitting.md, "Joint fits").
    """
    rss = np.asarray(residual_sums, dtype=np.float64).reshape(-1)
    sizes = np.asarray(n_points, dtype=np.int64).reshape(-1)
    if rss.size < 2 or sizes.shape != rss.shape:
        raise ValueError(
            f"n_points: expected one count per residual sum ({rss.size}), got {sizes.size}"
        )
    if not np.all(np.isfinite(rss)) or np.any(rss < 0):
        raise ValueError(f"residual_sums: must be >= 0, got {rss.min()}")
    if np.any(sizes < 1):
        raise ValueError(f"n_points: must be > 0, got {sizes.min()}")
    g, b, design = _noise_design(rss.size, group_sizes, batch_sizes)
    theta, cov = _noise_ml(rss, sizes, design)
    return _noise_result(theta, cov, g, b, design, rss, sizes)


def _noise_result(
    theta: NDArray[np.float64],
    cov: NDArray[np.float64],
    g: NDArray[np.float64],
    b: NDArray[np.float64],
    design: NDArray[np.float64],
    rss: NDArray[np.float64],
    sizes: NDArray[np.int64],
) -> NoiseModel:
    from scipy.special import chdtrc

    predicted = np.maximum(design @ theta, 1e-300)
    # The law against a free variance per run, on the same residuals.
    lr = max(
        0.0,
        2.0 * (_gaussian_log_likelihood(rss, sizes) - _log_likelihood(rss, sizes, predicted)),
    )
    dof = rss.size - 2
    se = np.sqrt(np.diag(cov))
    unidentified = {
        name: f"on its bound 0: the data show no {what} beyond noise"
        for name, what, value in (
            ("prompt_variance", "G-independent variance", theta[0]),
            ("completion_variance", "variance falling with G", theta[1]),
        )
        if value == 0.0
    }
    return NoiseModel(
        prompt_variance=float(theta[0]),
        completion_variance=float(theta[1]),
        prompt_variance_stderr=float(se[0]),
        completion_variance_stderr=float(se[1]),
        covariance=cov,
        group_sizes=g,
        batch_sizes=b,
        residual_variance=rss / sizes,
        predicted_variance=predicted,
        lr_statistic=lr,
        lr_dof=dof,
        lr_pvalue=float(chdtrc(dof, lr)) if dof > 0 else math.nan,
        unidentified=unidentified,
    )


def _bound_reasons(
    labels: Sequence[str],
    names: Sequence[str],
    x: NDArray[np.float64],
    lower: NDArray[np.float64],
    upper: NDArray[np.float64],
    at_lo: NDArray[np.bool_],
    at_hi: NDArray[np.bool_],
) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, (label, name) in enumerate(zip(labels, names, strict=True)):
        if at_lo[k] and name == "mu" and lower[k] == 0.0:
            continue  # mu = 0: the nested exponential, a point estimate on the physical boundary
        if at_lo[k] or at_hi[k]:
            word, bound = ("lower", lower[k]) if at_lo[k] else ("upper", upper[k])
            out[label] = (
                f"{name} = {x[k]:.4g} is at its {word} bound {bound:.4g}: set by the bound, "
                "not the data (stderr NaN)"
            )
    return out


def _timescales(separate: Sequence[FitResult], g: NDArray[np.float64]) -> GroupSizeTimescales:
    tau = np.array([s.params["tau"] for s in separate])
    se = np.array([s.stderr["tau"] for s in separate])
    used = np.array([s.identified and "tau" not in s.unidentified for s in separate])
    used &= np.isfinite(se) & (se > 0) & (tau > 0)
    exponent = exponent_se = amplitude = math.nan
    if np.unique(g[used]).size >= 2:
        x = np.column_stack([np.ones(int(used.sum())), np.log(g[used])])
        y = np.log(tau[used])
        w = (tau[used] / se[used]) ** 2  # 1 / Var(log tau) by the delta method
        xtwx = x.T @ (x * w[:, None])
        coef = np.linalg.solve(xtwx, x.T @ (w * y))
        cov = np.linalg.inv(xtwx)
        dof = y.size - 2
        if dof > 0:  # scatter beyond the stated errors widens the interval, never narrows it
            chi2 = float(np.sum(w * (y - x @ coef) ** 2))
            cov = cov * max(1.0, chi2 / dof)
        amplitude, exponent = math.exp(coef[0]), float(coef[1])
        exponent_se = math.sqrt(cov[1, 1])
    return GroupSizeTimescales(
        group_sizes=g,
        tau=tau,
        tau_stderr=se,
        used=used,
        exponent=exponent,
        exponent_stderr=exponent_se,
        amplitude=amplitude,
    )


def fit_joint(
    runs: Sequence[tuple[ArrayLike, ArrayLike]],
    *,
    shared: Sequence[str] = _SHAPE,
    t0: float = 0.0,
    group_sizes: ArrayLike | None = None,
    batch_sizes: ArrayLike | None = None,
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
    group_sizes : array_like, optional
        G of each run (at least two distinct values). The noise variance of run i is then
        ``s_p^2 / B_i + s_c^2 / (B_i G_i)`` instead of free per run (docs/fitting.md, "Joint
        fits"): ``noise`` holds the two estimates, the likelihood-ratio test of the sharing is
        made under that law (against separate curves under the same law), and ``timescales``
        says how each run's own ``tau`` depends on G.
    batch_sizes : array_like, optional
        B of each run (prompts per step; scalar or one per run; default 1).

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
    n_runs = len(series)
    if batch_sizes is not None and group_sizes is None:
        raise ValueError("group_sizes: required when batch_sizes is given")
    design = None
    g = b = np.zeros(0)
    if group_sizes is not None:
        g, b, design = _noise_design(n_runs, group_sizes, batch_sizes)
    separate = [fit(t, r, t0=t0) for t, r in series]
    if any(s.status == "bad_input" for s in separate):
        raise ValueError("runs: a run could not be fitted on its own (bad input)")
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
    names = [*shared, *(name for _ in range(n_runs) for name in free)]
    labels = [*shared, *(f"{name}[{i}]" for i in range(n_runs) for name in free)]
    positive = np.array([name in ("tau", "mu") for name in names])

    def unpack(
        x: NDArray[np.float64],
    ) -> tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]]:
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
    sizes = np.array([t.size for t, _ in series], dtype=np.int64)
    separate_rss = np.array([s.rss for s in separate])
    update: VarianceUpdate = _free_variances
    if design is not None:
        noise_design = design

        def update(rss: NDArray[np.float64], n: NDArray[np.int64]) -> NDArray[np.float64]:
            theta, _ = _noise_ml(rss, n, noise_design)
            return np.asarray(noise_design @ theta, dtype=np.float64)

    x, covariance, rss, variance, converged, at_lo, at_hi = _solve(
        series, unpack, x0, lower, upper, t0, positive, update
    )
    is_mu = np.array([name == "mu" for name in names])
    near_zero = is_mu & (lower == 0.0) & (x > 0.0) & (x <= _NESTED_MU_MAX)
    if near_zero.any():
        start = x.copy()
        start[near_zero] = 0.0
        nested = _solve(series, unpack, start, lower, upper, t0, positive, update, near_zero)
        full_ll = _log_likelihood(rss, sizes, variance)
        nested_ll = _log_likelihood(nested[2], sizes, nested[3])
        if 2.0 * (full_ll - nested_ll) <= 2.0 * int(near_zero.sum()):  # not worse by AIC
            x, covariance, rss, variance, converged, at_lo, at_hi = nested

    noise = None
    timescales = None
    if design is None:
        log_lik = _gaussian_log_likelihood(rss, sizes)
        separate_log_lik = _gaussian_log_likelihood(separate_rss, sizes)
        n_variance_params = n_runs
    else:
        theta, theta_cov = _noise_ml(rss, sizes, design)
        noise = _noise_result(theta, theta_cov, g, b, design, rss, sizes)
        variance = noise.predicted_variance
        log_lik = _log_likelihood(rss, sizes, variance)
        # Separate curves under the same law: each run's own curve does not depend on its
        # (scalar) variance, so the alternative's optimum is the separate fits' RSS with the
        # law refitted to them.
        theta_sep, _ = _noise_ml(separate_rss, sizes, design)
        separate_log_lik = _log_likelihood(
            separate_rss, sizes, np.maximum(design @ theta_sep, 1e-300)
        )
        n_variance_params = 2
        timescales = _timescales(separate, g)
    # Both models have the same noise description; sharing removes (n_runs - 1) copies of each
    # shared parameter.
    lr_dof = (n_runs - 1) * len(shared)
    lr_stat = max(0.0, 2.0 * (separate_log_lik - log_lik))
    from scipy.special import chdtrc

    stderr_all = np.sqrt(np.clip(np.diag(covariance), 0.0, None))  # NaN: on its bound
    shapes, _ = unpack(x)
    unidentified = _bound_reasons(labels, names, x, lower, upper, at_lo, at_hi)
    for k, label in enumerate(labels):
        if label not in unidentified and not math.isfinite(stderr_all[k]):
            if not (names[k] == "mu" and at_lo[k] and lower[k] == 0.0):
                unidentified[label] = "standard error undefined (the data do not determine it)"
    identified = not any(key.split("[")[0] in ("r_inf", "tau") for key in unidentified)
    off_bound = ~(at_lo | at_hi)
    singular = bool(off_bound.any() and np.all(np.isnan(np.diag(covariance)[off_bound])))
    status = "singular" if singular else "converged" if converged else "max_iter"
    return JointFit(
        shared=shared,
        params={name: float(x[k]) for k, name in enumerate(shared)},
        stderr={name: float(stderr_all[k]) for k, name in enumerate(shared)},
        run_params=[dict(zip(_SHAPE, map(float, s), strict=True)) for s in shapes],
        covariance=covariance,
        noise_variance=variance,
        n_points=sizes,
        log_likelihood=log_lik,
        aic=2.0 * (n_x + n_variance_params) - 2.0 * log_lik,
        lr_statistic=lr_stat,
        lr_dof=lr_dof,
        lr_pvalue=float(chdtrc(lr_dof, lr_stat)),
        status=status,
        t0=t0,
        unidentified=unidentified,
        identified=identified,
        noise=noise,
        timescales=timescales,
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

    def unpack(
        x: NDArray[np.float64],
    ) -> tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]]:
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

    names = ["log_amplitude", "exponent", *(n for _ in range(n_runs) for n in per_run)]
    labels = [*names[:2], *(f"{n}[{i}]" for i in range(n_runs) for n in per_run)]
    positive = np.array([name == "mu" for name in names])
    x, covariance, rss, variance, converged, at_lo, at_hi = _solve(
        series, unpack, x0, lower, upper, t0, positive
    )
    shapes, _ = unpack(x)
    amplitude = math.exp(x[0])
    n_points = np.array([t.size for t, _ in series], dtype=np.int64)
    return ScalingFit(
        amplitude=amplitude,
        exponent=float(x[1]),
        amplitude_stderr=amplitude
        * math.sqrt(max(covariance[0, 0], 0.0)),  # delta method (NaN kept)
        exponent_stderr=math.sqrt(max(covariance[1, 1], 0.0)),
        run_params=[dict(zip(_SHAPE, map(float, s), strict=True)) for s in shapes],
        noise_variance=variance,
        log_likelihood=_gaussian_log_likelihood(rss, n_points),
        status="converged" if converged else "max_iter",
        t0=t0,
        unidentified=_bound_reasons(labels, names, x, lower, upper, at_lo, at_hi),
    )
