"""Fit reward curves: one series (:func:`fit`), thousands at once (:func:`fit_many`). Model
choice on top of these fits is :func:`grpo_dynamics.compare` (module ``_compare``).

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
from collections.abc import Callable, Mapping, Sequence
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

BoundsLike = Mapping[str, tuple[float | None, float | None]] | Sequence[Sequence[float | None]]
P0Like = Mapping[str, float] | Sequence[float]


def fit_param_names(model: str) -> tuple[str, ...]:
    """Parameter names of ``model`` in column order (docs/fitting.md, "Models")."""
    _check_model(model)
    return FIT_MODELS[model]


def _check_model(model: str) -> None:
    if model not in FIT_MODELS:
        raise ValueError(f"model: expected one of {sorted(FIT_MODELS)}, got {model!r}")


def _regimes(
    model: str,
    params: NDArray[np.float64],
    stderr: NDArray[np.float64],
    fitted: NDArray[np.bool_],
) -> NDArray[np.object_]:
    """The regime of every row: by mu against 1/4, "regime not identified" when mu +- 2 stderr
    straddles 1/4; the exponential (mu = 0 exactly) is overdamped; None where not ``fitted``
    or mu is not finite."""
    n = params.shape[0]
    regime = np.full(n, None, dtype=object)
    if model == "exponential":
        regime[fitted] = "overdamped"
    elif model == "oscillator":
        mu, se = params[:, 3], stderr[:, 3]
        with np.errstate(invalid="ignore"):
            straddle = np.isfinite(se) & (mu - 2 * se < _CRITICAL_MU) & (_CRITICAL_MU < mu + 2 * se)
            labels = np.select(
                [straddle, mu < _CRITICAL_MU, mu > _CRITICAL_MU],
                ["regime not identified", "overdamped", "oscillatory"],
                "critical",
            ).astype(object)
        keep = fitted & np.isfinite(mu)
        regime[keep] = labels[keep]
    return regime


def _predict(
    model: str, params: Mapping[str, float], t: ArrayLike, t0: float
) -> NDArray[np.float64]:
    times = np.ascontiguousarray(t, dtype=np.float64).reshape(-1)
    if model == "logistic":
        value, _ = _core.logistic_curve(
            times, params["r_lo"], params["r_hi"], params["t_mid"], params["s"]
        )
        return np.asarray(value)
    from ._trajectory import trajectory

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

    ``identified``, ``unidentified`` and ``plateau_bound`` say what the data identify
    (docs/fitting.md, "Identification"): use ``params["r_inf"]`` (``r_hi``) for a forecast or a
    verdict only when ``identified`` is True; otherwise ``plateau_bound`` (e.g.
    ``("at_least", 0.83)``) is what the data say about the plateau. ``status`` stays the
    optimizer's; ``reason`` then starts with "not identified".
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
    #: Parameters the data do not identify, each with the reason in plain words (docs/fitting.md,
    #: "Identification"); empty when everything is identified.
    unidentified: dict[str, str] = field(default_factory=dict)
    #: True iff the plateau and the timescale are identified (``r_inf`` and ``tau``, for the
    #: logistic ``r_hi`` and ``s``) and no parameter is held by a bound: only then may a
    #: forecast, verdict or comparison use the fit's plateau.
    identified: bool = True
    #: What the data say about a plateau that is not identified: ``("at_least", v)`` when the
    #: fitted curve still rises at the last step, ``("at_most", v)`` when it still falls, with
    #: ``v`` the more conservative of the last fitted value and the mean reward over the last
    #: 10% of the span; None otherwise (and always None when ``identified``).
    plateau_bound: tuple[str, float] | None = None

    def predict(self, t: ArrayLike) -> NDArray[np.float64]:
        """Fitted mean reward at steps ``t``."""
        return _predict(self.model, self.params, t, self.t0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (arrays as lists, NaN/inf as None)."""
        from ._results import to_jsonable

        return dict(to_jsonable(dataclasses.asdict(self)))

    def __repr__(self) -> str:
        values = ", ".join(
            f"{k}={v:.4g}" + ("*" if k in self.unidentified else "") for k, v in self.params.items()
        )
        ident = "identified" if self.identified else "not identified"
        return (
            f"FitResult({self.model}: {values}; {self.status}, {ident}, r2={self.r2:.3g}, "
            f"n={self.n_points})"
        )


