"""Is there a trend, and is the run still moving? The one verdict every module uses.

`compare`, `forecast` and `diagnose` all ask the same two questions of a reward curve: does it
move at all (:func:`trend_test`), and is it still moving at the end (:func:`progress`). They
get their answer here, so they cannot disagree (docs/model.md, "Fitting real runs").

The test is Mann-Kendall's rank statistic S = sum_{i<j} sign(y_j - y_i) with its variance
inflated for serial correlation (an AR(1) noise coefficient estimated from first
differences, which a smooth trend barely touches). It is distribution-free, so a sigmoid
rise, a saturating exponential and a slow creep are all "monotone" alike, and a plateau
with correlated noise is not a trend. Long runs are first averaged into at most
``MAX_BINS`` contiguous bins of equal count, which keeps the test O(bins^2) and makes the
per-bin noise nearly normal. The slope reported beside it is Sen's (the median pairwise
slope) with its rank-based confidence interval.

Measured false-alarm rates and power are in docs/diagnose.md ("One trend verdict") and are
checked by tests/test_trend.py against direct simulation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _validation as _v

__all__ = ["TrendTest", "Progress", "trend_test", "progress", "MAX_BINS", "ALPHA"]

MAX_BINS = 60  # above this many points the series is averaged into this many contiguous bins
ALPHA = 0.05  # two-sided false-alarm rate of the verdict on trendless (autocorrelated) noise
MIN_POINTS = 5  # fewer points cannot show a trend at ALPHA with a rank test
# the recent window for "still moving": the last third, at least this many points
RECENT_FRACTION = 1.0 / 3.0
MIN_RECENT = 8
# a plateau is declared when the recent slope, at its one-sided PLATEAU_LEVEL confidence
# bound, would add less than PLATEAU_FRACTION of the run's gain over another recent window
PLATEAU_FRACTION = 0.2
PLATEAU_LEVEL = 0.9

Direction = Literal["rising", "falling", "none"]
State = Literal["flat", "rising", "falling", "plateau", "slowing", "too short"]


@dataclass(frozen=True)
class TrendTest:
    """Mann-Kendall trend test of one series (reward units, steps as logged).

    ``direction`` is "rising"/"falling" when the two-sided p-value is below ``alpha``, else
    "none". ``slope`` is Sen's slope per step with its ``slope_interval`` at level 1 - alpha;
    ``change`` = slope x span. ``noise_sd`` is the point-to-point noise (median absolute first
    difference / (0.6745 sqrt 2)), ``autocorrelation`` the AR(1) coefficient of the per-point
    noise (from first differences, so a smooth trend does not inflate it) and
    ``variance_inflation`` the factor applied to Var(S).
    """

    direction: Direction
    p_value: float
    statistic: float
    slope: float
    slope_interval: tuple[float, float]
    change: float
    noise_sd: float
    autocorrelation: float
    variance_inflation: float
    n: int
    n_bins: int
    alpha: float

    @property
    def present(self) -> bool:
        """True when the series has a trend at level ``alpha``."""
        return self.direction != "none"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["slope_interval"] = list(self.slope_interval)
        out["present"] = self.present
        return out

    def __repr__(self) -> str:
        return (
            f"TrendTest({self.direction}, p={self.p_value:.3g}, change={self.change:+.4g} "
            f"over {self.n} points, noise_sd={self.noise_sd:.3g})"
        )


@dataclass(frozen=True)
class Progress:
    """Where a run stands: the whole-run trend and the trend of its recent window.

    ``state`` is one of
    - "flat": no trend over the whole run;
    - "rising" / "falling": the recent window still moves (in that direction);
    - "plateau": the run moved, and the recent window's slope at its confidence limit adds
      less than ``PLATEAU_FRACTION`` of the total change per window (even when a small drift
      is statistically significant): more steps will add little;
    - "slowing": the run moved, the recent window shows no significant trend, but the data
      cannot exclude a continued rise (too noisy or too short to call a plateau);
    - "too short": fewer than ``MIN_POINTS`` points.
    """

    state: State
    overall: TrendTest | None
    recent: TrendTest | None
    recent_start: float

    @property
    def still_moving(self) -> bool:
        return self.state in ("rising", "falling")

    @property
    def saturated(self) -> bool:
        return self.state == "plateau"

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "overall": None if self.overall is None else self.overall.to_dict(),
            "recent": None if self.recent is None else self.recent.to_dict(),
            "recent_start": self.recent_start,
        }

    def __repr__(self) -> str:
        change = "" if self.overall is None else f", change={self.overall.change:+.4g}"
        return f"Progress({self.state}{change}, recent window from step {self.recent_start:g})"


def _series(steps: ArrayLike, reward: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    t, y = _v.paired(steps, reward)
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    order = np.argsort(t, kind="stable")
    return t[order], y[order]


def _bin(t: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
    if t.size <= MAX_BINS:
        return t, y
    edges = np.linspace(0, t.size, MAX_BINS + 1).round().astype(np.int64)
    counts = np.diff(edges)
    sums_t = np.add.reduceat(t, edges[:-1])
    sums_y = np.add.reduceat(y, edges[:-1])
    return sums_t / counts, sums_y / counts


def _sen(t: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    i, j = np.triu_indices(t.size, k=1)
    dt = t[j] - t[i]
    ok = dt > 0
    return np.sort((y[j] - y[i])[ok] / dt[ok])


def noise_from_differences(y: NDArray[np.float64]) -> float:
    """Point-to-point noise sd from first differences (1.4826 x their MAD about the median,
    / sqrt 2): blind to a slow trend. NaN below 3 points. Shared by trend, diagnose's
    detectors and the forecast, so all three measure noise the same way."""
    if y.size < 3:
        return float("nan")
    d = np.diff(y)
    mad = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2.0)
    if mad > 0:
        return mad
    return float(np.std(d)) / math.sqrt(2.0)  # mostly-constant series (ties)


def ar1_from_differences(
    y: NDArray[np.float64], *, margin: float = 0.0, cap: float = 0.95
) -> float:
    """AR(1) coefficient of the noise, from the lag-1 autocorrelation of first differences.

    For AR(1) noise the differences have lag-1 autocorrelation -(1 - phi) / 2, so
    phi = 1 + 2 r_d. A smooth trend barely enters the differences (its contribution is
    sum (mu')^2, tiny beside the noise's 2 n sigma^2), which a linear detrend of a sigmoid
    rise would not achieve. ``margin`` standard errors are added (the trend test uses half a
    standard error: short, noisy estimates must not turn correlated noise into trends); the
    result is clipped to [0, cap].
    """
    d = np.diff(y)
    if d.size < 4:
        return 0.0
    d = d - d.mean()
    denom = float(d @ d)
    if denom <= 0.0:
        return 0.0
    phi = 1.0 + 2.0 * float(d[:-1] @ d[1:]) / denom
    if margin:
        phi += margin * math.sqrt(max(1.0 - phi * phi, 0.05) / y.size)
    return float(min(max(phi, 0.0), cap))


def ar1_mean_variance(s2: float, phi: float, m: int) -> float:
    """Variance of the mean of m consecutive AR(1) values of marginal variance s2:
    s2 / m (1 + 2 sum_{j<m} (1 - j/m) phi^j). Shared by the level test and the forecast."""
    j = np.arange(1, m)
    return float(s2 / m * (1.0 + 2.0 * np.sum((1.0 - j / m) * phi**j)))


def _inflation(phi: float, n_raw: int, m: int) -> float:
    """Hamed & Rao (1998) factor Var(S)/Var_iid(S) for the m bin means of AR(1) noise."""
    if phi <= 0.0 or m < 3:
        return 1.0
    b = n_raw / m  # points per bin (fractional bins use the mean size)
    size = max(int(round(b)), 1)
    # correlation of bin means at lag k: sum over pairs of phi^|k b + v - u|
    offsets = np.arange(-(size - 1), size)
    pair_counts = size - np.abs(offsets)
    lags = np.arange(0, m - 1)
    h = np.abs(lags[:, None] * size + offsets[None, :])
    cov = (pair_counts[None, :] * phi ** h.astype(float)).sum(axis=1)
    rho = cov[1:] / cov[0]
    k = lags[1:].astype(float)
    rank_rho = (6.0 / math.pi) * np.arcsin(np.clip(rho, -1.0, 1.0) / 2.0)
    weights = (m - k) * (m - k - 1) * (m - k - 2)
    factor = 1.0 + 2.0 * float(np.sum(weights * rank_rho)) / (m * (m - 1.0) * (m - 2.0))
    return max(factor, 1.0)


def _z(p_two_sided: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(1.0 - p_two_sided / 2.0))


def _level_p_value(y: NDArray[np.float64], phi: float) -> float:
    """p-value of "the mean is constant" against any change of level (chi-square on bin means).

    Mann-Kendall is blind to a rise that overshoots and settles, or a rise followed by a fall:
    its pairs cancel. Here the series is cut into ``clip(n // 8, 3, 12)`` contiguous bins and
    sum_k (mean_k - pooled)^2 / Var(mean_k) is referred to chi-square(bins - 1), with the
    point variance from the first differences (robust, so a jump does not inflate it) and
    Var(mean_k) exact for AR(1) noise of coefficient ``phi``.
    """
    from scipy.special import chdtrc

    n = y.size
    m = int(min(max(n // 8, 3), 12))
    if n < 2 * m:
        return 1.0
    diffs = np.diff(y)
    spread = 1.4826 * float(np.median(np.abs(diffs - np.median(diffs))))
    if spread <= 0.0:
        spread = float(np.std(diffs))
    if spread <= 0.0:
        return 1.0
    # phi from differences has a standard error near 2 / sqrt(n); an underestimate would turn
    # correlated noise into level changes, so this test takes phi at its upper limit
    phi = min(0.95, phi + 2.0 / math.sqrt(n))
    sigma2 = spread * spread / (2.0 * (1.0 - phi))  # Var(diff) = 2 sigma^2 (1 - phi)
    edges = np.linspace(0, n, m + 1).round().astype(np.int64)
    sizes = np.diff(edges)
    means = np.add.reduceat(y, edges[:-1]) / sizes
    variances = np.array([ar1_mean_variance(sigma2, phi, int(b)) for b in sizes])
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        weights = 1.0 / variances
        pooled = float(np.sum(weights * means) / np.sum(weights))
        statistic = float(np.sum(weights * (means - pooled) ** 2))
    if not math.isfinite(statistic):  # noise below double precision beside the change
        return 1.0 if math.isnan(statistic) else 0.0
    return float(chdtrc(m - 1, statistic))


def _slope_interval(slopes: NDArray[np.float64], var_s: float, alpha: float) -> tuple[float, float]:
    """Rank confidence interval of Sen's slope at level 1 - alpha: drop C/2 of the sorted
    pairwise slopes on each side, C = z_(1 - alpha/2) sqrt(Var S)."""
    half = 0.5 * _z(alpha) * math.sqrt(max(var_s, 0.0))
    lo_idx = int(math.floor((slopes.size - 2.0 * half) / 2.0))
    hi_idx = int(math.ceil((slopes.size + 2.0 * half) / 2.0))
    if slopes.size and 0 <= lo_idx < slopes.size and 0 < hi_idx <= slopes.size:
        return float(slopes[lo_idx]), float(slopes[hi_idx - 1])
    return -math.inf, math.inf


def trend_test(steps: ArrayLike, reward: ArrayLike, *, alpha: float = ALPHA) -> TrendTest:
    """Does the reward move over the run? Mann-Kendall with serial-correlation correction.

    Parameters
    ----------
    steps, reward
        1-D arrays of equal length (non-finite pairs are dropped, order does not matter).
    alpha
        Two-sided false-alarm rate (0 < alpha < 1); default :data:`ALPHA` = 0.05.

    Returns
    -------
    TrendTest
        direction, p-value, Sen slope with interval, change over the span, noise level.
    """
    if not (isinstance(alpha, (int, float)) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha: must be in (0, 1), got {alpha!r}")
    t, y = _series(steps, reward)
    return _trend(t, y, alpha)[0]


def _trend(
    t: NDArray[np.float64], y: NDArray[np.float64], alpha: float
) -> tuple[TrendTest, NDArray[np.float64], float, float]:
    """trend_test on a cleaned, sorted series, with what its slope interval is made of:
    (result, sorted pairwise slopes in units of max |y|, inflated Var S, that scale), so a
    caller can take the interval at another level without redoing the test."""
    from scipy.special import ndtr

    n = int(t.size)
    # ranks are scale-free: work in units of max |y| so rewards near 1e300 cannot overflow
    scale = float(np.max(np.abs(y))) if n else 1.0
    scale = scale if scale > 0.0 else 1.0
    y = y / scale
    noise = noise_from_differences(y) * scale
    if n < MIN_POINTS or np.ptp(y) == 0.0:
        flat = TrendTest(
            "none", 1.0, 0.0, 0.0, (0.0, 0.0), 0.0, noise, 0.0, 1.0, n, min(n, MAX_BINS), alpha
        )
        return flat, np.zeros(1), 0.0, scale
    tb, yb = _bin(t, y)
    m = int(tb.size)
    i, j = np.triu_indices(m, k=1)
    s = float(np.sum(np.sign(yb[j] - yb[i])))
    _, tie_counts = np.unique(yb, return_counts=True)
    tie_counts = tie_counts[tie_counts > 1].astype(float)
    var_s = (
        m * (m - 1.0) * (2.0 * m + 5.0)
        - float(np.sum(tie_counts * (tie_counts - 1.0) * (2.0 * tie_counts + 5.0)))
    ) / 18.0
    slopes = _sen(tb, yb)
    slope = float(np.median(slopes)) if slopes.size else 0.0
    phi = ar1_from_differences(y, margin=0.5)
    factor = _inflation(phi, n, m)
    var_s *= factor
    if var_s <= 0:
        z = 0.0
    else:
        z = (s - math.copysign(1.0, s)) / math.sqrt(var_s) if s != 0 else 0.0
    p = float(min(1.0, 2.0 * ndtr(-abs(z))))
    interval = _slope_interval(slopes, var_s, alpha)
    # a monotone trend (Mann-Kendall, at 0.99 alpha) or a large change of level that is not
    # monotone (bin means, at 0.01 alpha: its noise model is cruder under strong correlation),
    # Bonferroni-combined so the total false-alarm rate stays alpha
    p_monotone = p
    p_level = _level_p_value(y, phi)
    p = float(min(1.0, p_monotone / 0.99, p_level / 0.01))
    direction: Direction = "none"
    if p < alpha:
        if p_monotone >= 0.99 * alpha:
            # a change of level that is not monotone: the end against the start says which way
            size = max(MIN_POINTS, n // 5)
            direction = "rising" if y[-size:].mean() >= y[:size].mean() else "falling"
        else:
            direction = "rising" if s > 0 else "falling"
    span = float(t[-1] - t[0])
    slope_units, interval = slope * scale, (interval[0] * scale, interval[1] * scale)
    result = TrendTest(
        direction,
        p,
        float(z),
        slope_units,
        interval,
        slope_units * span,
        noise,
        phi,
        factor,
        n,
        m,
        alpha,
    )
    return result, slopes, var_s, scale


def progress(
    steps: ArrayLike,
    reward: ArrayLike,
    *,
    recent_fraction: float = RECENT_FRACTION,
    alpha: float = ALPHA,
) -> Progress:
    """Is the run still moving at its end? The whole-run and the recent-window trend.

    ``recent_fraction`` (0 < f <= 1) of the points, at least ``MIN_RECENT``, form the recent
    window. See :class:`Progress` for the states; a plateau needs positive evidence (the
    recent slope's confidence limit), not just a missing trend.
    """
    if not (isinstance(recent_fraction, (int, float)) and 0.0 < recent_fraction <= 1.0):
        raise ValueError(f"recent_fraction: must be in (0, 1], got {recent_fraction!r}")
    t, y = _series(steps, reward)
    if t.size < MIN_POINTS:
        return Progress("too short", None, None, float(t[0]) if t.size else math.nan)
    overall = trend_test(t, y, alpha=alpha)
    size = max(MIN_RECENT, int(math.ceil(recent_fraction * t.size)))
    size = min(size, t.size)
    start = t.size - size
    recent, slopes, var_s, scale = _trend(t[start:], y[start:], alpha)
    state: State
    if not overall.present:
        state = recent.direction if recent.present else "flat"  # type: ignore[assignment]
    else:
        window = float(t[-1] - t[start])
        # the largest movement the recent window allows, in the direction of the run
        # one-sided PLATEAU_LEVEL bound on the recent slope (the rank interval at 2 (1 - level))
        lo, hi = (scale * v for v in _slope_interval(slopes, var_s, 2.0 * (1.0 - PLATEAU_LEVEL)))
        worst = hi if overall.direction == "rising" else -lo
        room = max(worst, 0.0) * window
        # the gain so far: the recent level against the first twentieth of the run
        edge = float(y[: max(3, t.size // 20)].mean())
        gain = max(abs(overall.change), abs(float(y[start:].mean()) - edge))
        against = recent.present and recent.direction != overall.direction
        # a drift back against the run smaller than PLATEAU_FRACTION of the gain (an overshoot
        # settling) is a plateau too; a larger one is a fall (collapse is judged elsewhere)
        settling = against and abs(recent.slope) * window < PLATEAU_FRACTION * gain
        if settling or (not against and room < PLATEAU_FRACTION * gain):
            # even a significant recent drift adds less than PLATEAU_FRACTION of the gain per
            # window: practically a plateau (the run is not "still improving" in any useful way)
            state = "plateau"
        elif recent.present:
            state = recent.direction  # type: ignore[assignment]
        else:
            state = "slowing"
    return Progress(state, overall, recent, float(t[start]))
