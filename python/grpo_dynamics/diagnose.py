"""What is going on in a GRPO run: the five failure modes of MODEL.md s.8 (docs/diagnose.md).

diagnose(run) looks at the columns a training log carries (reward, an eval/gold reward,
frac_reward_zero_std, reward_std, entropy) and the fitted trajectory, and scores each mode:

- reward_hacking: the rolling train-eval coupling d eval / d train collapses.
- advantage_degeneracy: most groups carry no advantage (all rewards equal).
- policy_concentration: the entropy (or the within-group reward spread) collapses.
- dynamical_instability: deviations from the plateau grow, or persist barely damped; with
  hyperparameters, the exact spectral radius of the cycle matrix (stability module).
- healthy_saturation: the run reached its plateau and the residuals there are stationary.

Scores are in [0, 1]; a mode is "detected" at score >= 0.5 and "possible" at >= 0.25.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from .forecast import fit_curve, gain_step, run_frame

__all__ = ["Diagnosis", "Finding", "diagnose", "FAILURE_MODES"]

FAILURE_MODES = (
    "reward_hacking",
    "advantage_degeneracy",
    "policy_concentration",
    "dynamical_instability",
)
_MODES = (*FAILURE_MODES, "healthy_saturation")
DETECTED, POSSIBLE = 0.5, 0.25
# d eval / d train below this while the train reward rises counts as decoupled (eval stalls)
MIN_COUPLING = 0.25

_FIXES = {
    "reward_hacking": (
        "the policy is exploiting the training reward: stop at the step where the coupling broke "
        "(checkpoint before the window), harden the reward model/verifier, add a KL penalty "
        "(beta_kl) or lower the learning rate, and keep an eval/gold reward in the loop"
    ),
    "advantage_degeneracy": (
        "groups with equal rewards give zero advantage: raise group_size G (the degenerate "
        "fraction p^G + (1-p)^G falls geometrically), filter prompts that are always solved or "
        "always failed (dynamic sampling), or use a graded reward instead of a 0/1 one"
    ),
    "policy_concentration": (
        "the policy is collapsing onto few completions: raise the sampling temperature, add or "
        "raise the KL penalty to the reference, an entropy bonus, or a larger eps_high "
        "(clip-higher); lower the learning rate"
    ),
    "dynamical_instability": (
        "the mean-field dynamics are (nearly) unstable: lower the learning rate or the refresh "
        "interval K (num_iterations / steps per generation batch), or reduce momentum (adam "
        "beta1); with hyperparameters, use the largest safe K / learning rate reported"
    ),
    "healthy_saturation": (
        "the run has reached its plateau: more steps will not help; change the data, the reward "
        "or the model size to move r_inf"
    ),
}


@dataclass
class Finding:
    """One failure mode: score in [0, 1], verdict, the evidence behind it and a suggested fix."""

    mode: str
    score: float
    verdict: str  # "detected" | "possible" | "not detected" | "not assessable"
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str = ""

    @property
    def detected(self) -> bool:
        return self.verdict == "detected"

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "score": self.score,
            "verdict": self.verdict,
            "summary": self.summary,
            "evidence": _jsonable(self.evidence),
            "fix": self.fix,
        }


@dataclass
class Diagnosis:
    """Result of diagnose(): per-mode findings, the overall verdict, the fit and stability."""

    verdict: str
    findings: dict[str, Finding]
    trend: dict[str, Any]
    fit: Any = None
    stability: dict[str, Any] | None = None
    n_steps: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def detected(self) -> list[str]:
        """Failure modes detected, strongest first."""
        found = [f for m, f in self.findings.items() if m in FAILURE_MODES and f.detected]
        return [f.mode for f in sorted(found, key=lambda f: -f.score)]

    def __getitem__(self, mode: str) -> Finding:
        return self.findings[mode]

    def to_frame(self) -> pd.DataFrame:
        """One row per mode: score, verdict, summary, fix."""
        rows = [
            {
                "mode": f.mode,
                "score": f.score,
                "verdict": f.verdict,
                "summary": f.summary,
                "fix": f.fix if f.verdict in ("detected", "possible") else "",
            }
            for f in self.findings.values()
        ]
        return pd.DataFrame(rows).set_index("mode")

    def to_dict(self) -> dict[str, Any]:
        fit = self.fit
        fit_doc = None
        if fit is not None:
            fit_doc = {
                "params": {k: float(v) for k, v in dict(fit.params).items()},
                "status": str(getattr(fit, "status", "")),
                "regime": str(getattr(fit, "regime", "")),
                "r2": float(getattr(fit, "r2", float("nan"))),
            }
        return _jsonable(
            {
                "verdict": self.verdict,
                "detected": self.detected,
                "n_steps": self.n_steps,
                "trend": self.trend,
                "fit": fit_doc,
                "stability": self.stability,
                "findings": {m: f.to_dict() for m, f in self.findings.items()},
                "warnings": list(self.warnings),
            }
        )

    def __str__(self) -> str:
        lines = [f"verdict: {self.verdict}"]
        for f in self.findings.values():
            lines.append(f"  {f.mode:<22} {f.score:5.2f}  {f.verdict:<15} {f.summary}")
        for f in self.findings.values():
            if f.verdict in ("detected", "possible") and f.fix:
                label = "advice" if f.mode == "healthy_saturation" else "fix"
                lines.append(f"  {label} ({f.mode}): {f.fix}")
        st = self.stability
        if st and "spectral_radius" in st:
            lines.append(
                f"  exact stability: rho {st['spectral_radius']:.4g} ({st['regime']}), margin "
                f"{st['margin']:+.3g} per step, curvature {st['curvature']:.4g} "
                f"({st['curvature_source']})"
            )
            safe = [
                f"{k.removeprefix('max_safe_').replace('_', ' ')} {st[k]:.4g}"
                for k in ("max_safe_refresh_interval", "max_safe_delay", "max_safe_learning_rate")
                if st.get(k) is not None
            ]
            if safe:
                lines.append("  largest safe: " + ", ".join(safe))
        elif st and "error" in st:
            lines.append(f"  exact stability: {st['error']}")
        return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """value with NumPy scalars/arrays made plain and NaN/inf made None (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _verdict(score: float) -> str:
    return "detected" if score >= DETECTED else "possible" if score >= POSSIBLE else "not detected"


def _na(mode: str, why: str, **evidence: Any) -> Finding:
    return Finding(mode, 0.0, "not assessable", why, evidence, "")


# --------------------------------------------------------------------------------------------
# statistics helpers


def _ar1_inflation(resid: np.ndarray) -> float:
    """sqrt((1 + rho1) / (1 - rho1)): standard-error inflation for AR(1)-correlated residuals."""
    if resid.size < 8:
        return 1.0
    r = resid - resid.mean()
    denom = float(r @ r)
    rho = float(r[1:] @ r[:-1]) / denom if denom > 0 else 0.0
    rho = min(max(rho, 0.0), 0.95)  # negative autocorrelation never shrinks the error here
    return math.sqrt((1 + rho) / (1 - rho))


def _slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """OLS slope of y on x and its standard error (AR(1)-corrected)."""
    if x.size < 3 or np.ptp(x) == 0:
        return 0.0, float("inf")
    xc = x - x.mean()
    sxx = float(xc @ xc)
    b = float(xc @ (y - y.mean())) / sxx
    resid = y - y.mean() - b * xc
    s2 = float(resid @ resid) / max(x.size - 2, 1)
    return b, math.sqrt(s2 / sxx) * _ar1_inflation(resid)


def _noise_sd(y: np.ndarray) -> float:
    """Step-to-step noise from first differences (robust MAD): blind to slow trends/oscillations."""
    d = np.diff(y)
    if d.size < 2:
        return float("nan")
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0))


