"""Fit reward curves: one series (:func:`fit`), thousands at once (:func:`fit_many`), model choice
(:func:`compare`).

Every fit is a bounded Levenberg-Marquardt least-squares fit with the analytic Jacobian, run in
the compiled core (docs/fitting.md). Time is in optimizer steps, rewards in reward units.

Models (docs/fitting.md, "Models"):

- ``"oscillator"``  (r0, r_inf, tau, mu): the closed-form damped oscillator from rest at ``t0``.
- ``"exponential"`` (r0, r_inf, tau): the oscillator with ``mu`` fixed at 0 (nested exactly).
- ``"logistic"``    (r_lo, r_hi, t_mid, s): ``r_lo + (r_hi - r_lo) / (1 + exp(-(t - t_mid) / s))``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FIT_MODELS",
    "FIT_STATUSES",
    "FitResult",
    "BatchFit",
    "fit",
    "fit_many",
    "compare",
    "fit_param_names",
    "r2_noise_ceiling",
    "r2_window_means",
    "noise_variance_local",
]

ModelName = Literal["exponential", "oscillator", "logistic"]

#: Models the fitter knows, and their parameters in column order.
FIT_MODELS: dict[str, tuple[str, ...]] = {
    "exponential": ("r0", "r_inf", "tau"),
    "oscillator": ("r0", "r_inf", "tau", "mu"),
    "logistic": ("r_lo", "r_hi", "t_mid", "s"),
}

#: Status names indexed by the core's numeric codes (defined once, kFitStatusNames in fit.hpp).
FIT_STATUSES: tuple[str, ...] = _core.FIT_STATUS_NAMES

# mu = 1/4 separates overdamped from oscillatory (docs/model.md, closed-form trajectory).
_CRITICAL_MU = 0.25
# A model must beat the constant by more than this AIC margin to count as a trend.
_NO_TREND_DELTA_AIC = 2.0

BoundsLike = Mapping[str, tuple[float | None, float | None]] | Sequence[Sequence[float | None]]
P0Like = Mapping[str, float] | Sequence[float]


def fit_param_names(model: str) -> tuple[str, ...]:
    """Parameter names of ``model`` in column order (docs/fitting.md, "Models")."""
    _check_model(model)
    return FIT_MODELS[model]


def _check_model(model: str) -> None:
    if model not in FIT_MODELS:
        raise ValueError(f"model: expected one of {sorted(FIT_MODELS)}, got {model!r}")


def _regime(model: str, params: Mapping[str, float], stderr: Mapping[str, float]) -> str | None:
    """Regime by mu vs 1/4; "regime not identified" when mu +- 2 stderr straddles 1/4."""
    if model == "exponential":
        return "overdamped"  # mu = 0 exactly
    if model != "oscillator":
        return None
    mu, se = params["mu"], stderr["mu"]
    if not math.isfinite(mu):
        return None
    if math.isfinite(se) and mu - 2 * se < _CRITICAL_MU < mu + 2 * se:
        return "regime not identified"
    if mu < _CRITICAL_MU:
        return "overdamped"
    if mu > _CRITICAL_MU:
        return "oscillatory"
    return "critical"


def _predict(
    model: str, params: Mapping[str, float], t: ArrayLike, t0: float
) -> NDArray[np.float64]:
    times = np.ascontiguousarray(t, dtype=np.float64).reshape(-1)
    if model == "logistic":
        value, _ = _core.logistic_curve(
            times, params["r_lo"], params["r_hi"], params["t_mid"], params["s"]
        )
        return np.asarray(value)
    from .trajectory import trajectory

    return trajectory(
        times, params["r0"], params["r_inf"], params["tau"], params.get("mu", 0.0), t0=t0
    )


@dataclass(frozen=True)
class FitResult:
    """One fitted reward curve (docs/fitting.md, "Statistics").

    ``params``/``stderr`` map parameter names to values (reward units, steps; ``mu``
    dimensionless). ``stderr`` is NaN for a parameter held at a bound (``at_bound``) and for
    every parameter when ``status`` is ``"singular"``. ``covariance`` is s^2 (J^T W J)^-1 on
    the free parameters, ordered as ``params``. ``aic``/``bic`` use the Gaussian likelihood with
    the noise variance estimated. ``regime`` is set for the oscillator (and exponential).
    ``r2_ceiling`` and ``r2_window`` put the raw ``r2`` in context (docs/fitting.md,
    "R^2 and noise"): the best R^2 the noise allows, and R^2 on window means.
    """

    model: str
    params: dict[str, float]
    stderr: dict[str, float]
    covariance: NDArray[np.float64] = field(repr=False)
    r2: float
    rss: float
    sigma2: float
    aic: float
    bic: float
    n_iter: int
    status: str
    regime: str | None
    n_points: int
    at_bound: dict[str, bool] = field(repr=False)
    bounds: dict[str, tuple[float, float]] = field(repr=False)
    reason: str = ""
    t0: float = 0.0
    #: Highest R^2 any curve can reach given the noise of the logged means (docs/fitting.md,
    #: "R^2 and noise"); from ``noise_sd`` when :func:`fit` is given it, else estimated.
    r2_ceiling: float = math.nan
    #: R^2 of the fit on means over consecutive windows of ``window`` points.
    r2_window: float = math.nan
    window: int = 0

    def predict(self, t: ArrayLike) -> NDArray[np.float64]:
        """Fitted mean reward at steps ``t``."""
        return _predict(self.model, self.params, t, self.t0)


@dataclass(frozen=True)
class BatchFit:
    """Fits of many series, one row each, in input order (docs/fitting.md, "Batches").

    Arrays: ``params``/``stderr``/``lower``/``upper``/``at_bound`` (n, p), ``covariance``
    (n, p, p), ``r2``/``rss``/``sigma2``/``aic``/``bic``/``n_iter``/``n_points`` (n,),
    ``status``/``regime``/``reason`` (n,) object arrays of strings. No series is dropped: bad
    series have ``status == "bad_input"``, NaN numbers and a ``reason``.
    """

    model: str
    param_names: tuple[str, ...]
    params: NDArray[np.float64] = field(repr=False)
    stderr: NDArray[np.float64] = field(repr=False)
    covariance: NDArray[np.float64] = field(repr=False)
    lower: NDArray[np.float64] = field(repr=False)
    upper: NDArray[np.float64] = field(repr=False)
    at_bound: NDArray[np.bool_] = field(repr=False)
    r2: NDArray[np.float64] = field(repr=False)
    rss: NDArray[np.float64] = field(repr=False)
    sigma2: NDArray[np.float64] = field(repr=False)
    aic: NDArray[np.float64] = field(repr=False)
    bic: NDArray[np.float64] = field(repr=False)
    n_iter: NDArray[np.int32] = field(repr=False)
    n_points: NDArray[np.int32] = field(repr=False)
    status: NDArray[np.object_] = field(repr=False)
    regime: NDArray[np.object_] = field(repr=False)
    reason: NDArray[np.object_] = field(repr=False)
    t0: float = 0.0
    #: (n,) R^2 noise ceiling (local smoother), R^2 on window means and the window used
    #: (docs/fitting.md, "R^2 and noise"); None only for objects built by older code.
    r2_ceiling: NDArray[np.float64] | None = field(default=None, repr=False)
    r2_window: NDArray[np.float64] | None = field(default=None, repr=False)
    window: NDArray[np.int32] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.params.shape[0])

    def __getitem__(self, i: int) -> FitResult:
        """Row ``i`` as a :class:`FitResult`."""
        names = self.param_names
        return FitResult(
            model=self.model,
            params={k: float(v) for k, v in zip(names, self.params[i], strict=True)},
            stderr={k: float(v) for k, v in zip(names, self.stderr[i], strict=True)},
            covariance=self.covariance[i].copy(),
            r2=float(self.r2[i]),
            rss=float(self.rss[i]),
            sigma2=float(self.sigma2[i]),
            aic=float(self.aic[i]),
            bic=float(self.bic[i]),
            n_iter=int(self.n_iter[i]),
            status=str(self.status[i]),
            regime=self.regime[i],
            n_points=int(self.n_points[i]),
            at_bound={k: bool(v) for k, v in zip(names, self.at_bound[i], strict=True)},
            bounds={
                k: (float(lo), float(hi))
                for k, lo, hi in zip(names, self.lower[i], self.upper[i], strict=True)
            },
            reason=str(self.reason[i]),
            t0=self.t0,
            r2_ceiling=math.nan if self.r2_ceiling is None else float(self.r2_ceiling[i]),
            r2_window=math.nan if self.r2_window is None else float(self.r2_window[i]),
            window=0 if self.window is None else int(self.window[i]),
        )

    def to_pandas(self) -> pd.DataFrame:
        """One row per series: parameters, ``<name>_stderr``, statistics, status, regime."""
        import pandas as pd

        cols: dict[str, Any] = {}
        for j, name in enumerate(self.param_names):
            cols[name] = self.params[:, j]
        for j, name in enumerate(self.param_names):
            cols[f"{name}_stderr"] = self.stderr[:, j]
        for name in (
            "r2",
            "r2_ceiling",
            "r2_window",
            "rss",
            "sigma2",
            "aic",
            "bic",
            "n_iter",
            "n_points",
        ):
            if getattr(self, name) is not None:
                cols[name] = getattr(self, name)
        cols["status"] = self.status
        cols["regime"] = self.regime
        cols["reason"] = self.reason
        return pd.DataFrame(cols)


# ---------------------------------------------------------------------------------------------
# argument handling


def _parse_bounds(
    model: str, bounds: BoundsLike | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(lower, upper) arrays with NaN for "derive from the data"."""
    names = FIT_MODELS[model]
    lower = np.full(len(names), np.nan)
    upper = np.full(len(names), np.nan)
    if bounds is None:
        return lower, upper
    if isinstance(bounds, Mapping):
        unknown = set(bounds) - set(names)
        if unknown:
            raise ValueError(f"bounds: unknown parameter(s) {sorted(unknown)} for model {model!r}")
        for name, pair in bounds.items():
            try:
                lo, hi = pair
            except (TypeError, ValueError):
                raise ValueError(f"bounds: {name!r} must be a (lower, upper) pair") from None
            j = names.index(name)
            lower[j] = np.nan if lo is None else float(lo)
            upper[j] = np.nan if hi is None else float(hi)
    else:
        try:
            lo_seq, hi_seq = bounds
        except (TypeError, ValueError):
            raise ValueError("bounds: expected a dict {name: (lo, hi)} or (lower, upper)") from None
        if len(lo_seq) != len(names) or len(hi_seq) != len(names):
            raise ValueError(f"bounds: expected {len(names)} lower and upper values for {names}")
        lower = np.array([np.nan if v is None else float(v) for v in lo_seq])
        upper = np.array([np.nan if v is None else float(v) for v in hi_seq])
    for j, name in enumerate(names):
        lo, hi = lower[j], upper[j]
        if lo == np.inf or hi == -np.inf:
            raise ValueError(f"bounds: infinite bound on the wrong side for {name!r}")
        if not np.isnan(lo) and not np.isnan(hi) and lo > hi:
            raise ValueError(f"bounds: lower {lo} > upper {hi} for {name!r}")
        if name in ("tau", "s") and not np.isnan(lo) and not lo > 0:
            raise ValueError(f"bounds: {name!r} lower bound must be > 0, got {lo}")
        if name in ("tau", "s") and not np.isnan(hi) and not hi > 0:
            raise ValueError(f"bounds: {name!r} upper bound must be > 0, got {hi}")
        if name == "mu" and not np.isnan(lo) and not lo >= 0:
            raise ValueError(f"bounds: 'mu' lower bound must be >= 0, got {lo}")
    return lower, upper


