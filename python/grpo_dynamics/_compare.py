"""Which model describes one reward curve: the exponential, the oscillator, the logistic, or
none (a constant)? (docs/fitting.md, "Model comparison").

"Is there a trend at all" is not decided here: it is :func:`grpo_dynamics.trend.trend_test`,
the one verdict that forecast and diagnose use too, so the three cannot disagree. The
constant is preferred exactly when that test finds no trend. Among the curve models the
smallest AIC wins, except that a fit whose parameters are not identified never wins over an
identified one within ``IDENTIFIED_MARGIN`` AIC units (the data cannot tell them apart, and
only the identified one has parameters worth reading).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._fit import FIT_MODELS, FitResult, ModelName, fit
from ._results import to_jsonable
from .trend import TrendTest, trend_test

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Comparison", "ModelScore", "compare", "IDENTIFIED_MARGIN"]

#: An identified fit within this many AIC units of an unidentified best one is preferred.
IDENTIFIED_MARGIN = 2.0


def _identified(result: FitResult) -> bool:
    # one place that reads identification (tests substitute it to exercise the choice rule)
    return result.identified


@dataclass(frozen=True)
class ModelScore:
    """One row of a comparison: a model's fit quality (reward units squared for ``rss``).

    ``k`` counts the estimated curve parameters (the noise variance comes on top in the
    AIC/BIC), ``delta_aic`` is the AIC above the best row's. ``lr_stat``/``lr_pvalue`` are
    set on the oscillator row when the exponential is fitted too: the boundary
    likelihood-ratio test of mu = 0 (null law 0.5 chi2(0) + 0.5 chi2(1)); NaN elsewhere.
    """

    model: str
    k: int
    rss: float
    aic: float
    bic: float
    delta_aic: float
    status: str
    identified: bool
    lr_stat: float = math.nan
    lr_pvalue: float = math.nan


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`: one :class:`ModelScore` per model plus the constant.

    ``preferred`` is ``"constant"`` exactly when ``trend`` (the Mann-Kendall test of
    :func:`~grpo_dynamics.trend.trend_test`) finds no trend, else the chosen curve model.
    ``verdict`` says the same for people: the model, or ``"no trend"``. ``fits`` holds each
    curve model's :class:`~grpo_dynamics.FitResult`.
    """

    scores: tuple[ModelScore, ...]
    preferred: str
    trend: TrendTest
    n_points: int
    fits: Mapping[str, FitResult] = field(repr=False)

    @property
    def verdict(self) -> str:
        return "no trend" if self.preferred == "constant" else self.preferred

    def __getitem__(self, model: str) -> ModelScore:
        for score in self.scores:
            if score.model == model:
                return score
        raise KeyError(model)

    def to_pandas(self) -> pd.DataFrame:
        """One row per model (index ``model``), the ModelScore fields plus ``preferred``."""
        import pandas as pd

        table = pd.DataFrame([vars(s) for s in self.scores]).set_index("model")
        table["preferred"] = table.index == self.preferred
        return table

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: preferred, verdict, the trend test and one record per model."""
        return to_jsonable(
            {
                "preferred": self.preferred,
                "verdict": self.verdict,
                "n_points": self.n_points,
                "trend": self.trend.to_dict(),
                "models": [vars(s) for s in self.scores],
            }
        )

    def __repr__(self) -> str:
        rows = ", ".join(
            f"{s.model} {s.delta_aic:+.1f}" if math.isfinite(s.delta_aic) else f"{s.model} failed"
            for s in self.scores
        )
        return (
            f"Comparison(preferred={self.preferred!r}, trend={self.trend.direction} "
            f"p={self.trend.p_value:.3g}, delta_aic: {rows})"
        )


def _choose(candidates: Sequence[tuple[str, float, bool]]) -> str:
    """The preferred model among (name, aic, identified): smallest AIC, but an identified fit
    within IDENTIFIED_MARGIN of an unidentified best one wins. Non-finite AICs never win."""
    finite = [c for c in candidates if math.isfinite(c[1])]
    if not finite:
        raise RuntimeError("compare: no model could be fitted (every AIC is undefined)")
    best = min(finite, key=lambda c: c[1])
    if best[2]:
        return best[0]
    close = [c for c in finite if c[2] and c[1] <= best[1] + IDENTIFIED_MARGIN]
    return min(close, key=lambda c: c[1])[0] if close else best[0]


def _as_1d(name: str, values: ArrayLike) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name}: must be 1-D, got shape {array.shape}")
    return array


def compare(
    t: ArrayLike,
    r: ArrayLike,
    models: Sequence[ModelName] = ("exponential", "oscillator", "logistic"),
    *,
    weights: ArrayLike | None = None,
    t0: float = 0.0,
) -> Comparison:
    """Compare curve models on one reward curve (docs/fitting.md, "Model comparison").

    ``t`` in optimizer steps, ``r`` in reward units, ``weights`` as for :func:`fit` (points of
    zero weight are removed first: they count in no model's n, nor in the trend test).
    ``t0`` as for :func:`fit` (the command line passes the first logged step). Each model
    is fitted (the oscillator started from the exponential's optimum, so nesting holds), the
    constant is scored alongside with the same Gaussian likelihood, and the trend test of
    :func:`~grpo_dynamics.trend.trend_test` decides whether any curve is preferred at all.
    """
    from scipy import stats

    if isinstance(models, str):
        models = (models,)  # type: ignore[assignment]
    if len(models) == 0:
        raise ValueError("models: must name at least one model, got none")
    for m in models:
        if m not in FIT_MODELS:
            raise ValueError(f"models: must be among {sorted(FIT_MODELS)}, got {m!r}")
    times = _as_1d("t", t)
    rewards = _as_1d("r", r)
    if weights is not None:
        w_in = _as_1d("weights", weights)
        if w_in.shape != rewards.shape or times.shape != rewards.shape:
            raise ValueError(f"weights: shape {w_in.shape} does not match r: shape {rewards.shape}")
        if not np.all(np.isfinite(w_in)) or np.any(w_in < 0):
            raise ValueError("weights: must be finite and >= 0")
        # Zero weights are not observations: every model (the constant's n and likelihood, the
        # LR test's n, the trend test) sees only the positively weighted points.
        keep = w_in > 0
        times, rewards, weights = times[keep], rewards[keep], w_in[keep]
    fits: dict[str, FitResult] = {}
    for m in sorted(models, key=lambda m: m != "exponential"):  # the nested model first
        start = None
        if m == "oscillator" and "exponential" in fits:
            # started at the nested optimum, the oscillator never ends worse than the exponential
            e = fits["exponential"].params
            start = {"r0": e["r0"], "r_inf": e["r_inf"], "tau": e["tau"], "mu": 0.0}
        fits[m] = fit(times, rewards, m, weights=weights, p0=start, t0=t0)

    n = rewards.size
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    mean = float(np.sum(w * rewards) / np.sum(w))
    rss_const = float(np.sum(w * (rewards - mean) ** 2))
    log_lik = -0.5 * n * (math.log(2 * math.pi * max(rss_const, 1e-300) / n) + 1)
    log_lik += 0.5 * float(np.sum(np.log(w[w > 0])))
    # (model, k, rss, aic, bic, status, identified); the constant has the mean and the variance
    rows = [("constant", 1, rss_const, 4 - 2 * log_lik, 2 * math.log(n) - 2 * log_lik)]
    raw = [(*row, "converged", True) for row in rows] + [
        (m, len(FIT_MODELS[m]), f.rss, f.aic, f.bic, f.status, _identified(f))
        for m, f in ((m, fits[m]) for m in models)
    ]
    best_aic = min((row[3] for row in raw if math.isfinite(row[3])), default=math.nan)
    lr_stat = lr_pvalue = math.nan
    if "exponential" in fits and "oscillator" in fits:
        rss_e, rss_o = fits["exponential"].rss, fits["oscillator"].rss
        lr_stat = max(0.0, n * math.log(rss_e / rss_o)) if rss_o > 0 else math.inf
        # mu = 0 is on the boundary: the null law is 0.5 chi2(0) + 0.5 chi2(1)
        lr_pvalue = 1.0 if lr_stat == 0 else 0.5 * float(stats.chi2.sf(lr_stat, 1))
    scores = tuple(
        ModelScore(
            model=name,
            k=k,
            rss=float(rss),
            aic=float(aic),
            bic=float(bic),
            delta_aic=float(aic - best_aic),
            status=str(status),
            identified=bool(ident),
            lr_stat=lr_stat if name == "oscillator" else math.nan,
            lr_pvalue=lr_pvalue if name == "oscillator" else math.nan,
        )
        for name, k, rss, aic, bic, status, ident in raw
    )
    trend = trend_test(times, rewards)
    if trend.present:
        preferred = _choose([(s.model, s.aic, s.identified) for s in scores[1:]])
    else:
        preferred = "constant"
    return Comparison(scores, preferred, trend, int(n), fits)
