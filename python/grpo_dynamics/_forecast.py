"""Forecast the rest of a GRPO run from its first part (docs/forecast.md).

Real reward curves are rarely the model's from-rest oscillator: most are a slow start, a
sigmoid-like rise and a plateau (docs/model.md, "Fitting"). So the forecast does not trust
one curve. It fits a family of candidates to the prefix - the from-rest oscillator (the
library's compiled fit), the exponential, the logistic, pow3, Janoschek/Weibull, MMF
(:mod:`grpo_dynamics._curves`) and a "last level" model (the recent mean stays) - and judges
each by how well it predicts held-back parts of the prefix (rolling-origin validation: fit
the first 40/55/70 % of the prefix, predict the mean of its last 15 %). The validation
likelihood (Gaussian, error variance profiled out, one effective observation because the
origins share their target) weights the candidates. Each candidate's predictive distribution
is a normal around its prediction with variance max(parameter variance (delta method, held at
its value at the prefix's end), drift x lead), where the drift is the ensemble's validation
error per unit lead. The forecast is the weighted mean; its band is a normal whose variance is
the larger of that validated error and the candidates' disagreement (the validated error already
contains the disagreement, so the two are not added), plus the end window's noise (measured
about the fitted curve; docs/forecast.md, "Bands").

The plateau is reported only when the data identify it (:func:`grpo_dynamics.trend.progress`
says the prefix reached a plateau, or it is slowing / trendless and the candidates agree on a
limit away from its bounds); otherwise ``plateau_identified`` is False and ``plateau_bound``
gives the one-sided statement the data do support ("at least" the current level while
rising, "at most" while falling).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _validation as _v
from ._curves import FAMILIES, Family, fit_family_batch
from ._fit import fit_many as _fit_many
from ._trajectory import trajectory as _trajectory
from .io import Run, as_run
from .io.reward_range import infer_reward_range
from .trend import ar1_from_differences, ar1_mean_variance
from .trend import progress as _progress

__all__ = ["Forecast", "Interval", "forecast", "gain_step", "CANDIDATES"]

Array = NDArray[np.float64]

#: the candidate curves, in the order they are reported
CANDIDATES = ("level", "oscillator", "exponential", "logistic", "pow3", "weibull", "mmf")
ORIGINS = (0.4, 0.55, 0.7)  # rolling origins: fractions of the prefix's points used to fit
TARGET_FRACTION = 0.15  # validation target: the mean of the prefix's last 15 % of points
LEVEL_FRACTION = 0.2  # the "last level" model: mean of the last 20 % of the fitted points
MIN_POINTS = 4
MAX_FIT_POINTS = 150  # longer prefixes are fitted as this many bin means
_GRID = 200


class Interval(NamedTuple):
    """A point estimate with the lower and upper ends of its band (same units)."""

    estimate: float
    lower: float
    upper: float

    def covers(self, value: float) -> bool:
        return bool(self.lower <= value <= self.upper)


# --------------------------------------------------------------------------------------------
# gain steps of the from-rest oscillator (docs/model.md, "Closed-form trajectory")


def _unit_shape(u: np.ndarray, mu: float) -> np.ndarray:
    """Fraction of the gain reached at u = t / tau: (r(t) - r0) / (r_inf - r0), from rest."""
    return np.asarray(_trajectory(u, 0.0, 1.0, 1.0, float(mu)), dtype=float)


def _unit_horizon(mu: float) -> float:
    # overdamped/critical reach 95 % by u ~ 3-4; an oscillator first crosses within half a period
    if mu <= 0.25:
        return 12.0
    w = np.sqrt(4 * mu - 1) / (2 * mu)
    return float(12.0 + 2 * np.pi / w)


def gain_step(
    fraction: float, tau: float, mu: float, *, t0: float = 0.0, resolution: int = 4000
) -> float:
    """First step at which the fraction ``fraction`` of the gain r_inf - r0 is reached.

    From rest at t0 (docs/model.md, "Closed-form trajectory"), the normalised curve depends
    on (t - t0)/tau and mu only, so the answer is t0 + tau * u_f(mu); inf if it is never
    reached. Grid search then bisection on the closed form.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction: must be in (0, 1), got {fraction}")
    if not tau > 0:
        raise ValueError(f"tau: must be > 0, got {tau}")
    if not mu >= 0:
        raise ValueError(f"mu: must be >= 0, got {mu}")
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