@dataclass(frozen=True)
class BatchFit:
    """Fits of many series, one row each, in input order (docs/fitting.md, "Batches").

    Arrays: ``params``/``stderr``/``lower``/``upper``/``at_bound`` (n, p), ``covariance``
    (n, p, p), ``r2``/``rss``/``sigma2``/``aic``/``bic``/``n_iter``/``n_points`` (n,),
    ``status``/``regime``/``reason`` (n,) object arrays of strings, and the identification
    columns ``identified``/``unidentified``/``unidentified_reason``/``plateau_bound_kind``/
    ``plateau_bound`` (docs/fitting.md, "Identification"). No series is dropped: bad series have
    ``status == "bad_input"``, NaN numbers, a ``reason`` and ``identified`` False.
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
    #: (n,) identification (docs/fitting.md, "Identification"): ``identified`` bool,
    #: ``unidentified`` dicts {parameter: reason}, ``unidentified_reason`` the same as one string
    #: ("" when nothing is flagged), ``plateau_bound_kind`` None/"at_least"/"at_most" and
    #: ``plateau_bound`` its value (NaN when none). None only for objects built by older code.
    identified: NDArray[np.bool_] | None = field(default=None, repr=False)
    unidentified: NDArray[np.object_] | None = field(default=None, repr=False)
    unidentified_reason: NDArray[np.object_] | None = field(default=None, repr=False)
    plateau_bound_kind: NDArray[np.object_] | None = field(default=None, repr=False)
    plateau_bound: NDArray[np.float64] | None = field(default=None, repr=False)

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
            unidentified={} if self.unidentified is None else dict(self.unidentified[i]),
            identified=True if self.identified is None else bool(self.identified[i]),
            plateau_bound=self._plateau_bound(i),
        )

    def _plateau_bound(self, i: int) -> tuple[str, float] | None:
        if self.plateau_bound_kind is None or self.plateau_bound is None:
            return None
        kind = self.plateau_bound_kind[i]
        return None if kind is None else (str(kind), float(self.plateau_bound[i]))

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
        for name in ("identified", "unidentified_reason", "plateau_bound_kind", "plateau_bound"):
            if getattr(self, name) is not None:
                cols[name] = getattr(self, name)
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
    codes = np.asarray(raw["status"], dtype=np.int64)
    status = np.array(FIT_STATUSES, dtype=object)[codes]
    reason = np.array(list(raw["reason"]), dtype=object)
    for i, why in reason_override.items():
        reason[i] = why
    params, stderr = raw["params"], raw["stderr"]
    regime = _regimes(model, params, stderr, status != "bad_input")
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
# identification (docs/fitting.md, "Identification")

# A parameter within this fraction of its bound interval (or of the bound's magnitude when the
# interval is unbounded) counts as held by the bound.
_BOUND_RTOL = 1e-6
# "Still moving at the end": the fitted curve changes, over the last _END_WINDOW of the observed
# span, by at least _END_MOVE of its range over the data, i.e. its final slope is at least its
# average slope (it has not started to level off).
_END_WINDOW = 0.1
_END_MOVE = 0.1
# Direction of a one-sided plateau statement: the end change exceeds this fraction of the range.
_END_DIRECTION = 0.01
# Points per series on which the fitted curve's range over the data is taken.
_RANGE_GRID = 33
# Which parameter is the plateau and which the timescale, per model.
_PLATEAU = {"exponential": "r_inf", "oscillator": "r_inf", "logistic": "r_hi"}
_TIMESCALE = {"exponential": "tau", "oscillator": "tau", "logistic": "s"}


@dataclass(frozen=True)
class _DataSummary:
    """Per series, after removing gaps and zero weights: first/last step, reward range."""

    t_first: NDArray[np.float64]
    t_last: NDArray[np.float64]
    r_min: NDArray[np.float64]
    r_max: NDArray[np.float64]
    #: mean reward over the last _END_WINDOW of the span (the current level the data show)
    r_end: NDArray[np.float64]


def _data_summary(
    t_flat: NDArray[np.float64],
    r_flat: NDArray[np.float64],
    offsets: NDArray[np.int64],
    w_flat: NDArray[np.float64] | None,
) -> _DataSummary:
    """Vectorised per-series summary of the points a fit uses (finite r, weight > 0)."""
    n = offsets.size - 1
    if t_flat.size != r_flat.size:  # one shared grid for a 2-D batch: work on (n, m) directly
        return _grid_summary(t_flat, r_flat.reshape(n, t_flat.size), w_flat)
    valid = np.isfinite(r_flat) & np.isfinite(t_flat)
    if w_flat is not None:
        valid &= np.isfinite(w_flat) & (w_flat > 0)
    # A sentinel (the identity of each reduction) keeps reduceat valid for empty series.
    starts = offsets[:-1]
    count = np.add.reduceat(np.append(valid, False).astype(np.int64), starts) if n else starts

    def reduce(values: NDArray[np.float64], fill: float, ufunc: np.ufunc) -> NDArray[np.float64]:
        if n == 0:
            return np.zeros(0)
        masked = np.append(np.where(valid, values, fill), fill)
        out = ufunc.reduceat(masked, starts).astype(np.float64)
        empty = (count == 0) | (np.diff(offsets) == 0)
        out[empty] = np.nan
        return out

    t_first = reduce(t_flat, np.inf, np.minimum)
    t_last = reduce(t_flat, -np.inf, np.maximum)
    series = np.repeat(np.arange(n), np.diff(offsets))
    with np.errstate(invalid="ignore"):
        cut = t_last - _END_WINDOW * (t_last - t_first)
        tail = valid & (t_flat >= cut[series])
    tail_sum = np.bincount(series[tail], weights=r_flat[tail], minlength=n)
    tail_count = np.bincount(series[tail], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        r_end = tail_sum / tail_count
    return _DataSummary(
        t_first=t_first,
        t_last=t_last,
        r_min=reduce(r_flat, np.inf, np.minimum),
        r_max=reduce(r_flat, -np.inf, np.maximum),
        r_end=np.where(tail_count > 0, r_end, np.nan),
    )


def _grid_summary(
    t: NDArray[np.float64], R: NDArray[np.float64], w_flat: NDArray[np.float64] | None
) -> _DataSummary:
    """:func:`_data_summary` for a 2-D batch on one grid ``t`` (increasing)."""
    if w_flat is None and R.size:
        # min and max carry NaN and +-inf: every reward is finite iff every row's extremes are
        # (one pass fewer over R than testing np.isfinite(R) first).
        r_min, r_max = R.min(axis=1), R.max(axis=1)
        if np.isfinite(r_min).all() and np.isfinite(r_max).all():
            # No gaps (the common case): one first/last step and one tail for every series.
            n = R.shape[0]
            cut = t[-1] - _END_WINDOW * (t[-1] - t[0])
            end_part = R[:, int(np.searchsorted(t, cut)) :]
            return _DataSummary(
                t_first=np.full(n, t[0]),
                t_last=np.full(n, t[-1]),
                r_min=r_min,
                r_max=r_max,
                r_end=end_part.sum(axis=1) / end_part.shape[1],
            )
    valid = np.isfinite(R)
    if w_flat is not None:
        w = w_flat.reshape(R.shape)
        valid &= np.isfinite(w) & (w > 0)
    any_valid = valid.any(axis=1)
    m = t.size
    first = np.argmax(valid, axis=1)
    last = m - 1 - np.argmax(valid[:, ::-1], axis=1)
    t_first = np.where(any_valid, t[first], np.nan)
    t_last = np.where(any_valid, t[last], np.nan)
    with np.errstate(invalid="ignore"):
        cut = t_last - _END_WINDOW * (t_last - t_first)
        tail = valid & (t[None, :] >= cut[:, None])
    tail_count = tail.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r_end = np.where(tail, R, 0.0).sum(axis=1) / tail_count
    return _DataSummary(
        t_first=t_first,
        t_last=t_last,
        r_min=np.where(any_valid, np.where(valid, R, np.inf).min(axis=1), np.nan),
        r_max=np.where(any_valid, np.where(valid, R, -np.inf).max(axis=1), np.nan),
        r_end=np.where(tail_count > 0, r_end, np.nan),
    )


def _curve_values(
    model: str,
    params: NDArray[np.float64],
    t: NDArray[np.float64],
    t0: float,
    threads: int = 1,
) -> NDArray[np.float64]:
    """Fitted curves of many series at times ``t`` (n, m), one row per series.

    Oscillator/exponential: the exact closed form in the compiled core (docs/model.md,
    "Closed-form trajectory"; ``_core.trajectory_rows``, rows split over ``threads``); before
    ``t0`` the curve is ``r0``. Logistic: ``r_lo + (r_hi - r_lo) expit((t - t_mid) / s)``.
    """
    if model == "logistic":
        from scipy.special import expit

        r_lo, r_hi, t_mid, s = (params[:, j : j + 1] for j in range(4))
        with np.errstate(all="ignore"):
            return np.asarray(r_lo + (r_hi - r_lo) * expit((t - t_mid) / s))
    return _core.trajectory_rows(params, t, t0, threads)


def _fmts(values: NDArray[np.float64]) -> list[str]:
    """Every entry to 4 significant digits, as messages show numbers."""
    return [f"{x:.4g}" for x in values.tolist()]


def _set_objects(target: NDArray[np.object_], rows: NDArray[np.intp], items: list[str]) -> None:
    """``target[rows] = items`` for an object array, keeping the items themselves (Python str)."""
    column = np.empty(len(items), dtype=object)
    column[:] = items
    target[rows] = column


# Rows flagged by one test, and the message for each of them (in row order).
_Messages = Callable[[NDArray[np.intp]], list[str]]


def _identify(batch: BatchFit, data: _DataSummary, threads: int = 1) -> BatchFit:
    """Flag what the data do not identify, per series (docs/fitting.md, "Identification").

    The tests are vectorised over series; strings and dicts are assembled only for flagged
    rows (every other row gets its own empty dict). ``threads`` evaluates the fitted curves.
    """
    model, names = batch.model, batch.param_names
    n, n_par = batch.params.shape
    col = {name: j for j, name in enumerate(names)}
    p, se, lo, hi = batch.params, batch.stderr, batch.lower, batch.upper
    fitted = batch.status != "bad_input"
    # (parameter, rows flagged, their messages, whether it blocks "identified")
    found: list[tuple[str, NDArray[np.intp], list[str], bool]] = []

    def add(name: str, mask: NDArray[np.bool_], message: _Messages, blocks: bool) -> None:
        rows = np.flatnonzero(mask & fitted)
        if rows.size:
            found.append((name, rows, message(rows), blocks))

    def constant(text: str) -> _Messages:
        return lambda rows: [text] * rows.size

    with np.errstate(invalid="ignore"):
        width = hi - lo
        # Timescales and mu: relative to the bound itself (tau's interval spans 6 decades);
        # levels and t_mid: relative to the width of their interval.
        positive = np.array([name in ("tau", "s", "mu") for name in names])
        tol_lo = _BOUND_RTOL * np.where(positive, np.abs(lo), width)
        tol_hi = _BOUND_RTOL * np.where(positive, np.abs(hi), width)
        tol_lo = np.where(np.isfinite(tol_lo), tol_lo, 0.0)
        tol_hi = np.where(np.isfinite(tol_hi), tol_hi, 0.0)
        near_lo = np.isfinite(lo) & (p - lo <= tol_lo)
        near_hi = np.isfinite(hi) & (hi - p <= tol_hi)
        free = ~(width == 0)  # a parameter fixed by equal bounds is not estimated
        pinned = (near_lo | near_hi | batch.at_bound) & free
    if model == "oscillator":
        # mu = 0 is the physical boundary (the nested exponential), a point estimate, not an
        # artificial limit (docs/fitting.md, "Identifiability at mu = 0").
        j = col["mu"]
        pinned[:, j] &= ~(near_lo[:, j] & (lo[:, j] == 0.0))
    hints = {
        ("tau", "lo"): "faster than the logging interval can resolve",
        ("s", "lo"): "a step faster than the logging interval can resolve",
        ("tau", "hi"): "no curvature: the data look like a straight line",
        ("s", "hi"): "no curvature: the data look like a straight line",
        ("mu", "hi"): "an oscillation slower than the data: a fragment of a slow cosine",
        ("r_inf", "lo"): "the plateau would lie beyond the allowed reward range",
        ("r_inf", "hi"): "the plateau would lie beyond the allowed reward range",
        ("r_hi", "lo"): "the plateau would lie beyond the allowed reward range",
        ("r_hi", "hi"): "the plateau would lie beyond the allowed reward range",
    }
    for j, name in enumerate(names):
        for side, side_mask in (("lo", near_lo[:, j]), ("hi", near_hi[:, j])):
            mask = pinned[:, j] & side_mask
            if side == "hi":
                mask &= ~near_lo[:, j]
            hint = hints.get((name, side), "the data push it beyond the allowed range")
            word = "lower" if side == "lo" else "upper"
            bound = (lo if side == "lo" else hi)[:, j]

            def msg(
                rows: NDArray[np.intp],
                word: str = word,
                hint: str = hint,
                bound: NDArray[np.float64] = bound,
            ) -> list[str]:
                return [
                    f"at its {word} bound {b} ({hint}): set by the bound, not the data"
                    for b in _fmts(bound[rows])
                ]

            add(name, mask, msg, True)
        other = pinned[:, j] & ~near_lo[:, j] & ~near_hi[:, j]
        add(name, other, constant("held at a bound: set by the bound, not the data"), True)
        undefined = ~np.isfinite(se[:, j]) & ~pinned[:, j] & free[:, j]
        if model == "oscillator" and name == "mu":
            undefined &= ~(near_lo[:, j] & (lo[:, j] == 0.0))
        add(
            name,
            undefined,
            constant("standard error undefined (the data do not determine it)"),
            True,
        )

    plateau, timescale = _PLATEAU[model], _TIMESCALE[model]
    span = data.t_last - data.t_first
    # The fitted curve over the data: its range (on _RANGE_GRID points), and its change over the
    # last part of the span (the extra last column: the start of that part).
    grid = np.empty((n, _RANGE_GRID + 1))
    grid[:, :-1] = data.t_first[:, None] + span[:, None] * np.linspace(0.0, 1.0, _RANGE_GRID)
    grid[:, -1] = data.t_last - _END_WINDOW * span
    finite_rows = fitted & np.all(np.isfinite(p), axis=1) & np.isfinite(span)
    if finite_rows.all():  # the common case: nothing to stand in for
        safe_p, safe_grid = p, grid
    else:
        safe_p = np.where(finite_rows[:, None], p, _SAFE_PARAMS[model])
        safe_grid = np.where(finite_rows[:, None], grid, 0.0)
    values = _curve_values(model, safe_p, safe_grid, batch.t0, threads)
    curve = values[:, :-1]
    last = curve[:, -1]
    change = last - values[:, -1]
    f_range = curve.max(axis=1) - curve.min(axis=1)
    plat = p[:, col[plateau]]
    with np.errstate(invalid="ignore", divide="ignore"):
        moving = finite_rows & (np.abs(change) >= _END_MOVE * f_range) & (f_range > 0)
        inside = (plat >= data.r_min) & (plat <= data.r_max)

        def heading(rows: NDArray[np.intp]) -> list[str]:
            ratio = (np.abs(change[rows]) / f_range[rows]).tolist()
            rises = (change[rows] > 0).tolist()
            return [
                f"{plateau} = {v} lies inside the observed rewards [{a}, {b}] while the fitted "
                f"curve still {'rises' if up else 'falls'} by {x:.0%} of its range over the last "
                f"{_END_WINDOW:.0%} of the span: it is not where the curve is heading"
                for v, a, b, up, x in zip(
                    _fmts(plat[rows]),
                    _fmts(data.r_min[rows]),
                    _fmts(data.r_max[rows]),
                    rises,
                    ratio,
                    strict=True,
                )
            ]

        add(plateau, moving & inside, heading, True)
        plat_se = se[:, col[plateau]]
        wide = np.isfinite(plat_se) & (4.0 * plat_se > f_range)
        add(
            plateau,
            wide,
            lambda rows: [
                f"its +-2 stderr interval (+-{a}) is wider than the fitted gain over the data ({b})"
                for a, b in zip(_fmts(2 * plat_se[rows]), _fmts(f_range[rows]), strict=True)
            ],
            True,
        )
        ts, ts_se = p[:, col[timescale]], se[:, col[timescale]]
        add(
            timescale,
            np.isfinite(ts_se) & (ts - 2.0 * ts_se <= 0.0),
            lambda rows: [
                f"its +-2 stderr interval ({a} +- {b}) includes 0"
                for a, b in zip(_fmts(ts[rows]), _fmts(2 * ts_se[rows]), strict=True)
            ],
            True,
        )
        # The plateau and the timescale share one message for the same rows: built once.
        shared: dict[str, list[str]] = {}

        def once(key: str, message: _Messages) -> _Messages:
            def cached(rows: NDArray[np.intp]) -> list[str]:
                if key not in shared:
                    shared[key] = message(rows)
                return shared[key]

            return cached

        if model == "logistic":
            t_mid, s = p[:, col["t_mid"]], p[:, col["s"]]
            late = data.t_last - t_mid < s
            late_msg = once(
                "late",
                lambda rows: [
                    f"the midpoint {a} plus one width {b} lies beyond the last step {c}: the "
                    "approach to the upper level is not observed"
                    for a, b, c in zip(
                        _fmts(t_mid[rows]), _fmts(s[rows]), _fmts(data.t_last[rows]), strict=True
                    )
                ],
            )
            for name in (plateau, timescale):
                add(name, late, late_msg, True)
        else:
            tau = p[:, col["tau"]]
            mu = p[:, col["mu"]] if model == "oscillator" else np.zeros(n)
            q = np.sqrt(np.abs(1.0 - 4.0 * mu))
            damping = np.where(mu > _CRITICAL_MU, 2.0 * mu * tau, tau * (1.0 + q) / 2.0)
            slow = damping > span
            slow_msg = once(
                "slow",
                lambda rows: [
                    f"the damping time {a} steps is longer than the observed span {b}: the "
                    "approach to the plateau is not observed"
                    for a, b in zip(_fmts(damping[rows]), _fmts(span[rows]), strict=True)
                ],
            )
            for name in (plateau, timescale):
                add(name, slow, slow_msg, True)
            if model == "oscillator":
                omega = q / (2.0 * mu * tau)
                period = np.where(mu > _CRITICAL_MU, 2.0 * math.pi / omega, np.inf)
                add(
                    "mu",
                    (mu > _CRITICAL_MU) & (period > span),
                    lambda rows: [
                        f"regime not identified: the oscillation period {a} steps is longer "
                        f"than the observed span {b}"
                        for a, b in zip(_fmts(period[rows]), _fmts(span[rows]), strict=True)
                    ],
                    False,
                )
                mu_se = se[:, col["mu"]]
                add(
                    "mu",
                    np.isfinite(mu_se)
                    & (mu - 2 * mu_se < _CRITICAL_MU)
                    & (mu + 2 * mu_se > _CRITICAL_MU),
                    lambda rows: [
                        f"regime not identified: mu = {a} +- 2 x {b} contains 1/4"
                        for a, b in zip(_fmts(mu[rows]), _fmts(mu_se[rows]), strict=True)
                    ],
                    False,
                )

    identified = fitted.copy()
    # Flagged rows only: {row: {parameter: reason}} in the order the tests above ran.
    entries: dict[int, dict[str, str]] = {}
    for name, rows, messages, blocks in found:
        if blocks:
            identified[rows] = False
        for row, why in zip(rows.tolist(), messages, strict=True):
            entry = entries.get(row)
            if entry is None:
                entries[row] = {name: why}
            elif name in entry:
                entry[name] = f"{entry[name]}; {why}"
            else:
                entry[name] = why
    dicts: list[dict[str, str]] = [{} for _ in range(n)]
    for row, entry in entries.items():
        dicts[row] = entry
    bad_rows = np.flatnonzero(~fitted).tolist()
    for row in bad_rows:
        dicts[row] = dict.fromkeys(names, "not fitted (bad input)")
    unidentified = np.fromiter(dicts, dtype=object, count=n)

    reason = batch.reason.copy()
    regime = batch.regime.copy()
    text = np.full(n, "", dtype=object)
    kind = np.full(n, None, dtype=object)
    value = np.full(n, np.nan)
    with np.errstate(invalid="ignore"):
        directed = ~identified & fitted & finite_rows & (np.abs(change) > _END_DIRECTION * f_range)
    directed &= f_range > 0
    rising, falling = directed & (change > 0), directed & (change < 0)
    kind[rising] = "at_least"
    kind[falling] = "at_most"
    # The conservative one of the fitted end value and the data's mean over the end window: a
    # degenerate fit can overshoot the data at its last step.
    end = np.where(np.isfinite(data.r_end), data.r_end, last)
    value[rising] = np.minimum(last, end)[rising]
    value[falling] = np.maximum(last, end)[falling]
    flagged = np.array(sorted(entries), dtype=np.intp)
    texts: list[str] = []
    reasons: list[str] = []
    unsure: list[bool] = []  # the oscillator's regime is then not identified
    for i, ok, k, v, old in zip(
        flagged.tolist(),
        identified[flagged].tolist(),
        kind[flagged].tolist(),
        _fmts(value[flagged]),
        reason[flagged].tolist(),
        strict=True,
    ):
        entry = entries[i]
        joined = "; ".join([f"{name}: {why}" for name, why in entry.items()])
        head = "partly identified" if ok else "not identified"
        if k is not None:
            head += f" (plateau {'at least' if k == 'at_least' else 'at most'} {v})"
        texts.append(joined)
        reasons.append(f"{old}; {head}: {joined}" if old else f"{head}: {joined}")
        unsure.append(not ok or "mu" in entry)
    _set_objects(text, flagged, texts)
    _set_objects(reason, flagged, reasons)
    if model == "oscillator":
        regime[flagged[np.array(unsure, dtype=bool)]] = "regime not identified"
    for i in bad_rows:
        text[i] = f"not fitted (bad input): {reason[i]}"
    return dataclasses.replace(
        batch,
        reason=reason,
        regime=regime,
        identified=identified,
        unidentified=unidentified,
        unidentified_reason=text,
        plateau_bound_kind=kind,
        plateau_bound=value,
    )


# Harmless stand-ins for rows that could not be fitted, so vectorised curve evaluation stays
# finite (their results are discarded).
_SAFE_PARAMS: dict[str, NDArray[np.float64]] = {
    "exponential": np.array([0.0, 1.0, 1.0]),
    "oscillator": np.array([0.0, 1.0, 1.0, 0.0]),
    "logistic": np.array([0.0, 1.0, 0.0, 1.0]),
}


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
        The default 0 is the model's own origin (training starts at step 0) and is kept so
        that ``fit(t, r)`` on arrays means what it always meant; for a log that starts later
        (resumed, cropped, logged from step 5000) pass ``t0=t[0]``: the log-level entry points
        (:func:`~grpo_dynamics.forecast`, :func:`~grpo_dynamics.diagnose`, the command line's
        ``fit``/``compare``/``forecast``/``diagnose``) default to the first logged step.
    max_iter, n_starts : int
        LM trial steps per start; number of automatic starts (distinct families). A fit that
        ends in ``status == "max_iter"`` always says so in ``reason``.
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

    w_scale = np.ones(n_series)
    if w_flat is not None:
        w_flat, w_scale = _normalise_weights(w_flat, offsets)
    summary = _data_summary(t_flat, r_flat, offsets, w_flat)
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
    # Back to the caller's weight scale: rss and sigma2 scale with the weights; parameters,
    # stderr, r2 and AIC/BIC (whose sum of log weights cancels the scale) do not.
    raw["rss"] = np.asarray(raw["rss"]) * w_scale
    raw["sigma2"] = np.asarray(raw["sigma2"]) * w_scale
    batch = _to_batch(model, raw, opts.t0, overrides)
    _explain_max_iter(batch, opts.max_iter, summary.t_first)
    return _identify(batch, summary, n_threads)


def _explain_max_iter(batch: BatchFit, max_iter: int, t_first: NDArray[np.float64]) -> None:
    """A fit that ends in ``max_iter`` always says why (in place, on ``batch.reason``)."""
    for i in np.flatnonzero(batch.status == "max_iter").tolist():
        why = (
            f"max_iter: the optimizer stopped after {max_iter} trial steps per start without "
            "meeting its convergence tests (raise max_iter or pass p0"
        )
        if batch.model != "logistic" and np.isfinite(t_first[i]) and t_first[i] > batch.t0:
            why += (
                f"; the curve starts from rest at t0 = {batch.t0:g}, before the first step "
                f"{t_first[i]:g}: pass t0 = the first step if training started there"
            )
        why += ")"
        old = str(batch.reason[i])
        batch.reason[i] = f"{why}; {old}" if old else why


def _normalise_weights(
    w_flat: NDArray[np.float64], offsets: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each series' weights divided by the power of two nearest their geometric mean (positive
    finite weights only; 1 if none), and those scales. The optimizer's tolerances are absolute
    in sqrt(w) units, so a constant weight scale of 1e-45 or 1e250 used to stop it early at a
    wrong optimum; dividing by a power of two is exact and cannot overflow
    (docs/reliability.md)."""
    lengths = np.diff(offsets)
    series = np.repeat(np.arange(lengths.size), lengths)
    usable = np.isfinite(w_flat) & (w_flat > 0)
    log2w = np.log2(np.where(usable, w_flat, 1.0))
    count = np.bincount(series[usable], minlength=lengths.size)
    total = np.bincount(series[usable], weights=log2w[usable], minlength=lengths.size)
    exponent = np.where(count > 0, np.round(total / np.maximum(count, 1)), 0.0)
    scale = np.ldexp(1.0, exponent.astype(np.int64))
    return w_flat / np.repeat(scale, lengths), scale