def _parse_p0(model: str, p0: P0Like | None) -> NDArray[np.float64] | None:
    if p0 is None:
        return None
    names = FIT_MODELS[model]
    if isinstance(p0, Mapping):
        missing = set(names) - set(p0)
        extra = set(p0) - set(names)
        if missing or extra:
            raise ValueError(f"p0: expected exactly the keys {names}, got {sorted(p0)}")
        values = np.array([float(p0[k]) for k in names])
    else:
        values = np.asarray(p0, dtype=np.float64).reshape(-1)
        if values.size != len(names):
            raise ValueError(f"p0: expected {len(names)} values {names}, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError("p0: values must be finite")
    return values


def _as_1d(name: str, x: ArrayLike) -> NDArray[np.float64]:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected numbers") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    return arr


def _threads(threads: int | None) -> int:
    if threads is None:
        return os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads: expected a positive integer or None, got {threads!r}")
    return int(threads)


def _options(
    t0: float, max_iter: int, n_starts: int, nested_mu0: bool = True, window: int | None = None
) -> _core.FitOptions:
    if not math.isfinite(float(t0)):
        raise ValueError("t0: must be finite")
    if int(max_iter) < 1:
        raise ValueError("max_iter: must be >= 1")
    if int(n_starts) < 1:
        raise ValueError("n_starts: must be >= 1")
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1
    ):
        raise ValueError(f"window: expected a positive integer or None, got {window!r}")
    # The core range-checks the integers (a ValueError naming the argument, also beyond int64).
    return _core.FitOptions(
        t0=float(t0),
        max_iter=max_iter,
        n_starts=n_starts,
        nested_mu0=bool(nested_mu0),
        window=0 if window is None else window,
    )