# --------------------------------------------------------------------------------------------
# the result


def _num(x: float | None) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _iv(x: Interval | None) -> dict[str, float | None] | None:
    if x is None:
        return None
    return {"estimate": _num(x.estimate), "lower": _num(x.lower), "upper": _num(x.upper)}


@dataclass(frozen=True)
class Forecast:
    """Result of :func:`forecast` (docs/forecast.md). Steps and rewards in the run's units.

    ``end``: mean of the logged reward over the end window ``window`` = (from, to] steps, with
    its central band at ``level`` (the band includes the window mean's sampling noise).
    ``plateau``: the curve's limit with its band when ``plateau_identified``; else None and
    ``plateau_bound`` = ("at least" | "at most", value) when the data support one side only.
    ``step_90``: when the plateau is identified, the weighted median over the candidates of the
    first step where each reaches 90 % of its own gain (limit - start).
    ``weights``: candidate -> weight.
    ``progress``: trend.progress state of the fitted part; ``trend``: its overall direction.
    ``t``/``mean``/``lower``/``upper``: the predicted mean curve and its band on a grid.
    """

    level: float
    upto: float
    horizon: float
    n_fit: int
    end: Interval
    window: tuple[float, float]
    plateau: Interval | None
    plateau_identified: bool
    plateau_bound: tuple[str, float] | None
    step_90: float | None
    weights: dict[str, float]
    validation_rmse: dict[str, float]
    progress: str
    trend: str
    noise_sd: float
    reward_range: tuple[float, float] | None
    t: Array = field(repr=False)
    mean: Array = field(repr=False)
    lower: Array = field(repr=False)
    upper: Array = field(repr=False)
    warnings: tuple[str, ...] = ()
    _curve: Callable[[Array], Array] | None = field(default=None, repr=False, compare=False)

    def predict(self, t: ArrayLike) -> Array:
        """Ensemble mean reward at steps ``t`` (the weighted mean of the candidates)."""
        steps = np.asarray(t, dtype=float)
        if self._curve is None:
            return np.asarray(np.interp(steps, self.t, self.mean), dtype=float)
        return self._curve(steps)

    def __repr__(self) -> str:
        if self.plateau_identified and self.plateau is not None:
            plat = f"plateau {self.plateau.estimate:.4g} [{self.plateau.lower:.4g}, "
            plat += f"{self.plateau.upper:.4g}]"
        elif self.plateau_bound is not None:
            plat = f"plateau not identified ({self.plateau_bound[0]} {self.plateau_bound[1]:.4g})"
        else:
            plat = "plateau not identified"
        top = max(self.weights, key=self.weights.__getitem__)
        return (
            f"Forecast(from step {self.upto:g} to {self.horizon:g}: end {self.end.estimate:.4g} "
            f"[{self.end.lower:.4g}, {self.end.upper:.4g}] at {self.level:.0%}, {plat}, "
            f"{self.progress}, top model {top} {self.weights[top]:.2f})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays; NaN and inf become None)."""
        return {
            "level": self.level,
            "upto": self.upto,
            "horizon": self.horizon,
            "n_fit": self.n_fit,
            "end": _iv(self.end),
            "window": [self.window[0], self.window[1]],
            "plateau": _iv(self.plateau),
            "plateau_identified": self.plateau_identified,
            "plateau_bound": None
            if self.plateau_bound is None
            else {"side": self.plateau_bound[0], "value": _num(self.plateau_bound[1])},
            "step_90": _num(self.step_90),
            "weights": {k: float(v) for k, v in self.weights.items()},
            "validation_rmse": {k: _num(v) for k, v in self.validation_rmse.items()},
            "progress": self.progress,
            "trend": self.trend,
            "noise_sd": _num(self.noise_sd),
            "reward_range": None if self.reward_range is None else list(self.reward_range),
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------------------------
# candidates


@dataclass(frozen=True)
class _Frame:
    """Normalised coordinates of the prefix: x = (t - t0) / span, z = (y - centre) / scale."""

    t0: float
    span: float
    dx: float
    centre: float
    scale: float

    def x(self, t: Array) -> Array:
        return (np.asarray(t, float) - self.t0) / self.span

    def z(self, y: Array) -> Array:
        return (np.asarray(y, float) - self.centre) / self.scale


@dataclass(frozen=True)
class _Fitted:
    """One candidate fitted to some points: a curve of x (normalised units) and its asymptote,
    with a function giving the parameter variance of any linear functional of the curve."""

    curve: Callable[[Array], Array]
    asymptote: float
    asymptote_var: float
    gradient_var: Callable[[Array], Array]  # x grid -> variance of the curve at each x


def _level_fit(x: Array, z: Array, noise_var: float) -> _Fitted:
    w = max(3, int(math.ceil(LEVEL_FRACTION * z.size)))
    w = min(w, z.size)
    c = float(np.mean(z[-w:]))
    var = noise_var / w
    return _Fitted(
        lambda xx: np.full(np.shape(xx), c),
        c,
        var,
        lambda xx: np.full(np.shape(xx), var),
    )


def _delta_var(
    f: Callable[[Array, Array], Array], params: Array, cov: Array
) -> Callable[[Array], Array]:
    """Pointwise variance g(x)^T Cov g(x) of f(x; params) by central differences."""
    free = np.nonzero(np.diag(cov) > 0)[0]
    if free.size == 0 or not np.all(np.isfinite(cov)):

        def zero(xx: Array) -> Array:
            return np.zeros(np.shape(xx))

        return zero

    def var(xx: Array) -> Array:
        grads = []
        for i in free:
            h = 1e-5 * max(abs(params[i]), 1e-3)
            up, dn = params.copy(), params.copy()
            up[i] += h
            dn[i] -= h
            grads.append((f(xx, up) - f(xx, dn)) / (2 * h))
        g = np.array(grads)
        sub = cov[np.ix_(free, free)]
        return np.asarray(np.einsum("ix,ij,jx->x", g, sub, g), dtype=float)

    return var


def _shifted(fam: Family, dx: float) -> Callable[[Array, Array], Array]:
    """f(x, params) of a family with u = x + dx."""

    def f(xx: Array, pp: Array) -> Array:
        xx = np.asarray(xx, dtype=float)
        return fam.f(xx, xx + dx, pp)

    return f


def _bind(f: Callable[[Array, Array], Array], p: Array) -> Callable[[Array], Array]:
    def curve(xx: Array) -> Array:
        return f(xx, p)

    return curve


def _family_fits(
    name: str, fr: _Frame, x: Array, z: Array, lengths: list[int], a_lo: float, a_hi: float
) -> list[_Fitted | None]:
    n_par = len(FAMILIES[name].names)
    out: list[_Fitted | None] = []
    for m, res in zip(
        lengths, fit_family_batch(name, x, x + fr.dx, lengths, z, a_lo, a_hi), strict=True
    ):
        if not res.ok or m < n_par + 2:
            out.append(None)
            continue
        fam = res.family
        p = res.params
        f = _shifted(fam, fr.dx)
        ia = fam.asymptote
        out.append(
            _Fitted(
                _bind(f, p),
                float(p[ia]),
                float(res.covariance[ia, ia]),
                _delta_var(f, p, res.covariance),
            )
        )
    return out


def _oscillator_fits(
    fr: _Frame,
    pieces: Sequence[tuple[Array, Array]],
    a_lo: float,
    a_hi: float,
    x0: float = 0.0,
    exponential_too: bool = False,
) -> list[_Fitted | None]:
    """The from-rest oscillator (docs/model.md) on every piece, in one fit_many call, from rest
    at x0 (the normalised t0; 0 is the first logged step). With ``exponential_too`` (the
    exponential is a candidate as well), a fit of the last piece (the whole prefix) with mu held
    at 0 is that exponential and is left out: the same curve must not count twice."""
    bounds = {"r_inf": (a_lo, a_hi)}
    batch = _fit_many(
        [(x, z) for x, z in pieces], model="oscillator", bounds=bounds, threads=1, t0=x0
    )
    out: list[_Fitted | None] = []
    for k in range(len(pieces)):
        p = np.asarray(batch.params[k], dtype=float)
        if str(batch.status[k]) == "bad_input" or not np.all(np.isfinite(p)):
            out.append(None)
            continue
        pinned = np.asarray(batch.at_bound[k], dtype=bool)
        if exponential_too and k == len(pieces) - 1 and pinned[3] and p[3] <= 0:
            out.append(None)
            continue
        if pinned[2] or (pinned[3] and p[3] > 0):
            # tau or a nonzero mu held at a bound: a fragment of a slow cosine, not a curve
            # whose r_inf means anything (docs/model.md, "Fitting"); mu = 0 is the exponential
            out.append(None)
            continue
        cov = np.nan_to_num(np.asarray(batch.covariance[k], dtype=float), nan=0.0)
        cov = cov[: p.size, : p.size]

        def f(xx: Array, pp: Array) -> Array:
            return np.asarray(
                _trajectory(
                    np.asarray(xx, float) - x0, pp[0], pp[1], max(pp[2], 1e-9), max(pp[3], 0.0)
                ),
                dtype=float,
            )

        out.append(
            _Fitted(
                _bind(f, p),
                float(p[1]),
                float(cov[1, 1]),
                _delta_var(f, p, cov),
            )
        )
    return out


def _fit_all(
    names: Sequence[str],
    fr: _Frame,
    x: Array,
    z: Array,
    lengths: list[int],
    a_lo: float,
    a_hi: float,
    noise_var: float,
    x0: float = 0.0,
) -> dict[str, list[_Fitted | None]]:
    """Every candidate fitted to the first ``lengths[i]`` points, for every i."""
    out: dict[str, list[_Fitted | None]] = {}
    for name in names:
        if name == "level":
            out[name] = [_level_fit(x[:m], z[:m], noise_var) for m in lengths]
        elif name == "oscillator":
            usable = [m for m in lengths if m >= 6]
            pieces = [(x[:m], z[:m]) for m in usable]
            exp_too = "exponential" in names
            fits = iter(_oscillator_fits(fr, pieces, a_lo, a_hi, x0, exp_too) if usable else [])
            out[name] = [next(fits) if m >= 6 else None for m in lengths]
        else:
            out[name] = _family_fits(name, fr, x, z, lengths, a_lo, a_hi)
    return out


# --------------------------------------------------------------------------------------------
# the forecast


def _residual_noise(
    fits: dict[str, list[_Fitted | None]], x: Array, z: Array
) -> tuple[float, float] | None:
    """Noise about the curve: (marginal variance, AR(1) coefficient) of the residuals of the
    candidate whose fit to the whole prefix leaves the smallest residual variance per degree
    of freedom (raw points, normalised units). None when no candidate leaves 3 degrees."""
    best: tuple[float, Array] | None = None
    for name, row in fits.items():
        f = row[-1]
        n_par = 4 if name == "oscillator" else len(FAMILIES[name].names) if name in FAMILIES else 1
        if f is None or name == "level" or z.size - n_par < 3:
            continue
        r = z - f.curve(x)
        if not np.all(np.isfinite(r)):
            continue
        s2 = float(r @ r) / (z.size - n_par)
        if best is None or s2 < best[0]:
            best = (s2, r)
    if best is None or best[0] <= 0:
        return None
    r = best[1] - best[1].mean()
    phi = float(r[:-1] @ r[1:]) / float(r @ r) if r.size > 3 else 0.0
    return best[0], float(min(max(phi, 0.0), 0.9))


def _band(
    means: Array,
    param_var: Array,
    drift_var: Array | float,
    weights: Array,
    z: float,
    noise_var: float = 0.0,
) -> tuple[Array, Array, Array]:
    """(mean, lower, upper) of the combined forecast; means and param_var are (M,) or (M, K)
    (M candidates), drift_var broadcasts against them, ``noise_var`` (the end window's own
    noise) is added to the variance.

    The band is a normal around the weighted mean whose variance is the larger of two estimates
    of the combination's error (docs/forecast.md, "Bands"): the validated one, each candidate's
    max(parameter variance, drift x lead) weighted, and the candidates' disagreement (their
    weighted spread about the mean) plus their parameter variance. The validated drift is the
    combination's own held-back error, so it already contains the disagreement the candidates
    had at the origins: adding the two counted that part twice.
    """
    mean = weights @ means
    validated = weights @ np.maximum(param_var, drift_var)
    disagreement = weights @ (means - mean) ** 2 + weights @ param_var
    half = z * np.sqrt(np.maximum(validated, disagreement) + noise_var)
    return mean, mean - half, mean + half


def forecast(
    run: Run | Any,
    reward: Sequence[float] | np.ndarray | None = None,
    *,
    upto: float | None = None,
    fraction: float | None = None,
    horizon: float | None = None,
    window: float | None = None,
    column: str = "reward",
    level: float = 0.9,
    reward_range: Sequence[float] | Literal["auto"] | None = "auto",
    candidates: Sequence[str] = CANDIDATES,
    seed: int = 0,
    t0: float | None = None,
) -> Forecast:
    """Predict the rest of a run from its first part (docs/forecast.md).

    run, reward: anything :func:`grpo_dynamics.io.as_run` accepts (a Run, a DataFrame indexed
      by step or with a ``step`` column, a mapping, or an array of steps with ``reward``).
    upto: last step of the fitted part (inclusive); or ``fraction`` of the logged points
      (0 < fraction <= 1). Neither: the whole run is the prefix.
    horizon: step to forecast to (default: the last logged step, or twice the fitted span
      when the run ends at ``upto``). window: the end window, in steps, whose mean reward is
      ``Forecast.end`` (default 10 % of the span from the first step to ``horizon``).
    level: central probability of every band. reward_range: (lo, hi), the reward's possible
      range when known: plateaus and bands stay inside it; ``"auto"`` (default): the range the
      log's own numbers prove up to ``upto``
      (:func:`grpo_dynamics.io.reward_range.infer_reward_range`: a 0/1 reward shows in its
      logged mean and std), else none; None: no range. candidates: a subset of
      :data:`CANDIDATES`. seed: kept for callers; the bands are closed-form normals, so it
      changes nothing.
    t0: the step training started, the oscillator candidate's from-rest time (docs/model.md);
      default the first logged step (the other candidates have a free origin).
    """
    if t0 is not None and not math.isfinite(float(t0)):
        raise ValueError(f"t0: must be finite, got {t0}")
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level: must be in (0, 1), got {level!r}")
    checked = _v.range_or_auto("reward_range", reward_range)
    auto_range = checked == "auto"
    rng_range = None if isinstance(checked, str) else checked
    names = [c for c in CANDIDATES if c in set(candidates)]
    unknown = set(candidates) - set(CANDIDATES)
    if unknown or not names:
        raise ValueError(
            f"candidates: must be a non-empty subset of {CANDIDATES}, got {tuple(candidates)!r}"
        )
    if upto is not None and fraction is not None:
        raise ValueError(
            f"upto: give upto or fraction, not both (got upto={upto}, fraction={fraction})"
        )
    the_run = as_run(run, reward)
    t_all, y_all = the_run.series(column)
    if t_all.size == 0:
        raise ValueError(f"run: no finite {column!r} values")
    if fraction is not None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction: must be in (0, 1], got {fraction}")
        upto = float(t_all[max(int(math.ceil(fraction * t_all.size)) - 1, 0)])
    if upto is None:
        upto = float(t_all[-1])
    seen = t_all <= upto
    if seen.sum() < MIN_POINTS:
        raise ValueError(
            f"upto: must leave at least {MIN_POINTS} points to fit, got "
            f"{int(seen.sum())} at or before step {upto:g}"
        )
    t, y = t_all[seen], y_all[seen]
    notes: list[str] = []
    if rng_range is not None:
        slack = 1e-9 * max(1.0, abs(rng_range[0]), abs(rng_range[1]))
        outside = int(np.sum((y < rng_range[0] - slack) | (y > rng_range[1] + slack)))
        if outside:
            notes.append(
                f"reward_range [{rng_range[0]:g}, {rng_range[1]:g}]: {outside} of {y.size} "
                f"logged rewards in the fitted part lie outside it (from {float(y.min()):.4g} "
                f"to {float(y.max()):.4g}); a mean of rewards in the range cannot, so the range "
                "is probably not the reward's (it still bounds the plateau and the bands)"
            )
    if auto_range:
        proved = infer_reward_range(the_run, column, upto=upto)
        if proved is not None:
            rng_range = (proved.low, proved.high)
            notes.append(
                f"reward range [{proved.low:g}, {proved.high:g}] from the log: {proved.reason}"
            )
    if horizon is None:
        horizon = float(t_all[-1]) if t_all[-1] > upto else float(2 * upto - t[0])
    if not horizon >= upto:
        raise ValueError(f"horizon: must be >= upto = {upto:g}, got {horizon}")
    if window is None:
        window = 0.1 * (float(horizon) - float(t[0]))
    if not window > 0:
        raise ValueError(f"window: must be > 0, got {window}")
    n = n_raw = t.size
    prog = _progress(t, y)
    trend_dir = "none" if prog.overall is None else prog.overall.direction

    # normalised frame
    span = float(t[-1] - t[0]) or 1.0
    dt = float(np.median(np.diff(t))) if n > 1 else 1.0
    scale = float(np.std(y)) or 1.0
    fr = _Frame(float(t[0]), span, dt / span, float(np.mean(y)), scale)
    x, z = fr.x(t), fr.z(y)
    zr = float(np.ptp(z)) or 1.0  # a constant prefix: limits within one unit of its value
    a_lo, a_hi = float(z.min() - 2.0 * zr), float(z.max() + 2.0 * zr)
    if rng_range is not None:
        a_lo = max(a_lo, float(fr.z(np.array(rng_range[0]))))
        a_hi = min(a_hi, float(fr.z(np.array(rng_range[1]))))
        if not a_lo < a_hi:
            a_lo, a_hi = (float(fr.z(np.array(v))) for v in rng_range)
    sd_point = float(np.median(np.abs(np.diff(z))) / (0.6745 * math.sqrt(2.0))) if n > 2 else 0.0
    if sd_point <= 0:
        sd_point = float(np.std(np.diff(z)) / math.sqrt(2.0)) if n > 2 else 0.0
    phi = ar1_from_differences(z, cap=0.9)
    # a first estimate, replaced by the residual one below once the curves are fitted: AR(1)
    # noise has first differences of variance 2 s^2 (1 - phi), so s^2 = sd_point^2 / (1 - phi),
    # and a long mean of m points has variance s^2 (1 + phi) / (1 - phi) / m. On a smooth
    # curve the differences carry the trend, which reads as phi -> 0.9 and inflated the noise
    noise_point = sd_point**2 * (1 + phi) / (1 - phi) ** 2
    noise_var = noise_point
    s2_point = sd_point**2 / (1 - phi)  # marginal variance of one logged value about the curve
    x_raw, z_raw = x, z
    bin_size = 1.0
    if n > MAX_FIT_POINTS:  # long prefixes: fit means of equal-count bins (same curve, faster)
        edges = np.linspace(0, n, MAX_FIT_POINTS + 1).round().astype(np.int64)
        counts = np.diff(edges)
        x = np.add.reduceat(x, edges[:-1]) / counts
        z = np.add.reduceat(z, edges[:-1]) / counts
        bin_size = float(np.mean(counts))
        noise_var = noise_point / bin_size
        n = MAX_FIT_POINTS

    # rolling-origin validation
    n_target = max(2, int(math.ceil(TARGET_FRACTION * n)))
    pieces: list[int] = []
    leads: list[float] = []
    for c in ORIGINS:
        m = int(math.ceil(c * n))
        if m < 3 or m > n - n_target:
            continue
        pieces.append(m)
        leads.append(float(np.mean(x[n - n_target :]) - x[m - 1]))
    target = float(np.mean(z[n - n_target :]))
    target_var = noise_var / n_target
    x0 = 0.0 if t0 is None else float(fr.x(np.array(float(t0))))
    fits = _fit_all(names, fr, x, z, [*pieces, n], a_lo, a_hi, noise_var, x0)
    # the noise about the curve: the residuals of the whole-prefix fits (docs/forecast.md,
    # "Bands"); it sets the validation target's variance, the level's and the end window's
    resid = _residual_noise(fits, x_raw, z_raw)
    if resid is not None:
        s2_point, phi = resid
        noise_point = s2_point * (1 + phi) / (1 - phi)
        noise_var = noise_point / bin_size
        target_var = noise_var / n_target
        if "level" in fits:
            fits["level"] = [_level_fit(x[:m], z[:m], noise_var) for m in [*pieces, n]]
    x_target = x[n - n_target :]
    errors: dict[str, Array] = {}
    for name in names:
        row = fits[name]
        # a candidate without a usable fit at some origin is left out: scoring it there as the
        # last level instead (tried) raised the median error from 30% prefixes 0.188 -> 0.213
        # on the shared real runs (benchmarks/bench_forecast.py), behind scipy's exponential
        if row[-1] is None or any(f is None for f in row[:-1]) or not pieces:
            continue
        errors[name] = np.array(
            [float(np.mean(f.curve(x_target))) - target for f in row[:-1] if f is not None]
        )
    if not errors:  # too few points to validate: the last level alone
        notes.append("too few points for rolling-origin validation: the last level is used")
        errors = {"level": np.zeros(0)}
        pieces, leads = [], []  # nothing was validated: no drift from the origins
        fits["level"] = [_level_fit(x, z, noise_var)]
    lead_arr = np.array(leads)
    used = list(errors)
    # validation likelihood with the error variance profiled out; every origin predicts the
    # same target window, so their errors are one effective observation (n_eff = 1)
    mse = np.array([float(np.mean(errors[k] ** 2)) if errors[k].size else 0.0 for k in used])
    logw = -0.5 * np.log(mse + target_var + 1e-12)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    # the ensemble's own extrapolation error, beyond the target's noise, grows like a drift:
    # its variance is proportional to the lead (docs/forecast.md, "Bands")
    if lead_arr.size:
        combined = np.sum([wk * errors[k] for wk, k in zip(w, used, strict=True)], axis=0)
        # an origin's fit used m_o of the n points: its error variance is ~ n / m_o times
        # that of the fit on the whole prefix, so each excess is scaled by m_o / n
        excess = (combined**2 - target_var) * np.array(pieces, dtype=float) / n
        drift = float(max(np.sum(excess), 0.0) / np.sum(lead_arr))
    else:  # nothing to validate on: allow the level to move as much as it did in the prefix
        k_edge = max(1, n // 3)
        drift = float((np.mean(z[-k_edge:]) - np.mean(z[:k_edge])) ** 2)

    finals = [fits[k][-1] for k in used]
    assert all(f is not None for f in finals)
    comps: list[_Fitted] = [f for f in finals if f is not None]

    # predicted curve and end window
    t_grid = np.linspace(float(t[0]), float(horizon), _GRID)
    xg = fr.x(t_grid)
    lead_g = np.maximum(xg - 1.0, 0.0)
    n_end = max(1, int(round(window / dt)))
    # the logged steps of the end window (horizon - window, horizon], one logging interval apart
    t_end = float(horizon) - window + window / n_end * np.arange(1, n_end + 1)
    xe = fr.x(np.asarray(t_end, dtype=np.float64))
    end_noise = ar1_mean_variance(s2_point, phi, n_end)
    lead_e = float(np.mean(np.maximum(xe - 1.0, 0.0)))
    means_g = np.array([c.curve(xg) for c in comps])
    # the delta method is trusted where the data are: beyond the prefix its variance is held at
    # its value at the prefix's end and the extrapolation error is the validated drift (far
    # out, the delta method is ruled by weakly identified shape parameters such as pow3's or
    # MMF's exponent and says nothing the validation does not measure; docs/forecast.md, "Bands")
    xg_in, xe_in = np.minimum(xg, 1.0), np.minimum(xe, 1.0)
    par_g = np.array([c.gradient_var(xg_in) for c in comps])
    means_e = np.array([float(np.mean(c.curve(xe))) for c in comps])
    par_e = np.array([float(np.mean(c.gradient_var(xe_in))) for c in comps])
    z_band = NormalDist().inv_cdf(0.5 + float(level) / 2.0)
    mean_g, lower_g, upper_g = _band(means_g, par_g, drift * lead_g, w, z_band)
    # the end window's band also holds the window mean's own noise
    mean_e, lower_e, upper_e = (
        float(v) for v in _band(means_e, par_e, drift * lead_e, w, z_band, end_noise)
    )

    def back(v: Array | float) -> Array:
        out = np.asarray(v, float) * fr.scale + fr.centre
        if rng_range is not None:
            out = np.clip(out, rng_range[0], rng_range[1])
        return out

    end = Interval(float(back(mean_e)), float(back(lower_e)), float(back(upper_e)))

    # plateau: the combination of the candidates' limits, identified only when the data say so
    asym = np.array([c.asymptote for c in comps])
    lead_inf = max(lead_e, 1.0)
    var_a = np.array([c.asymptote_var for c in comps])
    plateau_est, lo_a, hi_a = (float(v) for v in _band(asym, var_a, drift * lead_inf, w, z_band))
    band_a = (lo_a, hi_a)
    at_edge = float(
        np.sum(w[(asym <= a_lo + 1e-6 * (a_hi - a_lo)) | (asym >= a_hi - 1e-6 * (a_hi - a_lo))])
    )
    k_recent = max(3, int(math.ceil(LEVEL_FRACTION * n)))
    recent = float(np.mean(z[-k_recent:]))
    recent_se = math.sqrt(noise_var / min(k_recent, n))
    z90 = 1.6448536269514722
    state = prog.state
    # identified: a plateau reached, or a run slowing / without trend whose candidates agree on
    # a limit (most weight off the bounds, band narrower than the range the prefix covers)
    agree = at_edge < 0.5 and (band_a[1] - band_a[0]) < max(zr, 1e-12)
    identified = state == "plateau" or (state in ("slowing", "flat") and agree)
    direction = trend_dir if state == "slowing" else state
    plateau: Interval | None = None
    bound: tuple[str, float] | None = None
    if identified:
        plateau = Interval(float(back(plateau_est)), float(back(band_a[0])), float(back(band_a[1])))
    elif direction in ("rising", "falling"):
        # "at least the current level" holds for a monotone approach; with momentum the
        # reward can overshoot its plateau and come back (docs/model.md): when the oscillator
        # fitted to the whole prefix (a converged fit, neither tau nor mu at a bound) settles
        # beyond the stated edge, the data do not support that side: none is stated
        sign = 1.0 if direction == "rising" else -1.0
        edge = recent - sign * z90 * recent_se
        osc = fits.get("oscillator", [None])[-1]
        if osc is not None and sign * (osc.asymptote - edge) < 0:
            notes.append(
                f"no one-sided plateau bound: the oscillator fitted to the prefix overshoots and "
                f"settles at {float(back(osc.asymptote)):.4g}, "
                f"{'below' if sign > 0 else 'above'} the current level"
            )
        else:
            bound = ("at least" if sign > 0 else "at most", float(back(edge)))
    if not identified:
        notes.append(f"plateau not identified: the fitted part is {state!r} at its end")

    # step to 90 % of the gain: each moving candidate's own first crossing of 90 % of the way
    # from its start to its own limit; the weighted median of those steps (docs/forecast.md,
    # "Plateau"). A candidate that does not get there within 50 spans counts as later than all.
    step_90: float | None = None
    if identified and state != "flat" and plateau is not None:
        t_far = np.linspace(float(t[0]), float(t[0]) + 50.0 * span, 5000)
        xf = fr.x(t_far)
        crossings: list[float] = []
        cross_w: list[float] = []
        for name, comp, wk in zip(used, comps, w, strict=True):
            curve_far = comp.curve(xf)
            gain = comp.asymptote - float(curve_far[0])
            if name == "level" or not abs(gain) > 1e-9 * zr:
                continue
            reached = np.nonzero((curve_far - curve_far[0]) / gain >= 0.9)[0]
            crossings.append(float(t_far[int(reached[0])]) if reached.size else math.inf)
            cross_w.append(float(wk))
        if crossings and sum(cross_w) > 0:
            order = np.argsort(crossings)
            cum = np.cumsum(np.array(cross_w)[order]) / sum(cross_w)
            median = float(np.array(crossings)[order][int(np.searchsorted(cum, 0.5))])
            step_90 = median if math.isfinite(median) else None

    weights = {k: float(v) for k, v in zip(used, w, strict=True)}
    rmse = {
        k: float(math.sqrt(np.mean(errors[k] ** 2)) * fr.scale) if errors[k].size else math.nan
        for k in used
    }

    def curve(steps: Array) -> Array:
        xs = fr.x(steps)
        return back(w @ np.array([c.curve(xs) for c in comps]))

    return Forecast(
        level=float(level),
        upto=float(upto),
        horizon=float(horizon),
        n_fit=int(n_raw),
        end=end,
        window=(float(horizon) - float(window), float(horizon)),
        plateau=plateau,
        plateau_identified=bool(identified),
        plateau_bound=bound,
        step_90=step_90,
        weights=weights,
        validation_rmse=rmse,
        progress=str(state),
        trend=str(trend_dir),
        noise_sd=float(math.sqrt(s2_point) * fr.scale),
        reward_range=rng_range,
        t=t_grid,
        mean=back(mean_g),
        lower=back(lower_g),
        upper=back(upper_g),
        warnings=tuple(notes),
        _curve=curve,
    )
