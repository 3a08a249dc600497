"""Forecast the rest of a GRPO run from its first part (docs/diagnose.md, "Forecast").

Fit the closed-form trajectory (MODEL.md s.5) to the steps up to ``upto``, then predict the
plateau r_inf, the steps where 80/90/95 % of the gain r_inf - r0 is first reached, and the
mean reward curve beyond, each with an uncertainty band. Two ways to get the band:

- ``method="bootstrap"`` (default): parametric bootstrap: resimulate the fitted curve plus
  Gaussian noise with the residual variance, refit every replica (one fit_many call), take
  percentiles. Covers the truth at close to the nominal rate even when the fitted part ends
  before the first overshoot (tests/test_forecast.py).
- ``method="covariance"``: faster; draw parameters from the Gaussian N(p_hat, Cov) of the
  fit (the delta method's approximation) and push every draw through the nonlinear maps;
  the Gaussian is truncated to tau > 0, mu >= 0. Good for r_inf once the overshoot is seen;
  it under-covers the gain steps when the posterior is far from Gaussian.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .fit import fit as _fit
from .fit import fit_many as _fit_many
from .trajectory import trajectory as _trajectory

__all__ = ["Forecast", "Interval", "forecast", "gain_step"]

_PARAMS = ("r0", "r_inf", "tau", "mu")


class Interval(NamedTuple):
    """A point estimate with the lower and upper ends of its band (same units)."""

    estimate: float
    lower: float
    upper: float

    def covers(self, value: float) -> bool:
        return bool(self.lower <= value <= self.upper)


# --------------------------------------------------------------------------------------------
# access to the other concepts (trajectory, fit, io) through their public API only


def trajectory_fn() -> Callable[..., np.ndarray]:
    """The library's trajectory(t, r0, r_inf, tau, mu) (docs/model.md)."""
    return _trajectory


def fit_curve(t: np.ndarray, r: np.ndarray, model: str = "oscillator") -> Any:
    """grpo_dynamics.fit(t, r, model=...) -> FitResult (docs/fitting.md)."""
    return _fit(t, r, model)  # type: ignore[arg-type]  # fit validates the name


def run_series(run: Any, r: Any = None, *, column: str = "reward") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one column, NaN rows dropped, sorted by step.

    run may be a Run from read_log (its DataFrame indexed by step), a DataFrame (index or a
    ``step`` column), or an array of steps with the values given as ``r``.
    """
    if r is not None:
        t = np.asarray(run, dtype=float).ravel()
        y = np.asarray(r, dtype=float).ravel()
        if t.shape != y.shape:
            raise ValueError(f"r: shape {y.shape} does not match t shape {t.shape}")
    else:
        frame = run_frame(run)
        if column not in frame.columns:
            raise ValueError(f"column: {column!r} not in the run (columns: {list(frame.columns)})")
        t = np.asarray(frame.index, dtype=float)
        y = frame[column].to_numpy(dtype=float)
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    order = np.argsort(t, kind="stable")
    return t[order], y[order]


def run_frame(run: Any) -> pd.DataFrame:
    """The per-step DataFrame of a Run / DataFrame (index = step)."""
    if isinstance(run, pd.DataFrame):
        frame = run
    else:
        found = [getattr(run, a, None) for a in ("frame", "data", "df", "table")]
        frames = [f for f in found if isinstance(f, pd.DataFrame)]
        if not frames:
            raise ValueError(
                f"run: expected a Run, a DataFrame or arrays, got {type(run).__name__}"
            )
        frame = frames[0]
    if "step" in frame.columns:
        frame = frame.set_index("step")
    return frame


# --------------------------------------------------------------------------------------------
# gain steps


def _unit_shape(u: np.ndarray, mu: float) -> np.ndarray:
    """Fraction of the gain reached at u = t / tau: (r(t) - r0) / (r_inf - r0), from rest."""
    return np.asarray(trajectory_fn()(u, 0.0, 1.0, 1.0, float(mu)), dtype=float)


def _unit_horizon(mu: float) -> float:
    # overdamped/critical reach 95 % by u ~ 3-4; an oscillator first crosses within half a period
    if mu <= 0.25:
        return 12.0
    w = np.sqrt(4 * mu - 1) / (2 * mu)
    return 12.0 + 2 * np.pi / w


def gain_step(
    fraction: float, tau: float, mu: float, *, t0: float = 0.0, resolution: int = 4000
) -> float:
    """First step at which the fraction ``fraction`` of the gain r_inf - r0 is reached.

    From rest at t0 (MODEL.md s.5), the normalised curve depends on (t - t0)/tau and mu only,
    so the answer is t0 + tau * u_f(mu); inf if it is never reached (impossible for a stable
    curve with fraction < 1). Grid search then bisection on the closed form.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction: must be in (0, 1), got {fraction}")
    if not tau > 0 or not mu >= 0:
        raise ValueError(f"tau, mu: need tau > 0 and mu >= 0, got tau={tau}, mu={mu}")
    u = np.linspace(0.0, _unit_horizon(mu), resolution)
    shape = _unit_shape(u, mu)
    above = np.nonzero(shape >= fraction)[0]
    if above.size == 0:
        return float("inf")
    i = int(above[0])
    if i == 0:
        return float(t0)
    lo, hi = u[i - 1], u[i]
    for _ in range(40):  # bisection on the closed form: the bracket shrinks to ~1e-12 * horizon
        mid = 0.5 * (lo + hi)
        if _unit_shape(np.array([mid]), mu)[0] >= fraction:
            hi = mid
        else:
            lo = mid
    return float(t0 + tau * 0.5 * (lo + hi))