def _bins(t: np.ndarray, y: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    edges = np.linspace(0, t.size, n_bins + 1).astype(int)
    centers = np.array([t[a:b].mean() for a, b in zip(edges[:-1], edges[1:], strict=True)])
    means = np.array([y[a:b].mean() for a, b in zip(edges[:-1], edges[1:], strict=True)])
    return centers, means


def trend_test(t: np.ndarray, r: np.ndarray) -> dict[str, Any]:
    """Does the reward move at all? (MODEL.md s.6 "no trend"; docs/diagnose.md, "Trend").

    Bin means absorb the per-step noise and most of its autocorrelation. Two smooth shapes
    are tested against a constant by an F-test on the bin means: a quadratic (slow drifts,
    rises) and a saturating exponential (fast rise then plateau). A trend needs p < 1e-4 for
    one of them and a fitted change of at least one step-noise sd.
    """
    n_bins = int(min(40, max(6, t.size // 4)))
    if t.size < 12:
        return {
            "trend": False,
            "p_value": float("nan"),
            "change": float("nan"),
            "n_bins": 0,
            "reason": "fewer than 12 points",
        }
    s, m = _bins(t, r, n_bins)
    rss0 = float(((m - m.mean()) ** 2).sum())
    x = (s - s.mean()) / (np.ptp(s) or 1.0)
    quadratic = np.polyval(np.polyfit(x, m, 2), x)
    candidates = {"quadratic": quadratic}
    try:
        candidates["exponential"] = np.asarray(fit_curve(s, m, "exponential").predict(s), float)
    except (ValueError, RuntimeError):
        pass  # e.g. constant bin means: the quadratic alone decides
    best = ("none", 1.0, 0.0, quadratic)
    for name, fitted in candidates.items():
        rss = float(((m - fitted) ** 2).sum())
        dof = n_bins - 3
        if rss0 <= 0:
            p = 1.0
        elif rss <= 0:
            p = 0.0
        else:
            p = float(special.fdtrc(2, dof, ((rss0 - rss) / 2) / (rss / dof)))  # F(2, dof) tail
        if p < best[1] or best[0] == "none":
            best = (name, p, float(np.ptp(fitted)), fitted)
    shape, p, change, fitted = best
    noise = _noise_sd(r)
    moved = change >= max(noise, 1e-12)
    return {
        "trend": bool(p < 1e-4 and moved),
        "p_value": p,
        "shape": shape,
        "change": change,
        "step_noise_sd": noise,
        "n_bins": n_bins,
        "direction": "up" if fitted[-1] > fitted[0] else "down",
    }


# --------------------------------------------------------------------------------------------
# the five modes


def _eval_column(frame: pd.DataFrame, eval_column: str | None) -> str | None:
    if eval_column is not None:
        if eval_column not in frame.columns:
            raise ValueError(f"eval_column: {eval_column!r} not in the run")
        return eval_column
    for name in ("eval_reward", "gold_reward", "heldout_reward", "eval/reward"):
        if name in frame.columns:
            return name
    for name in frame.columns:
        low = str(name).lower()
        if (low.startswith("eval") or "gold" in low) and "reward" in low and "std" not in low:
            return str(name)
    return None


def _reward_hacking(frame: pd.DataFrame, eval_col: str | None) -> Finding:
    mode = "reward_hacking"
    if eval_col is None:
        return _na(mode, "no eval/gold reward column: the coupling cannot be measured")
    train = frame["reward"].astype(float)
    ev = frame[eval_col].astype(float).dropna()
    if ev.size < 8:
        return _na(mode, f"only {ev.size} eval points (need 8)", columns=["reward", eval_col])
    t_tr = np.asarray(train.dropna().index, float)
    y_tr = train.dropna().to_numpy()
    t_ev = np.asarray(ev.index, float)
    y_ev = ev.to_numpy()
    # train reward at each eval step: mean over the half-spacing around it (train is noisier)
    half = 0.5 * float(np.median(np.diff(t_ev)))
    aligned = np.array(
        [
            y_tr[(t_tr >= s - half) & (t_tr <= s + half)].mean()
            if np.any((t_tr >= s - half) & (t_tr <= s + half))
            else np.nan
            for s in t_ev
        ]
    )
    ok = np.isfinite(aligned)
    t_ev, y_ev, aligned = t_ev[ok], y_ev[ok], aligned[ok]
    n = t_ev.size
    if n < 8:
        return _na(mode, "train and eval steps do not overlap", columns=["reward", eval_col])
    width = max(5, n // 3)
    # early coupling (first window), reported beside the rolling ones for context
    base_b, base_se = _slope(t_ev[:width], aligned[:width])
    kappa0 = float("nan")
    if abs(base_b) > 2 * base_se:
        kappa0 = _slope(t_ev[:width], y_ev[:width])[0] / base_b
    span = max(float(np.ptp(aligned)), _noise_sd(aligned), 1e-12)
    worst = None
    windows = []
    for start in range(0, n - width + 1, max(1, width // 3)):
        sl = slice(start, start + width)
        tt = t_ev[sl]
        b_tr, se_tr = _slope(tt, aligned[sl])
        b_ev, se_ev = _slope(tt, y_ev[sl])
        length = float(tt[-1] - tt[0])
        # a healthy eval gains at least MIN_COUPLING of every train gain, and never falls while
        # train holds: the shortfall below that is the hacking signal
        rising = max(b_tr, 0.0)
        gap = (b_ev - MIN_COUPLING * rising) * length
        se_gap = math.hypot(se_ev, MIN_COUPLING * se_tr if rising > 0 else 0.0) * length
        z = gap / se_gap if se_gap > 0 else 0.0
        coupling = b_ev / b_tr if abs(b_tr) > 2 * se_tr else float("nan")
        w = {
            "start_step": float(tt[0]),
            "end_step": float(tt[-1]),
            "coupling": coupling,
            "train_change": b_tr * length,
            "eval_change": b_ev * length,
            "z": z,
        }
        windows.append(w)
        if worst is None or z < worst["z"]:
            worst = w | {"gap": gap}
    assert worst is not None
    # significant (z) and practically large (relative to the train reward's range) divergence
    significance = float(np.clip((-worst["z"] - 2.0) / 3.0, 0.0, 1.0))
    size = float(np.clip(-worst["gap"] / (0.3 * span), 0.0, 1.0))
    score = significance * size
    summary = (
        f"eval moved {worst['eval_change']:+.3g} while train moved {worst['train_change']:+.3g} "
        f"over steps {worst['start_step']:g}-{worst['end_step']:g} (baseline coupling "
        f"{kappa0:.2f}, window coupling {worst['coupling']:.2f}; healthy >= {MIN_COUPLING})"
    )
    return Finding(
        mode,
        score,
        _verdict(score),
        summary,
        {
            "columns": ["reward", eval_col],
            "window": [worst["start_step"], worst["end_step"]],
            "baseline_coupling": kappa0,
            "window_coupling": worst["coupling"],
            "z": worst["z"],
            "rolling_coupling": [w["coupling"] for w in windows],
        },
        _FIXES[mode],
    )


def _late(frame: pd.DataFrame, column: str, share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    s = frame[column].astype(float).dropna()
    k = max(int(math.ceil(share * s.size)), 1)
    return np.asarray(s.index[-k:], float), s.to_numpy()[-k:]


def _group_size(metadata: dict[str, Any], hyperparameters: Any) -> int | None:
    for source in (hyperparameters, metadata):
        if source is None:
            continue
        for key in ("group_size", "num_generations", "G"):
            value = source.get(key) if isinstance(source, dict) else getattr(source, key, None)
            if value is not None:
                try:
                    return int(value)
                except (TypeError, ValueError):
                    continue
    return None


def _advantage_degeneracy(frame: pd.DataFrame, group_size: int | None) -> Finding:
    mode = "advantage_degeneracy"
    if "frac_reward_zero_std" in frame.columns and frame["frac_reward_zero_std"].notna().sum() >= 3:
        steps, frac = _late(frame, "frac_reward_zero_std")
        value = float(np.clip(np.mean(frac), 0.0, 1.0))
        whole = float(frame["frac_reward_zero_std"].mean())
        summary = (
            f"{value:.0%} of groups have zero reward spread (late half; whole run {whole:.0%})"
        )
        evidence = {
            "columns": ["frac_reward_zero_std"],
            "window": [steps[0], steps[-1]],
            "late_fraction": value,
            "run_fraction": whole,
        }
    elif "reward_std" in frame.columns and frame["reward_std"].notna().sum() >= 3:
        steps, spread = _late(frame, "reward_std")
        scale = float(np.nanmax(np.abs(frame["reward"].to_numpy(float)))) or 1.0
        # within-group std at zero on most steps: every group degenerate there
        value = float(np.mean(spread <= 1e-6 * scale))
        summary = f"reward_std is zero on {value:.0%} of late steps"
        evidence = {
            "columns": ["reward_std"],
            "window": [steps[0], steps[-1]],
            "late_fraction_zero_std": value,
        }
    elif group_size is not None:
        steps, p = _late(frame, "reward")
        if np.nanmin(p) < 0 or np.nanmax(p) > 1:
            return _na(mode, "no frac_reward_zero_std / reward_std and rewards are not in [0, 1]")
        # binary rewards: a group is degenerate with probability p^G + (1 - p)^G
        value = float(np.mean(p**group_size + (1 - p) ** group_size))
        summary = f"p^G + (1-p)^G = {value:.0%} at G = {group_size} (assuming 0/1 rewards)"
        evidence = {
            "columns": ["reward"],
            "window": [steps[0], steps[-1]],
            "group_size": group_size,
            "late_fraction": value,
        }
    else:
        return _na(mode, "no frac_reward_zero_std, reward_std or group size")
    # half the groups dead is a detected failure; a quarter is worth a look
    score = float(np.clip(value, 0.0, 1.0))
    return Finding(mode, score, _verdict(score), summary, evidence, _FIXES[mode])


def _early_late_ratio(frame: pd.DataFrame, column: str) -> dict[str, Any] | None:
    s = frame[column].astype(float).dropna()
    if s.size < 10:
        return None
    k_early = max(3, s.size // 10)
    k_late = max(3, s.size // 5)
    early, late = s.to_numpy()[:k_early], s.to_numpy()[-k_late:]
    e, la = float(early.mean()), float(late.mean())
    se = math.hypot(
        early.std(ddof=1) / math.sqrt(early.size), late.std(ddof=1) / math.sqrt(late.size)
    )
    return {
        "early": e,
        "late": la,
        "ratio": la / e if e > 0 else float("nan"),
        "z": (la - e) / se if se > 0 else float("-inf") if la < e else 0.0,
        "early_window": [float(s.index[0]), float(s.index[k_early - 1])],
        "late_window": [float(s.index[-k_late]), float(s.index[-1])],
    }


def _collapse_score(ratio: dict[str, float], full: float, none: float) -> float:
    """0 when late/early >= none, 1 when <= full, linear in log(ratio) between; times a
    significance factor (the fall must be > 2-4 standard errors)."""
    value = max(float(ratio["ratio"]), 1e-12)
    drop = float(np.clip(math.log(none / value) / math.log(none / full), 0.0, 1.0))
    significant = float(np.clip((-ratio["z"] - 2.0) / 2.0, 0.0, 1.0))
    return drop * significant


def _policy_concentration(frame: pd.DataFrame) -> Finding:
    mode = "policy_concentration"
    ratios = {}
    for column in ("entropy", "reward_std"):
        if column in frame.columns:
            ratio = _early_late_ratio(frame, column)
            if ratio is not None and ratio["early"] > 0:
                ratios[column] = ratio
    if not ratios:
        return _na(mode, "no entropy or reward_std column")
    scores = {}
    if "entropy" in ratios:
        # entropy falls during any learning; a collapse is a fall by an order of magnitude
        # (full score at 5 % of the early value, none above half of it)
        scores["entropy"] = _collapse_score(ratios["entropy"], full=0.05, none=0.5)
    if "reward_std" in ratios:
        # the within-group spread also shrinks as a bounded reward saturates (binary rewards:
        # sqrt(p (1 - p))), so it is weaker evidence: "possible" at most on its own
        scores["reward_std"] = 0.45 * _collapse_score(ratios["reward_std"], full=0.05, none=0.5)
    score = scores["entropy"] if "entropy" in scores else scores["reward_std"]
    summary = "; ".join(
        f"{c} went from {v['early']:.3g} to {v['late']:.3g} ({v['ratio']:.0%} of its early value)"
        for c, v in ratios.items()
    )
    first = next(iter(ratios.values()))
    evidence: dict[str, Any] = {
        "columns": list(ratios),
        "window": [first["early_window"][0], first["late_window"][1]],
        "scores": scores,
    }
    for c, v in ratios.items():
        evidence[c] = {k: val for k, val in v.items()}
    return Finding(mode, score, _verdict(score), summary, evidence, _FIXES[mode])


def _estimated_curvature(hp: Any, fit: Any) -> float | None:
    """kappa_lag from the fitted tau by inverting the continuum model (docs/diagnose.md).

    With every force of the objective lagged: k = c + c_wd, gamma = (1 - beta) - c L and
    tau = gamma / k, so c = (1 - beta - tau c_wd) / (tau + L), L the effective lag ("mean"
    convention), beta the effective momentum and c_wd the stiffness weight decay adds;
    kappa = c / eta_eff.
    """
    if fit is None or "tau" not in fit.params:
        return None
    tau = float(fit.params["tau"])
    if not (math.isfinite(tau) and tau > 0):
        return None
    if hp.delay > 0:
        lag = float(hp.delay)
    else:
        lag = (hp.refresh_interval - 1) / 2.0
    c = (1.0 - hp.effective_momentum - tau * hp.weight_decay_stiffness) / (tau + lag)
    return c / hp.effective_lr if c > 0 else None


_DELAY_SEARCH_LIMIT = 1000  # steps; the exact scan takes ~0.1 s up to here, ~75 s up to 10,000


def _exact_stability(
    hyperparameters: Any,
    fit: Any,
    curvature: float | None,
    curvature_lag: float | None,
    curvature_now: float | None,
) -> dict[str, Any] | None:
    """Exact spectral radius, margin, largest safe refresh interval / delay / learning rate."""
    if hyperparameters is None:
        return None
    from .stability import (
        Hyperparameters,
        critical_delay,
        critical_learning_rate,
        critical_refresh_interval,
        stability,
    )

    hp = hyperparameters
    if isinstance(hp, dict):
        hp = Hyperparameters(**hp)
    if not isinstance(hp, Hyperparameters):
        raise ValueError(
            f"hyperparameters: expected a Hyperparameters or a dict, got {type(hp).__name__}"
        )
    curv = {"curvature": curvature, "curvature_lag": curvature_lag, "curvature_now": curvature_now}
    source = "given"
    if all(v is None for v in curv.values()):
        estimate = _estimated_curvature(hp, fit)
        if estimate is None:
            return {"error": "no curvature given and none could be estimated from the fit"}
        curv["curvature"] = estimate
        source = "estimated from the fitted tau (continuum inversion, all forces lagged)"
    report = stability(
        hp, curv["curvature"], curvature_lag=curvature_lag, curvature_now=curvature_now
    )
    out: dict[str, Any] = {
        "spectral_radius": report.spectral_radius,
        "decay_rate_per_step": report.decay_rate,
        "margin": report.margin,
        "stable": report.stable,
        "regime": report.regime,
        "relaxation_steps": report.relaxation_steps,
        "c_lag": report.c_lag,
        "c_now": report.c_now,
        "curvature": curv["curvature"] if curv["curvature"] is not None else curvature_lag,
        "curvature_source": source,
        "continuum_regime": report.continuum.regime,
        "continuum_zeta": report.continuum.zeta,
    }
    kw: dict[str, Any] = {k: v for k, v in curv.items() if v is not None}
    first = kw.pop("curvature", None)
    if hp.delay == 0:
        k_crit = critical_refresh_interval(hp, first, **kw)
        out["max_safe_refresh_interval"] = None if k_crit is None else k_crit - 1
    if hp.refresh_interval == 1:
        # Each candidate delay costs O(D^2): cap the scan so a diagnosis stays interactive
        # (None then means "stable for every delay up to the limit").
        d_crit = critical_delay(hp, first, max_delay=_DELAY_SEARCH_LIMIT, **kw)
        out["max_safe_delay"] = None if d_crit is None else d_crit - 1
        out["delay_search_limit"] = _DELAY_SEARCH_LIMIT
    out["max_safe_learning_rate"] = critical_learning_rate(hp, first, **kw)
    return out


def _dynamical_instability(
    t: np.ndarray, r: np.ndarray, fit: Any, exact: dict[str, Any] | None
) -> Finding:
    mode = "dynamical_instability"
    noise = _noise_sd(r)
    # the late median, not the fitted r_inf: a growing oscillation drives the fit off the data
    center = float(np.median(r[r.size // 2 :]))
    quarters = np.array_split(np.arange(r.size), 4)
    # deviation amplitude above the step noise, per quarter of the run
    amp = []
    for q in quarters:
        rms2 = float(np.mean((r[q] - center) ** 2))
        amp.append(math.sqrt(max(rms2 - noise**2, 0.0)))
    growth = amp[3] / max(amp[1], 0.5 * noise, 1e-12)
    visible = amp[3] > 2.0 * noise
    growth_score = float(np.clip((growth - 1.3) / 1.2, 0.0, 1.0)) if visible else 0.0
    evidence: dict[str, Any] = {
        "columns": ["reward"],
        "window": [float(t[quarters[1][0]]), float(t[-1])],
        "deviation_amplitude_by_quarter": amp,
        "growth": growth,
        "step_noise_sd": noise,
    }
    weak_score = 0.0
    sane = fit is not None and float(np.min(r)) <= float(fit.params["r_inf"]) <= float(np.max(r))
    if sane and "mu" in fit.params:
        mu = float(fit.params["mu"])
        tau = float(fit.params["tau"])
        zeta = 0.5 / math.sqrt(mu) if mu > 0 else float("inf")
        evidence["zeta"] = zeta
        if mu > 0.25:
            decay_time = 2.0 * mu * tau  # 1/a: the envelope's e-folding time in steps
            period = 2 * math.pi * 2 * mu * tau / math.sqrt(4 * mu - 1)
            evidence |= {"decay_time": decay_time, "period": period}
            span = float(t[-1] - t[0])
            # an oscillation seen for 2+ periods that barely decays within the run
            if span >= 2 * period and decay_time > span and zeta < 0.2:
                amp_osc = abs(float(fit.params["r0"]) - float(fit.params["r_inf"]))
                weak_score = 0.6 if amp_osc > 2 * noise else 0.3
    exact_score = 0.0
    if exact and "spectral_radius" in exact:
        rho = float(exact["spectral_radius"])
        # the exact linear model is unstable: the strongest evidence there is
        exact_score = 1.0 if rho >= 1.0 else 0.0
        evidence["spectral_radius"] = rho
        evidence["columns"] = ["reward", "hyperparameters"]
    score = max(growth_score, weak_score, exact_score)
    parts = [f"deviation amplitude grew x{growth:.2f} from the 2nd to the 4th quarter"]
    if "zeta" in evidence:
        parts.append(f"fitted zeta {evidence['zeta']:.3g}")
    if "spectral_radius" in evidence:
        parts.append(f"exact spectral radius {evidence['spectral_radius']:.4g}")
    return Finding(mode, score, _verdict(score), "; ".join(parts), evidence, _FIXES[mode])


def _healthy_saturation(t: np.ndarray, r: np.ndarray, fit: Any, trend: dict[str, Any]) -> Finding:
    mode = "healthy_saturation"
    if not trend["trend"]:
        return _na(mode, "no trend: the reward never moved, there is no plateau to reach")
    if fit is None:
        return _na(mode, "the trajectory fit failed")
    p = fit.params
    tau, mu = float(p["tau"]), float(p.get("mu", 0.0))
    try:
        t95 = gain_step(0.95, tau, mu)
    except ValueError:
        return _na(mode, "fitted parameters out of range")
    end = float(t[-1])
    # saturated: 95 % of the gain reached with at least a fifth of the run left after it
    late_from = max(t95, end - 0.5 * (end - float(t[0])))
    saturated = t95 <= end - 0.2 * (end - float(t[0]))
    late = t >= late_from
    if late.sum() < 10:
        return Finding(
            mode,
            0.0,
            "not detected",
            f"95% of the gain is reached at step {t95:.0f}, too close to the end ({end:g})",
            {"columns": ["reward"], "t95": t95},
            "",
        )
    resid = r[late] - np.asarray(fit.predict(t[late]), dtype=float)
    b, se = _slope(t[late], resid)
    z_trend = b / se if se > 0 else 0.0
    halves = np.array_split(resid, 2)
    var_ratio = float(np.var(halves[1], ddof=1) / max(np.var(halves[0], ddof=1), 1e-300))
    gain = abs(float(p["r_inf"]) - float(p["r0"]))
    drift = b * float(t[late][-1] - t[late][0])
    # flat: no significant drift, or one too small to matter (< a quarter of the gain made)
    flat = abs(z_trend) < 3.0 or abs(drift) < 0.25 * gain
    # growing residual variance is the warning sign; a shrinking one is a sharpening policy
    steady = var_ratio < 2.0
    score = 0.4 * saturated + 0.3 * flat + 0.3 * steady
    summary = (
        f"95% of the gain reached at step {t95:.0f} (run ends {end:g}); late residuals: "
        f"drift {drift:+.3g} (z {z_trend:+.2f}, gain {gain:.3g}), variance ratio {var_ratio:.2f}"
    )
    # all three checks: detected; saturated but not (yet) stationary: possible
    verdict = "detected" if score >= 0.99 else "possible" if saturated else "not detected"
    return Finding(
        mode,
        float(score),
        verdict,
        summary,
        {
            "columns": ["reward"],
            "window": [float(t[late][0]), end],
            "t95": t95,
            "r_inf": float(p["r_inf"]),
            "residual_sd": float(resid.std(ddof=1)),
            "trend_z": z_trend,
            "late_drift": drift,
            "gain": gain,
            "variance_ratio": var_ratio,
        },
        _FIXES[mode],
    )


# --------------------------------------------------------------------------------------------


def diagnose(
    run: Any,
    hyperparameters: Any = None,
    *,
    curvature: float | None = None,
    curvature_lag: float | None = None,
    curvature_now: float | None = None,
    column: str = "reward",
    eval_column: str | None = None,
) -> Diagnosis:
    """Score the failure modes of MODEL.md s.8 on one run (docs/diagnose.md).

    run: a Run from read_log, or a DataFrame indexed by step with canonical column names.
    hyperparameters: optional Hyperparameters (stability module, or a dict of its fields);
      adds the exact spectral radius, the margin 1 - (per-step decay rate) and the largest
      safe refresh interval / delay / learning rate (Diagnosis.stability).
    curvature, curvature_lag, curvature_now: kappa of the stability module (per unit
      eta_eff); when none is given it is estimated from the fitted tau (docs/diagnose.md).
    column: the training reward; eval_column: held-out/gold reward (auto-detected).
    """
    frame = run_frame(run).sort_index()
    if column not in frame.columns:
        raise ValueError(f"column: {column!r} not in the run (columns: {list(frame.columns)})")
    if column != "reward":
        frame = frame.rename(columns={column: "reward"})
    frame = frame[~frame.index.duplicated(keep="last")]  # restarts: the later entry wins
    series = frame["reward"].astype(float).dropna()
    if series.size < 12:
        raise ValueError(f"run: only {series.size} finite {column!r} values; need at least 12")
    t = np.asarray(series.index, dtype=float)
    r = series.to_numpy()
    metadata = dict(getattr(run, "metadata", {}) or {})
    warnings: list[str] = []

    trend = trend_test(t, r)
    fit = None
    try:
        fit = fit_curve(t, r, "oscillator")
        status = str(getattr(fit, "status", "converged")).lower()
        if not all(np.isfinite(float(v)) for v in dict(fit.params).values()):
            warnings.append(f"oscillator fit returned non-finite parameters (status {status})")
            fit = None
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
        warnings.append(f"oscillator fit failed: {exc}")

    exact = _exact_stability(hyperparameters, fit, curvature, curvature_lag, curvature_now)
    findings = {
        "reward_hacking": _reward_hacking(frame, _eval_column(frame, eval_column)),
        "advantage_degeneracy": _advantage_degeneracy(
            frame, _group_size(metadata, hyperparameters)
        ),
        "policy_concentration": _policy_concentration(frame),
        "dynamical_instability": _dynamical_instability(t, r, fit, exact),
        "healthy_saturation": _healthy_saturation(t, r, fit, trend),
    }
    failures = sorted(
        (f for m, f in findings.items() if m in FAILURE_MODES and f.detected),
        key=lambda f: -f.score,
    )
    healthy = findings["healthy_saturation"]
    if failures and healthy.detected:
        # a plateau reached while a failure mode is active is not healthy saturation
        healthy.verdict = "possible"
        healthy.summary += f"; but {failures[0].mode} is detected"
    if failures:
        verdict = failures[0].mode
    elif not trend["trend"]:
        verdict = "no trend"
    elif findings["healthy_saturation"].detected:
        verdict = "healthy_saturation"
    else:
        verdict = "still improving" if trend.get("direction") == "up" else "declining"
    return Diagnosis(verdict, findings, trend, fit, exact, int(t.size), warnings)