def _to_batch(
    model: str, raw: dict[str, Any], t0: float, reason_override: dict[int, str]
) -> BatchFit:
    names = FIT_MODELS[model]
    status = np.array([FIT_STATUSES[int(c)] for c in raw["status"]], dtype=object)
    reason = np.array(list(raw["reason"]), dtype=object)
    for i, why in reason_override.items():
        reason[i] = why
    params, stderr = raw["params"], raw["stderr"]
    regime = np.empty(len(status), dtype=object)
    for i in range(len(status)):
        if status[i] == "bad_input":
            regime[i] = None
        else:
            values = dict(zip(names, params[i], strict=True))
            regime[i] = _regime(model, values, dict(zip(names, stderr[i], strict=True)))
    return BatchFit(
        model=model,
        param_names=names,
        params=params,
        stderr=stderr,
        covariance=raw["covariance"],
        lower=raw["lower"],
        upper=raw["upper"],
        at_bound=raw["at_bound"],
        r2=raw["r2"],
        rss=raw["rss"],
        sigma2=raw["sigma2"],
        aic=raw["aic"],
        bic=raw["bic"],
        n_iter=raw["n_iter"],
        n_points=raw["n_points"],
        status=status,
        regime=regime,
        reason=reason,
        t0=t0,
        r2_ceiling=raw["r2_ceiling"],
        r2_window=raw["r2_window"],
        window=raw["window"],
    )