def _gain_steps_many(fractions: Sequence[float], tau: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """(n_draws, n_fractions) first-crossing steps on a grid, linearly interpolated."""
    out = np.full((tau.size, len(fractions)), np.inf)
    frac = np.asarray(fractions, dtype=float)
    for k in range(tau.size):
        u = np.linspace(0.0, _unit_horizon(mu[k]), 1500)
        shape = _unit_shape(u, mu[k])
        for j, f in enumerate(frac):
            above = np.nonzero(shape >= f)[0]
            if above.size == 0:
                continue
            i = int(above[0])
            if i == 0:
                out[k, j] = 0.0
                continue
            # linear interpolation between the bracketing grid points
            w = (f - shape[i - 1]) / (shape[i] - shape[i - 1])
            out[k, j] = tau[k] * (u[i - 1] + w * (u[i] - u[i - 1]))
    return out


# --------------------------------------------------------------------------------------------
# the forecast


@dataclass
class Forecast:
    """Result of forecast(): fitted early part, plateau, gain steps and the predicted curve.

    Steps are in the run's own step units; rewards in the run's reward units. Bands are
    central intervals at ``level`` (e.g. 0.9 = 5th to 95th percentile) of the mean reward,
    not of a single noisy logged value.
    """

    model: str
    method: str
    level: float
    upto: float
    n_fit: int
    fit: Any
    r0: Interval
    r_inf: Interval
    tau: Interval
    mu: Interval
    gain_steps: dict[float, Interval]
    t: np.ndarray = field(repr=False)
    mean: np.ndarray = field(repr=False)
    lower: np.ndarray = field(repr=False)
    upper: np.ndarray = field(repr=False)
    noise_sd: float = float("nan")
    warnings: list[str] = field(default_factory=list)

    def predict(self, t: np.ndarray) -> np.ndarray:
        """Point prediction of the mean reward at steps t."""
        p = self.fit.params
        return np.asarray(
            trajectory_fn()(np.asarray(t, float), p["r0"], p["r_inf"], p["tau"], p.get("mu", 0.0)),
            dtype=float,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays; a never-reached gain step or NaN becomes None)."""

        def num(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        def iv(x: Interval) -> dict[str, float | None]:
            return {"estimate": num(x.estimate), "lower": num(x.lower), "upper": num(x.upper)}

        return {
            "model": self.model,
            "method": self.method,
            "level": self.level,
            "upto": self.upto,
            "n_fit": self.n_fit,
            "fit_status": str(getattr(self.fit, "status", "")),
            "regime": str(getattr(self.fit, "regime", "")),
            "r0": iv(self.r0),
            "r_inf": iv(self.r_inf),
            "tau": iv(self.tau),
            "mu": iv(self.mu),
            "gain_steps": {f"{k:g}": iv(v) for k, v in self.gain_steps.items()},
            "noise_sd": num(self.noise_sd),
            "warnings": list(self.warnings),
        }


def _fit_covariance(result: Any, names: Sequence[str]) -> np.ndarray:
    cov = np.asarray(getattr(result, "covariance", np.full((len(names),) * 2, np.nan)), dtype=float)
    return cov[: len(names), : len(names)].copy()  # callers zero rows: never touch the fit


def _draws_covariance(
    result: Any, names: Sequence[str], n: int, rng: np.random.Generator
) -> np.ndarray:
    mean = np.array([result.params[k] for k in names], dtype=float)
    cov = _fit_covariance(result, names)
    at_bound = getattr(result, "at_bound", {}) or {}
    for i, name in enumerate(names):
        if at_bound.get(name, False) or not np.isfinite(cov[i, i]):
            # a parameter held at its bound is fixed in the fit: it carries no spread
            cov[i, :] = 0.0
            cov[:, i] = 0.0
    if not np.all(np.isfinite(cov)):
        raise ValueError("run: the fit has no finite covariance; cannot form an uncertainty band")
    cov = 0.5 * (cov + cov.T)
    # eigen-decomposition tolerates the near-singular covariances of weakly identified mu
    vals, vecs = np.linalg.eigh(cov)
    scale = np.sqrt(np.clip(vals, 0, None))
    kept: list[np.ndarray] = []
    total = 0
    for _ in range(50):
        batch = mean + (rng.standard_normal((2 * n, len(names))) * scale) @ vecs.T
        # truncate to the model's domain (tau > 0, mu >= 0): clipping would pile draws onto
        # mu = 0, whose exponential curves do not fit the data the covariance came from
        valid = batch[:, 2] > 0
        if len(names) > 3:
            valid &= batch[:, 3] >= 0
        kept.append(batch[valid])
        total += int(valid.sum())
        if total >= n:
            break
    draws = np.concatenate(kept)[:n]
    if draws.shape[0] < n:
        raise ValueError("run: the fit's covariance puts almost no mass on tau > 0, mu >= 0")
    return draws


def _draws_bootstrap(
    t: np.ndarray,
    result: Any,
    names: Sequence[str],
    model: str,
    noise_sd: float,
    n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    fitted = np.asarray(result.predict(t), dtype=float)
    replicas = fitted + noise_sd * rng.standard_normal((n, t.size))
    # all refits in one call into the compiled core; failed replicas are left out
    batch = _fit_many(t, replicas, model=model)  # type: ignore[arg-type]
    params = np.asarray(batch.params, dtype=float)[:, : len(names)]
    ok = np.array([str(s) != "bad_input" for s in batch.status]) & np.all(
        np.isfinite(params), axis=1
    )
    if ok.sum() < max(20, n // 2):
        raise ValueError(f"run: only {int(ok.sum())} of {n} bootstrap refits succeeded")
    return params[ok]


def _identification_warnings(
    t: np.ndarray, y: np.ndarray, result: Any, names: Sequence[str], upto: float
) -> list[str]:
    """What the fitted part cannot tell: no trend, parameters held at a bound, no convergence."""
    from .diagnose import trend_test  # diagnose builds on this module

    out = []
    status = str(getattr(result, "status", "converged"))
    if status != "converged":
        out.append(f"the fit of the steps <= {upto:g} ended with status {status!r}")
    if not trend_test(t, y)["trend"]:
        out.append(
            f"no trend in the steps <= {upto:g}: the plateau and gain steps are not meaningful"
        )
    at_bound = getattr(result, "at_bound", {}) or {}
    bounds = getattr(result, "bounds", {}) or {}
    for name in names:
        if name == "mu" and float(result.params.get("mu", 1.0)) == 0.0:
            continue  # mu = 0 is the exponential law, a legitimate answer
        if at_bound.get(name, False):
            value = float(result.params[name])
            lo, hi = bounds.get(name, (float("nan"), float("nan")))
            side = "lower" if abs(value - lo) <= abs(value - hi) else "upper"
            out.append(
                f"{name} = {value:.4g} is held at its {side} bound: the fitted part does not "
                f"identify it and its band is not meaningful"
            )
    return out


def forecast(
    run: Any,
    r: Any = None,
    *,
    upto: float | None = None,
    fraction: float | None = None,
    column: str = "reward",
    model: str = "oscillator",
    level: float = 0.9,
    gains: Sequence[float] = (0.8, 0.9, 0.95),
    method: str = "bootstrap",
    n_samples: int = 400,
    horizon: float | None = None,
    seed: int = 0,
) -> Forecast:
    """Fit the first part of a run and predict the rest (docs/diagnose.md, "Forecast").

    run, r: a Run (read_log), a DataFrame indexed by step, or arrays of steps and rewards.
    upto: last step used for the fit (inclusive, run step units); or ``fraction`` of the
      logged steps (0 < fraction <= 1). Neither: fit everything and forecast beyond.
    model: "oscillator" or "exponential" (both from rest, MODEL.md s.5).
    level: central probability of every band. gains: fractions of r_inf - r0 whose first
      crossing step is reported. method: "covariance" or "bootstrap" (module docstring).
    horizon: last step of the predicted curve (default: the last logged step, or twice
      ``upto`` when the run ends there).
    """
    if model not in ("oscillator", "exponential"):
        raise ValueError(f"model: forecast supports 'oscillator' and 'exponential', got {model!r}")
    if method not in ("covariance", "bootstrap"):
        raise ValueError(f"method: expected 'covariance' or 'bootstrap', got {method!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: must be in (0, 1), got {level}")
    if n_samples < 20:
        raise ValueError(f"n_samples: need at least 20 draws for percentiles, got {n_samples}")
    for g in gains:
        if not 0.0 < g < 1.0:
            raise ValueError(f"gains: every fraction must be in (0, 1), got {g}")
    if upto is not None and fraction is not None:
        raise ValueError("upto, fraction: give at most one of them")
    t_all, r_all = run_series(run, r, column=column)
    if t_all.size == 0:
        raise ValueError(f"run: no finite {column!r} values")
    if fraction is not None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction: must be in (0, 1], got {fraction}")
        upto = float(t_all[max(int(np.ceil(fraction * t_all.size)) - 1, 0)])
    if upto is None:
        upto = float(t_all[-1])
    seen = t_all <= upto
    names = _PARAMS if model == "oscillator" else _PARAMS[:3]
    if seen.sum() < len(names) + 2:
        raise ValueError(f"upto: only {int(seen.sum())} points at or before step {upto}; need more")
    t, y = t_all[seen], r_all[seen]
    result = fit_curve(t, y, model)
    fitted = np.asarray(result.predict(t), dtype=float)
    noise_sd = float(np.sqrt(np.sum((fitted - y) ** 2) / max(t.size - len(names), 1)))
    warnings = _identification_warnings(t, y, result, names, upto)

    rng = np.random.default_rng(seed)
    if method == "covariance":
        draws = _draws_covariance(result, names, n_samples, rng)
    else:
        draws = _draws_bootstrap(t, result, names, model, noise_sd, n_samples, rng)
    # clip at the bounds of the model (tau > 0, mu >= 0): the boundary keeps its probability mass
    draws[:, 2] = np.clip(draws[:, 2], 1e-12, None)
    mu_draws = np.clip(draws[:, 3], 0.0, None) if model == "oscillator" else np.zeros(len(draws))

    alpha = (1.0 - level) / 2.0

    def band(values: np.ndarray, estimate: float) -> Interval:
        # inverted_cdf picks sample values, so an infinite tail stays infinite (never NaN)
        lo, hi = np.quantile(values, [alpha, 1 - alpha], method="inverted_cdf")
        return Interval(float(estimate), float(lo), float(hi))

    p = {k: float(result.params.get(k, 0.0)) for k in _PARAMS}
    steps_hat = [gain_step(g, p["tau"], p["mu"]) for g in gains]
    steps_draw = _gain_steps_many(gains, draws[:, 2], mu_draws)
    gain_steps = {float(g): band(steps_draw[:, j], steps_hat[j]) for j, g in enumerate(gains)}

    if horizon is None:
        horizon = float(t_all[-1]) if t_all[-1] > upto else 2.0 * float(upto)
    t_pred = np.linspace(min(0.0, float(t_all[0])), float(horizon), 400)
    traj = trajectory_fn()
    curves = np.empty((len(draws), t_pred.size))
    for k, d in enumerate(draws):
        curves[k] = traj(t_pred, d[0], d[1], d[2], mu_draws[k])
    lower, upper = np.quantile(curves, [alpha, 1 - alpha], axis=0)
    mean = np.asarray(traj(t_pred, p["r0"], p["r_inf"], p["tau"], p["mu"]), dtype=float)
    return Forecast(
        model=model,
        method=method,
        level=level,
        upto=float(upto),
        n_fit=int(t.size),
        fit=result,
        r0=band(draws[:, 0], p["r0"]),
        r_inf=band(draws[:, 1], p["r_inf"]),
        tau=band(draws[:, 2], p["tau"]),
        mu=band(mu_draws, p["mu"]),
        gain_steps=gain_steps,
        t=t_pred,
        mean=mean,
        lower=lower,
        upper=upper,
        noise_sd=noise_sd,
        warnings=warnings,
    )