# ---------------------------------------------------------------------------------------------
# R^2 in the presence of sampling noise (docs/fitting.md, "R^2 and noise")


def noise_variance_local(t: ArrayLike, r: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Noise variance of unit-weight observations from a local linear smoother's residuals.

    Each interior point is compared with the straight line through its two neighbours
    (Gasser, Sroka and Jennen-Steinmetz 1986): ``e_i = a_i r_{i-1} + b_i r_{i+1} - r_i`` with
    ``a_i = (t_{i+1} - t_i) / (t_{i+1} - t_{i-1})``, ``b_i = 1 - a_i``. With independent noise of
    variance ``sigma^2 / w_i``, ``E e_i^2 = sigma^2 (a_i^2 / w_{i-1} + b_i^2 / w_{i+1} + 1 / w_i)``
    up to the curve's curvature, so ``sigma^2`` is the mean of ``e_i^2`` over that factor.
    Units: reward^2 (for unit weights, the variance of one logged mean reward).
    """
    times = _as_1d("t", t)
    rewards = _as_1d("r", r)
    if times.shape != rewards.shape:
        raise ValueError(f"r: shape {rewards.shape} does not match t: shape {times.shape}")
    if rewards.size < 3:
        raise ValueError("r: need at least 3 points to estimate the noise")
    w = np.ones_like(rewards) if weights is None else _as_1d("weights", weights)
    if w.shape != rewards.shape or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("weights: must match r and be finite and > 0")
    gap = np.diff(times)
    if np.any(gap <= 0):
        raise ValueError("t: must be strictly increasing")
    a = gap[1:] / (gap[1:] + gap[:-1])
    b = 1.0 - a
    e = a * rewards[:-2] + b * rewards[2:] - rewards[1:-1]
    factor = a**2 / w[:-2] + b**2 / w[2:] + 1.0 / w[1:-1]
    return float(np.mean(e**2 / factor))


def r2_noise_ceiling(
    t: ArrayLike,
    r: ArrayLike,
    *,
    noise_sd: float | ArrayLike | None = None,
    weights: ArrayLike | None = None,
) -> float:
    """The R^2 a perfect curve would reach on noisy data: ``1 - E[rss_true] / tss``.

    ``noise_sd`` is the standard deviation of each logged mean reward (scalar or per step),
    e.g. ``reward_std / sqrt(B G)`` for a batch of B prompts with G samples each; then
    ``E[rss_true] = sum w_i noise_sd_i^2``. Without it the noise is estimated by
    :func:`noise_variance_local` and ``E[rss_true] = n sigma^2``. Weighted as ``fit`` is.
    """
    times = _as_1d("t", t)
    rewards = _as_1d("r", r)
    w = np.ones_like(rewards) if weights is None else _as_1d("weights", weights)
    if w.shape != rewards.shape:
        raise ValueError(f"weights: shape {w.shape} does not match r: shape {rewards.shape}")
    mean = float(np.sum(w * rewards) / np.sum(w))
    tss = float(np.sum(w * (rewards - mean) ** 2))
    if noise_sd is None:
        expected_rss = rewards.size * noise_variance_local(times, rewards, w)
    else:
        sd = np.broadcast_to(np.asarray(noise_sd, dtype=np.float64), rewards.shape)
        if not np.all(np.isfinite(sd)) or np.any(sd < 0):
            raise ValueError("noise_sd: must be finite and >= 0, a scalar or one value per step")
        expected_rss = float(np.sum(w * sd**2))
    return 1.0 - expected_rss / tss if tss > 0 else math.nan


def r2_window_means(
    r: ArrayLike, fitted: ArrayLike, window: int, weights: ArrayLike | None = None
) -> float:
    """R^2 of ``fitted`` against ``r`` after averaging both over consecutive windows.

    Windows are blocks of ``window`` points in order (the last may be shorter); within a
    window, means are weighted by ``weights``; windows count equally. Averaging divides the
    noise variance by about ``window`` while keeping the trend, so this R^2 says how well the
    curve follows the trend (docs/fitting.md, "R^2 and noise").
    """
    rewards = _as_1d("r", r)
    f = _as_1d("fitted", fitted)
    if f.shape != rewards.shape:
        raise ValueError(f"fitted: shape {f.shape} does not match r: shape {rewards.shape}")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window: expected a positive integer, got {window!r}")
    w = np.ones_like(rewards) if weights is None else _as_1d("weights", weights)
    if w.shape != rewards.shape:
        raise ValueError(f"weights: shape {w.shape} does not match r: shape {rewards.shape}")
    block = np.arange(rewards.size) // int(window)
    sw = np.bincount(block, weights=w)
    y_mean = np.bincount(block, weights=w * rewards) / sw
    f_mean = np.bincount(block, weights=w * f) / sw
    if y_mean.size < 2:
        return math.nan
    tss = float(np.sum((y_mean - y_mean.mean()) ** 2))
    return 1.0 - float(np.sum((y_mean - f_mean) ** 2)) / tss if tss > 0 else math.nan


# ---------------------------------------------------------------------------------------------
# public API


def fit(
    t: ArrayLike,
    r: ArrayLike,
    model: ModelName = "oscillator",
    *,
    weights: ArrayLike | None = None,
    bounds: BoundsLike | None = None,
    p0: P0Like | None = None,
    t0: float = 0.0,
    max_iter: int = 200,
    n_starts: int = 2,
    nested_mu0: bool = True,
    noise_sd: float | ArrayLike | None = None,
    window: int | None = None,
) -> FitResult:
    """Fit one reward curve (docs/fitting.md).

    Parameters
    ----------
    t : array_like
        Steps, strictly increasing, finite.
    r : array_like
        Mean reward at each step, finite (use :func:`fit_many` to have NaN gaps removed).
    model : {"oscillator", "exponential", "logistic"}
    weights : array_like, optional
        Relative precisions (>= 0), e.g. 1 / variance of each logged mean.
    bounds : dict or (lower, upper), optional
        ``{"tau": (20, None), ...}`` or two sequences in parameter order; ``None``/NaN keeps
        the data-driven default (docs/fitting.md, "Bounds").
    p0 : dict or sequence, optional
        An extra starting point, tried besides the automatic ones.
    t0 : float
        Start of training for the oscillator/exponential (held fixed): the from-rest time.
    max_iter, n_starts : int
        LM trial steps per start; number of automatic starts (distinct families).
    nested_mu0 : bool
        Oscillator only. An optimum with ``0 < mu <= 0.01`` lies where ``mu`` is identifiable
        only at second order (J^T W J is nearly rank-deficient); the nested exponential (``mu``
        held at 0) is then fitted too and reported, ``mu`` on its bound with NaN stderr, if it
        is not worse by AIC; ``reason`` says so (docs/fitting.md, "Identifiability at mu = 0").
        ``False`` always reports the unrestricted optimum.
    noise_sd : float or array_like, optional
        Standard deviation of each logged mean reward (e.g. ``reward_std / sqrt(B G)``) for
        ``r2_ceiling``; by default estimated from a local smoother's residuals.
    window : int, optional
        Points per window for ``r2_window`` (default ``max(2, n // 20)``, about 20 windows).

    Raises
    ------
    ValueError
        On bad input, naming the argument (NaN/inf, too few points, constant series,
        unsorted or duplicate t, shape mismatch, invalid bounds or p0).
    """
    _check_model(model)
    times = _as_1d("t", t)
    rewards = _as_1d("r", r)
    if times.shape != rewards.shape:
        raise ValueError(f"r: shape {rewards.shape} does not match t: shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError("t: contains NaN or inf")
    if not np.all(np.isfinite(rewards)):
        raise ValueError("r: contains NaN or inf (fit_many removes NaN gaps)")
    w = None
    if weights is not None:
        w = _as_1d("weights", weights)
        if w.shape != rewards.shape:
            raise ValueError(f"weights: shape {w.shape} does not match r: shape {rewards.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("weights: must be finite and >= 0")
    batch = fit_many(
        [(times, rewards)],
        model=model,
        threads=1,
        weights=None if w is None else [w],
        bounds=bounds,
        p0=p0,
        t0=t0,
        max_iter=max_iter,
        n_starts=n_starts,
        nested_mu0=nested_mu0,
        window=window,
    )
    result = batch[0]
    if result.status == "bad_input":
        raise ValueError(result.reason)
    if noise_sd is None:
        return result  # r2_ceiling from the core's local-smoother estimate
    keep = slice(None) if w is None else w > 0  # zero weights are not observations
    sd_arr = np.asarray(noise_sd, dtype=np.float64)
    if sd_arr.ndim > 0 and sd_arr.shape != rewards.shape:
        raise ValueError(f"noise_sd: shape {sd_arr.shape} does not match r: shape {rewards.shape}")
    ceiling = r2_noise_ceiling(
        times[keep],
        rewards[keep],
        noise_sd=sd_arr if sd_arr.ndim == 0 else sd_arr[keep],
        weights=None if w is None else w[keep],
    )
    return dataclasses.replace(result, r2_ceiling=ceiling)


def fit_many(
    t: ArrayLike | Sequence[tuple[ArrayLike, ArrayLike]],
    R: ArrayLike | None = None,
    model: ModelName = "oscillator",
    *,
    threads: int | None = None,
    weights: ArrayLike | Sequence[ArrayLike] | None = None,
    bounds: BoundsLike | None = None,
    p0: P0Like | ArrayLike | None = None,
    t0: float = 0.0,
    max_iter: int = 200,
    n_starts: int = 2,
    nested_mu0: bool = True,
    window: int | None = None,
) -> BatchFit:
    """Fit many reward curves in one call into the compiled core (docs/fitting.md, "Batches").

    Two input forms:

    - ``fit_many(t, R)``: shared steps ``t`` (n_points,) and rewards ``R`` (n_series, n_points).
    - ``fit_many([(t_1, r_1), (t_2, r_2), ...])``: ragged series of any lengths.

    NaN/inf rewards are gaps, removed per series. Work is split over ``threads`` (default: all
    cores) with the GIL released; results are identical for any thread count. No series is
    dropped: each gets a status; per-series problems give ``"bad_input"`` and a ``reason``.
    ``weights`` has the layout of the rewards. ``p0`` is one start for every series (dict or
    sequence) or an (n_series, p) array. ``r2_ceiling`` (local-smoother noise estimate) and
    ``r2_window`` (``window`` points per window, default ``max(2, n // 20)``) are computed for
    every series. See :func:`fit` for the other arguments.
    """
    _check_model(model)
    names = FIT_MODELS[model]
    n_par = len(names)
    lower, upper = _parse_bounds(model, bounds)
    opts = _options(t0, max_iter, n_starts, nested_mu0, window)
    n_threads = _threads(threads)
    overrides: dict[int, str] = {}

    if R is not None:
        times = _as_1d("t", cast(ArrayLike, t))
        try:
            rewards = np.ascontiguousarray(R, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("R: expected a 2-D numeric array") from None
        if rewards.ndim == 1:
            rewards = rewards.reshape(1, -1)
        if rewards.ndim != 2:
            raise ValueError(f"R: expected shape (n_series, n_points), got {rewards.shape}")
        if rewards.shape[1] != times.size:
            raise ValueError(f"R: has {rewards.shape[1]} columns but t has {times.size} points")
        if not np.all(np.isfinite(times)):
            raise ValueError("t: contains NaN or inf")
        if np.any(np.diff(times) <= 0):
            raise ValueError("t: must be strictly increasing (unsorted or duplicate steps)")
        n_series = rewards.shape[0]
        t_flat = np.ascontiguousarray(times)
        t_offsets = np.zeros(n_series, dtype=np.int64)
        offsets = np.arange(n_series + 1, dtype=np.int64) * times.size
        r_flat = rewards.reshape(-1)
        w_flat = None
        if weights is not None:
            try:
                w_arr = np.broadcast_to(np.asarray(weights, dtype=np.float64), rewards.shape)
            except ValueError:
                msg = f"weights: cannot broadcast to R's shape {rewards.shape}"
                raise ValueError(msg) from None
            w_flat = np.ascontiguousarray(w_arr).reshape(-1)
    else:
        if isinstance(t, np.ndarray) and t.dtype != object:
            raise ValueError("R: missing (pass R, or t as a list of (t, r) pairs)")
        try:
            pairs: list[Any] = list(t)  # type: ignore[arg-type]
        except TypeError:
            raise ValueError("t: expected a list of (t, r) pairs when R is omitted") from None
        n_series = len(pairs)
        w_list: list[Any] | None = None
        if weights is not None:
            w_list = list(weights)  # type: ignore[arg-type]
            if len(w_list) != n_series:
                raise ValueError(f"weights: expected {n_series} arrays, one per series")
        t_parts: list[NDArray[np.float64]] = []
        r_parts: list[NDArray[np.float64]] = []
        w_parts: list[Any] = []
        for i, pair in enumerate(pairs):
            try:
                ti_raw, ri_raw = pair
            except (TypeError, ValueError):
                raise ValueError(f"t: item {i} is not a (t, r) pair") from None
            ti = _as_1d(f"t[{i}]", ti_raw)
            ri = _as_1d(f"r[{i}]", ri_raw)
            wi = None if w_list is None else _as_1d(f"weights[{i}]", w_list[i])
            if ti.shape != ri.shape or (wi is not None and wi.shape != ri.shape):
                # A malformed series still gets a row: all gaps, with the reason reported.
                overrides[i] = f"r: series {i} has {ri.size} rewards but {ti.size} steps" + (
                    "" if wi is None else f" and {wi.size} weights"
                )
                ti = np.zeros(0)
                ri = np.zeros(0)
                wi = None if wi is None else np.zeros(0)
            t_parts.append(ti)
            r_parts.append(ri)
            if w_list is not None:
                w_parts.append(wi)
        lengths = np.array([x.size for x in r_parts], dtype=np.int64)
        offsets = np.zeros(n_series + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        t_offsets = offsets[:-1].copy()
        t_flat = np.concatenate(t_parts) if t_parts else np.zeros(0)
        r_flat = np.concatenate(r_parts) if r_parts else np.zeros(0)
        w_flat = np.concatenate(w_parts) if w_list is not None and w_parts else None

    p0_arr = None
    if p0 is not None:
        if isinstance(p0, Mapping) or np.ndim(p0) == 1:  # type: ignore[arg-type]
            single = _parse_p0(model, p0)  # type: ignore[arg-type]
            assert single is not None  # p0 is not None here
            p0_arr = np.tile(single, (n_series, 1))
        else:
            p0_arr = np.ascontiguousarray(p0, dtype=np.float64)
            if p0_arr.shape != (n_series, n_par):
                raise ValueError(f"p0: expected shape ({n_series}, {n_par}), got {p0_arr.shape}")
    raw = _core.fit_batch(
        t_flat,
        t_offsets,
        r_flat,
        offsets,
        w_flat,
        model,
        lower,
        upper,
        p0_arr,
        n_threads,
        opts,
    )
    return _to_batch(model, raw, opts.t0, overrides)


def compare(
    t: ArrayLike,
    r: ArrayLike,
    models: Sequence[ModelName] = ("exponential", "oscillator", "logistic"),
    *,
    weights: ArrayLike | None = None,
    t0: float = 0.0,
) -> pd.DataFrame:
    """Compare models on one curve by AIC/BIC against a constant baseline (docs/fitting.md,
    "Model comparison").

    Returns a table indexed by model (plus ``"constant"``) with columns ``k`` (estimated
    curve parameters), ``rss``, ``aic``, ``bic``, ``delta_aic`` (to the best row), ``status``,
    ``preferred`` and, on the oscillator row when the exponential is also fitted, ``lr_stat``
    and ``lr_pvalue`` of the boundary likelihood-ratio test of mu = 0 (a 50:50 mixture of
    chi-square(0) and chi-square(1)). ``table.attrs["verdict"]`` is the preferred model, or
    ``"no trend"`` when no model beats the constant by more than 2 AIC units;
    ``table.attrs["fits"]`` holds the :class:`FitResult` of each model.
    """
    import pandas as pd
    from scipy import stats

    if isinstance(models, str):
        models = (models,)  # type: ignore[assignment]
    if len(models) == 0:
        raise ValueError("models: expected at least one model")
    for m in models:
        _check_model(m)
    times = _as_1d("t", t)
    rewards = _as_1d("r", r)
    fits: dict[str, FitResult] = {}
    order = sorted(models, key=lambda m: m != "exponential")  # nested model first
    for m in order:
        start = None
        if m == "oscillator" and "exponential" in fits:
            # The oscillator contains the exponential at mu = 0: start there too so that its
            # optimum is never worse than the nested model's.
            e = fits["exponential"].params
            start = {"r0": e["r0"], "r_inf": e["r_inf"], "tau": e["tau"], "mu": 0.0}
        fits[m] = fit(times, rewards, m, weights=weights, p0=start, t0=t0)

    n = rewards.size
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    mean = float(np.sum(w * rewards) / np.sum(w))
    rss_const = float(np.sum(w * (rewards - mean) ** 2))
    log_lik = -0.5 * n * (math.log(2 * math.pi * max(rss_const, 1e-300) / n) + 1)
    log_lik += 0.5 * float(np.sum(np.log(w[w > 0])))
    rows: dict[str, dict[str, Any]] = {
        "constant": {
            "k": 1,
            "rss": rss_const,
            "aic": 2 * 2 - 2 * log_lik,
            "bic": 2 * math.log(n) - 2 * log_lik,
            "status": "converged",
        }
    }
    for m in models:
        f = fits[m]
        k = len(FIT_MODELS[m])
        rows[m] = {"k": k, "rss": f.rss, "aic": f.aic, "bic": f.bic, "status": f.status}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    table["delta_aic"] = table["aic"] - table["aic"].min()
    table["lr_stat"] = np.nan
    table["lr_pvalue"] = np.nan
    if "exponential" in fits and "oscillator" in fits:
        rss_e, rss_o = fits["exponential"].rss, fits["oscillator"].rss
        lr = max(0.0, n * math.log(rss_e / rss_o)) if rss_o > 0 else math.inf
        # mu = 0 is on the boundary: the null law is 0.5 chi2(0) + 0.5 chi2(1).
        table.loc["oscillator", "lr_stat"] = lr
        table.loc["oscillator", "lr_pvalue"] = 1.0 if lr == 0 else 0.5 * float(stats.chi2.sf(lr, 1))
    best_model = min(models, key=lambda m: fits[m].aic)
    beats_constant = rows["constant"]["aic"] - fits[best_model].aic > _NO_TREND_DELTA_AIC
    verdict = best_model if beats_constant else "no trend"
    table["preferred"] = table.index == verdict
    table.attrs["verdict"] = verdict
    table.attrs["fits"] = fits
    return table
