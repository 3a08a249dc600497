"""What happened in a GRPO run, and what to do about it (docs/diagnose.md).

``diagnose(run)`` reads every column a training log carries through the detectors of
:mod:`grpo_dynamics._detectors` (truncation, KL, collapse, gradient norm, entropy, reward
functions, advantage degeneracy, no learning) and the one trend verdict of
:mod:`grpo_dynamics.trend`, and returns a :class:`Diagnosis`: one overall verdict, a
plain-language headline (what happened, what to do), the findings sorted by severity, and a
separate "dynamics" section with the fitted model (tau, mu, zeta) and, with hyperparameters,
the exact stability of the optimizer (docs/model.md, "The continuum model").

The verdict never contradicts itself: "still improving" comes only from a recent window that
still rises, saturation advice ("more steps will not help") only from a plateau with nothing
wrong, and model quantities never enter the headline.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._detectors import (
    DETECTORS,
    SEVERITIES,
    Finding,
    Severity,
    detect_collapse,
    detect_no_learning,
    framework,
    rose_then_flat,
)
from ._fit import FitResult, fit
from ._forecast import gain_step
from ._results import to_jsonable
from ._stability import Hyperparameters, exact_stability
from .io import Run, as_run
from .trend import (
    MIN_RECENT,
    PLATEAU_FRACTION,
    PLATEAU_LEVEL,
    Progress,
    progress,
    trend_test,
)

__all__ = ["Diagnosis", "Finding", "diagnose", "VERDICTS", "worst_severity", "fails"]

#: The overall verdicts, from the reward curve (docs/diagnose.md, "Verdict").
VERDICTS = (
    "still improving",
    "slowing",
    "saturated",
    "no trend",
    "declining",
    "collapsed",
    "too short",
)
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
SATURATION_ADVICE = (
    "more steps will not help: change the data, the reward or the model to go higher"
)
# a plateau whose recent window still rises significantly, if slowly (_creep)
CREEP_ADVICE = "more steps add little: change the data, the reward or the model to go higher"
# a fit on more points than this is made on contiguous bin means (same curve, less work)
_FIT_MAX_POINTS = 2000


def worst_severity(findings: Sequence[Finding]) -> Severity | None:
    """The highest severity among assessable findings, None when there is none."""
    ranks = [f.rank for f in findings if f.assessable]
    return SEVERITIES[max(ranks)] if ranks else None


def _check_level(level: str) -> Severity:
    for s in SEVERITIES:
        if s == level:
            return s
    raise ValueError(f"level: must be one of {', '.join(SEVERITIES)}, got {level!r}")


def fails(diagnoses: Diagnosis | Sequence[Diagnosis], level: str) -> bool:
    """True when any diagnosis has a finding at ``level`` ("info"/"warning"/"critical") or
    above: what ``--fail-on level`` turns into a non-zero exit code."""
    items = [diagnoses] if isinstance(diagnoses, Diagnosis) else list(diagnoses)
    return any(d.fails(level) for d in items)


@dataclass
class Diagnosis:
    """Result of :func:`diagnose` (docs/diagnose.md, "Diagnosis").

    ``verdict`` is one of :data:`VERDICTS`; ``headline`` says in one line what happened and
    what to do; ``findings`` are the assessable findings, most severe first;
    ``not_assessable`` the checks the log lacks a column for; ``progress`` the trend verdict
    (whole run and recent window); ``dynamics`` the fitted model and, with hyperparameters,
    ``stability`` (spectral radius, margin, largest safe settings).
    """

    name: str
    verdict: str
    headline: str
    findings: list[Finding]
    not_assessable: list[Finding]
    progress: dict[str, Any]
    dynamics: dict[str, Any] | None
    fit: FitResult | None = None
    stability: dict[str, Any] | None = None
    n_steps: int = 0
    column: str = "reward"
    framework: str = "unknown"
    start_level: float = math.nan
    end_level: float = math.nan
    warnings: list[str] = field(default_factory=list)
    run: Run | None = field(default=None, repr=False, compare=False)

    @property
    def worst_severity(self) -> Severity | None:
        """ "critical", "warning", "info", or None when nothing was found."""
        return worst_severity(self.findings)

    @property
    def detected(self) -> list[str]:
        """Codes of the warning and critical findings, most severe first."""
        return [f.code for f in self.findings if f.rank >= _RANK["warning"]]

    def fails(self, level: str) -> bool:
        """True when a finding is at ``level`` or above (for ``--fail-on``)."""
        threshold = _RANK[_check_level(level)]
        return any(f.rank >= threshold for f in self.findings)

    def __getitem__(self, code: str) -> Finding:
        for f in self.findings:
            if f.code == code:
                return f
        raise KeyError(f"no finding {code!r}; found: {', '.join(self.codes) or 'none'}")

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    @property
    def trend(self) -> dict[str, Any]:
        """The whole-run trend test as a dict (from :mod:`grpo_dynamics.trend`)."""
        overall = self.progress.get("overall")
        return dict(overall) if isinstance(overall, dict) else {}

    def to_pandas(self) -> pd.DataFrame:
        """One row per finding: severity, title, setting, advice."""
        rows = [
            {
                "code": f.code,
                "severity": f.severity,
                "title": f.title,
                "setting": f.setting or "",
                "advice": f.advice,
            }
            for f in self.findings
        ]
        return pd.DataFrame(rows, columns=["code", "severity", "title", "setting", "advice"])

    def __repr__(self) -> str:
        worst = self.worst_severity or "nothing"
        return (
            f"Diagnosis({self.name!r}: {self.verdict}, worst {worst}, "
            f"{len(self.findings)} findings, {self.n_steps} points)"
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything but the run and the fit object, JSON-serialisable (NaN -> None)."""
        return to_jsonable(
            {
                "name": self.name,
                "verdict": self.verdict,
                "headline": self.headline,
                "worst_severity": self.worst_severity,
                "detected": self.detected,
                "n_steps": self.n_steps,
                "column": self.column,
                "framework": self.framework,
                "start_level": self.start_level,
                "end_level": self.end_level,
                "findings": [f.to_dict() for f in self.findings],
                "not_assessable": [f.to_dict() for f in self.not_assessable],
                "progress": self.progress,
                "dynamics": self.dynamics,
                "stability": self.stability,
                "warnings": list(self.warnings),
            }
        )

    def __str__(self) -> str:
        lines = [f"{self.name}: {self.headline}"]
        for f in self.findings:
            lines.append(f"  [{f.severity}] {f.title}")
            if f.setting and f.rank >= _RANK["warning"]:
                lines.append(f"      -> {f.setting}: {f.advice}")
        if self.not_assessable:
            lines.append(
                "  not assessable: "
                + "; ".join(f.title.removeprefix("not assessable: ") for f in self.not_assessable)
            )
        dyn = _dynamics_lines(self.dynamics, self.stability)
        if dyn:
            lines.append("  dynamics:")
            lines.extend("    " + line for line in dyn)
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The diagnosis as Markdown, for pasting into an issue."""
        badge = {"critical": "🔴 critical", "warning": "🟠 warning", "info": "🔵 info"}
        out = [f"### {self.name}", "", f"**{self.headline}**", ""]
        out.append(f"Verdict: *{self.verdict}* ({self.n_steps} points of `{self.column}`)")
        out.append("")
        if self.findings:
            out.append("| severity | finding | change | why |")
            out.append("|---|---|---|---|")
            for f in self.findings:
                cells = [
                    badge[f.severity],
                    f.title,
                    f"`{f.setting}`" if f.setting else "",
                    f.advice,
                ]
                out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
            out.append("")
            for f in self.findings:
                ev = ", ".join(
                    f"{k} = {_short(v)}" for k, v in f.evidence.items() if k != "co_signals"
                )
                out.append(f"- **{f.code}** evidence: {ev}")
            out.append("")
        else:
            out.append("No problems found in the logged columns.")
            out.append("")
        if self.not_assessable:
            out.append(
                "Not assessable: "
                + "; ".join(f.title.removeprefix("not assessable: ") for f in self.not_assessable)
            )
            out.append("")
        dyn = _dynamics_lines(self.dynamics, self.stability)
        if dyn:
            out.append("<details><summary>dynamics (fitted model)</summary>")
            out.append("")
            out.extend(f"- {line}" for line in dyn)
            out.append("")
            out.append("</details>")
            out.append("")
        return "\n".join(out)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) > 6:
        return "[" + ", ".join(_short(v) for v in value[:6]) + ", ...]"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value)


def _dynamics_lines(dynamics: dict[str, Any] | None, stability: dict[str, Any] | None) -> list[str]:
    lines: list[str] = []
    if dynamics:
        if "error" in dynamics:
            lines.append(f"fit: {dynamics['error']}")
        else:
            p = dynamics["params"]
            text = (
                f"oscillator fit ({dynamics['status']}, R^2 {dynamics['r2']:.3g}): plateau "
                f"r_inf {p['r_inf']:.4g}, time constant tau {p['tau']:.4g} steps"
            )
            if dynamics.get("zeta") is not None:
                text += f", mu {p['mu']:.3g} (damping ratio zeta {dynamics['zeta']:.3g})"
            lines.append(text)
            if dynamics.get("t95") is not None:
                lines.append(f"95% of the fitted gain at step {dynamics['t95']:.0f}")
            if dynamics.get("at_bound"):
                lines.append("held at a bound (not identified): " + ", ".join(dynamics["at_bound"]))
    st = stability
    if st and "spectral_radius" in st:
        lines.append(
            f"exact stability: spectral radius {st['spectral_radius']:.4g} ({st['regime']}), "
            f"margin {st['margin']:+.3g} per step, curvature {st['curvature']:.4g} "
            f"({st['curvature_source']})"
        )
        safe = [
            f"{k.removeprefix('max_safe_').replace('_', ' ')} {st[k]:.4g}"
            for k in ("max_safe_refresh_interval", "max_safe_delay", "max_safe_learning_rate")
            if st.get(k) is not None
        ]
        if safe:
            lines.append("largest safe: " + ", ".join(safe))
    elif st and "error" in st:
        lines.append(f"exact stability: {st['error']}")
    return lines


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


def _exact_stability(
    hyperparameters: Any,
    fit: FitResult | None,
    curvature: float | None,
    curvature_lag: float | None,
    curvature_now: float | None,
) -> dict[str, Any] | None:
    """stability.exact_stability as a dict, with kappa estimated from the fit when not given."""
    if hyperparameters is None:
        return None
    hp = hyperparameters
    if isinstance(hp, dict):
        hp = Hyperparameters(**hp)
    if not isinstance(hp, Hyperparameters):
        raise ValueError(
            f"hyperparameters: expected a Hyperparameters or a dict, got {type(hp).__name__}"
        )
    source = "given"
    if curvature is None and curvature_lag is None and curvature_now is None:
        curvature = _estimated_curvature(hp, fit)
        if curvature is None:
            return {"error": "no curvature given and none could be estimated from the fit"}
        source = "estimated from the fitted tau (continuum inversion, all forces lagged)"
    summary = exact_stability(
        hp,
        curvature,
        curvature_lag=curvature_lag,
        curvature_now=curvature_now,
        curvature_source=source,
    )
    return summary.to_dict()


# --------------------------------------------------------------------------------------------
# the verdict and the headline


@dataclass(frozen=True)
class _OpenEnd:
    """Why a run that rose then went flat is not called saturated: the recent window's slope,
    at its one-sided PLATEAU_LEVEL confidence limit, still allows ``room`` more over
    ``window`` steps (``points`` points from ``start``), at least PLATEAU_FRACTION of ``gain``."""

    room: float
    gain: float
    window: float
    points: int
    start: float


def _open_end(pr: Progress, rose: bool, t: np.ndarray, y: np.ndarray) -> _OpenEnd | None:
    """The plateau rule of trend.progress for a run only ``rose_then_flat`` calls risen.

    ``progress`` answers "plateau" only when the recent window's slope, at its one-sided
    PLATEAU_LEVEL confidence limit, adds less than PLATEAU_FRACTION of the gain over that
    window; a run whose rise the rank test missed (state "flat") would otherwise be called
    saturated without that check, e.g. an 11-point run that stopped right after its rise. The
    same limit, the trend test's rank interval at level 1 - 2 (1 - PLATEAU_LEVEL), here
    decides; the gain is the larger of rose_then_flat's rise (end median against the lower of
    the first point and the first-window median) and the whole-run Sen change. None when the
    rule calls it a plateau (or the question does not arise).
    """
    if pr.state != "flat" or not rose or pr.overall is None:
        return None
    recent = t >= pr.recent_start
    tr, yr = t[recent], y[recent]
    if tr.size < 2:
        return None
    bound = trend_test(tr, yr, alpha=2.0 * (1.0 - PLATEAU_LEVEL)).slope_interval[1]
    window = float(tr[-1] - tr[0])
    room = max(bound, 0.0) * window
    w = max(3, y.size // 8)
    rise = float(np.median(y[-w:])) - min(float(y[0]), float(np.median(y[:w])))
    gain = max(rise, abs(pr.overall.change))
    if room < PLATEAU_FRACTION * gain:
        return None
    return _OpenEnd(room, gain, window, int(tr.size), float(tr[0]))


def _verdict(
    pr: Progress, rose: bool, findings: Sequence[Finding], open_end: _OpenEnd | None = None
) -> str:
    codes = {f.code for f in findings}
    if "collapse" in codes:
        return "collapsed"
    if "reward_declining" in codes:
        return "declining"
    state = pr.state
    if state == "rising":
        return "still improving"
    if state == "falling":
        return "declining"
    if state == "plateau":
        return "saturated"
    if state == "slowing":
        return "slowing"
    if state == "flat" and rose:
        # a rise the rank test missed: a plateau only when the recent slope's confidence limit
        # says so (_open_end), else the data cannot tell a plateau from a continued rise
        return "saturated" if open_end is None else "slowing"
    if state == "flat":
        return "no trend"
    return "too short"


def _num(x: float) -> str:
    if not math.isfinite(x):
        return "nan"
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
        return f"{x:.3g}"
    return f"{x:.3g}"


def _creep(pr: Progress, last_step: float) -> tuple[float, float] | None:
    """(change, steps) over the recent window of a run called a plateau although that window
    still moves significantly its way (a drift smaller than PLATEAU_FRACTION of the gain per
    window, see trend.progress), else None."""
    overall, recent = pr.overall, pr.recent
    if pr.state != "plateau" or overall is None or recent is None:
        return None
    if not recent.present or recent.direction != overall.direction:
        return None
    return recent.change, last_step - pr.recent_start


def _headline(
    verdict: str,
    start: float,
    end: float,
    middle: float,
    findings: Sequence[Finding],
    creep: tuple[float, float] | None = None,
    open_end: _OpenEnd | None = None,
) -> str:
    moved = f"{_num(start)} -> {_num(end)}"
    plateaued = (
        "has plateaued"
        if creep is None
        else f"has nearly plateaued (still {'+' if creep[0] > 0 else '-'}{_num(abs(creep[0]))} "
        f"over its last {creep[1]:,.0f} steps)"
    )
    what = {
        "still improving": f"Reward rose {moved} and is still improving",
        "slowing": f"Reward rose {moved}; the rise is slowing, no plateau yet"
        if open_end is None
        else f"Reward rose {moved}; {_open_end_text(open_end)}",
        "saturated": f"Reward rose {moved} and {plateaued}",
        "no trend": f"Reward shows no trend (median {_num(middle)})",
        "declining": f"Reward is falling ({moved})",
        "collapsed": "Reward collapsed",
        "too short": "Too few points to judge the reward curve",
    }[verdict]
    serious = [f for f in findings if f.rank >= _RANK["warning"]]
    if verdict == "collapsed" and serious and serious[0].code == "collapse":
        top = serious[0]
        return f"{top.title}. {top.advice[0].upper()}{top.advice[1:]}."
    if serious:
        top = serious[0]
        todo = f"{top.severity}: {top.title[0].lower()}{top.title[1:]}"
        if top.setting:
            todo += f"; change {_short_setting(top.setting)}"
        more = len(serious) - 1
        if more:
            todo += f" (+{more} more warning{'s' if more > 1 else ''}/critical below)"
        return f"{what}. {todo[0].upper()}{todo[1:]}."
    slow = [f for f in findings if f.code == "slow_learning"]
    if slow and slow[0].setting:
        return f"{what}. Learning slowly: try a larger {_short_setting(slow[0].setting)}."
    if verdict == "saturated" and creep is not None:
        return f"{what}. Nothing wrong in the log; {CREEP_ADVICE}."
    if verdict == "saturated":
        return f"{what}. Nothing wrong in the log; {SATURATION_ADVICE}."
    if verdict in ("still improving", "slowing"):
        return f"{what}. Nothing wrong in the log; keep training."
    return f"{what}. Nothing wrong in the other columns."


def _open_end_text(o: _OpenEnd) -> str:
    """Why a risen, flat-looking run is not called a plateau, in plain words."""
    why = "too few points" if o.points <= MIN_RECENT else "too noisy"
    return (
        f"{why} to tell a plateau from a continued rise: the last {o.points} points (steps "
        f"{o.start:,.0f}-{o.start + o.window:,.0f}) allow up to +{_num(o.room)} more over "
        f"{o.window:,.0f} steps (one-sided {PLATEAU_LEVEL:.0%} limit)"
    )


def _short_setting(setting: str) -> str:
    """The setting's name for a one-line headline: plain words when the framework is unknown."""
    return setting.split(" (TRL ")[0].removeprefix("the ")


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """Drop findings another one explains: "no learning" beside a collapse or a dead signal."""
    codes = {f.code for f in findings}
    drop: set[str] = set()
    if codes & {"collapse", "reward_declining"}:
        drop |= {"no_learning", "slow_learning"}
    if "group_size_one" in codes:
        drop |= {"no_learning", "advantage_degeneracy"}
    return [f for f in findings if f.code not in drop]


# --------------------------------------------------------------------------------------------
# the dynamics section


def _fit_dynamics(
    t: np.ndarray, r: np.ndarray, t0: float | None = None
) -> tuple[FitResult | None, dict[str, Any]]:
    """Oscillator fit (docs/model.md, "The closed-form trajectory") on at most
    ``_FIT_MAX_POINTS`` contiguous bin means; the model quantities for the dynamics section.
    From rest at ``t0``, by default the first logged step."""
    start = float(t[0]) if t0 is None else float(t0)
    if t.size > _FIT_MAX_POINTS:
        edges = np.linspace(0, t.size, _FIT_MAX_POINTS + 1).round().astype(np.int64)
        counts = np.diff(edges)
        t = np.add.reduceat(t, edges[:-1]) / counts
        r = np.add.reduceat(r, edges[:-1]) / counts
    try:
        result = fit(t, r, "oscillator", t0=start)
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
        return None, {"error": f"oscillator fit failed: {exc}"}
    params = {k: float(v) for k, v in result.params.items()}
    if not all(math.isfinite(v) for v in params.values()):
        return None, {"error": f"oscillator fit returned non-finite parameters ({result.status})"}
    mu = params.get("mu", 0.0)
    doc: dict[str, Any] = {
        "model": result.model,
        "params": params,
        "stderr": {k: float(v) for k, v in result.stderr.items()},
        "status": result.status,
        "regime": result.regime,
        "r2": float(result.r2),
        "zeta": 0.5 / math.sqrt(mu) if mu > 0 else None,
        "at_bound": [k for k, v in result.at_bound.items() if v],
        "t95": None,
    }
    try:
        t95 = gain_step(0.95, params["tau"], mu, t0=result.t0)
        doc["t95"] = t95 if math.isfinite(t95) else None
    except ValueError:
        pass
    return result, doc


def _unstable_settings(exact: dict[str, Any] | None, fw: str) -> Finding | None:
    """A warning when the exact model says the given optimizer settings are unstable
    (spectral radius >= 1, docs/stability.md): deviations from the plateau grow every cycle."""
    if not exact or "spectral_radius" not in exact or exact["spectral_radius"] < 1.0:
        return None
    safe = {
        k.removeprefix("max_safe_").replace("_", " "): exact[k]
        for k in ("max_safe_refresh_interval", "max_safe_delay", "max_safe_learning_rate")
        if exact.get(k) is not None
    }
    limit = ", ".join(f"{k} {v:.4g}" for k, v in safe.items())
    trl = fw in ("trl", "unknown")
    setting = "num_iterations / learning_rate" if trl else "actor_rollout_ref.actor.ppo_epochs"
    return Finding(
        "unstable_settings",
        "warning",
        "These optimizer settings are predicted to be unstable: deviations from the plateau "
        "grow each cycle" + (f" (largest stable: {limit})" if limit else ""),
        {k: exact[k] for k in ("spectral_radius", "margin", "curvature_source")} | safe,
        ["reward"],
        [],
        setting,
        "lower the refresh interval (updates per batch of rollouts) or the learning rate to "
        "the largest stable value: past it the reward oscillates with growing amplitude",
    )


def _same_name(run: Run, name: str | None) -> str:
    if name:
        return name
    return run.name


def diagnose(
    run: Any,
    hyperparameters: Any = None,
    *,
    curvature: float | None = None,
    curvature_lag: float | None = None,
    curvature_now: float | None = None,
    column: str = "reward",
    eval_column: str | None = None,
    name: str | None = None,
    t0: float | None = None,
) -> Diagnosis:
    """What happened in one run and what to do (docs/diagnose.md).

    run: a Run from read_log, a DataFrame indexed by step (or with a ``step`` column), a
      mapping of columns, anything :func:`grpo_dynamics.io.as_run` accepts.
    hyperparameters: optional Hyperparameters (stability module, or a dict of its fields);
      adds the exact spectral radius, the margin and the largest safe refresh interval /
      delay / learning rate to the dynamics section (Diagnosis.stability).
    curvature, curvature_lag, curvature_now: kappa of the stability module (per unit
      eta_eff); when none is given it is estimated from the fitted tau.
    column: the training reward column; eval_column: a held-out reward column to check exists
      (reported in the dynamics section's context, not used for the verdict).
    name: the label for tables and reports (default: the log's file name).
    t0: the step training started (the oscillator's from-rest time, docs/model.md); default
      the first logged step of ``column``.
    """
    if t0 is not None and not math.isfinite(float(t0)):
        raise ValueError(f"t0: must be finite, got {t0}")
    r = as_run(run)
    if column != "reward" and not r.has(column):
        raise ValueError(f"column: {column!r} not in the run (columns: {list(r.frame.columns)})")
    if eval_column is not None and not r.has(eval_column):
        raise ValueError(f"eval_column: {eval_column!r} not in the run")
    t, y = r.series(column)
    if y.size < 8:
        raise ValueError(f"run: only {y.size} finite {column!r} values; need at least 8")
    detectors = [
        functools.partial(detect_collapse, column=column)
        if d is detect_collapse
        else functools.partial(detect_no_learning, column=column)
        if d is detect_no_learning
        else d
        for d in DETECTORS
    ]
    found: list[Finding] = []
    for detector in detectors:
        found.extend(detector(r))
    found = _dedupe(found)
    findings = sorted((f for f in found if f.assessable), key=lambda f: -f.rank)
    not_assessable = [f for f in found if not f.assessable]

    pr = progress(t, y)
    rose = rose_then_flat(t, y)
    open_end = _open_end(pr, rose, t, y)
    verdict = _verdict(pr, rose, findings, open_end)
    w = max(3, y.size // 20)
    start, end = float(np.median(y[:w])), float(np.median(y[-w:]))
    creep = _creep(pr, float(t[-1]))
    headline = _headline(verdict, start, end, float(np.median(y)), findings, creep, open_end)

    warnings: list[str] = list(r.warnings)
    result: FitResult | None = None
    dynamics: dict[str, Any] | None = None
    if pr.overall is not None and (pr.overall.present or rose):
        result, dynamics = _fit_dynamics(t, y, t0)
        if result is None and dynamics is not None:
            warnings.append(str(dynamics.get("error")))
    else:
        dynamics = {"error": "no trend: the model's plateau and time constant are not identified"}
    exact = _exact_stability(hyperparameters, result, curvature, curvature_lag, curvature_now)
    unstable = _unstable_settings(exact, framework(r))
    if unstable is not None:
        findings = sorted([*findings, unstable], key=lambda f: -f.rank)
        verdict = _verdict(pr, rose, findings, open_end)
        headline = _headline(verdict, start, end, float(np.median(y)), findings, creep, open_end)
    return Diagnosis(
        name=_same_name(r, name),
        verdict=verdict,
        headline=headline,
        findings=findings,
        not_assessable=not_assessable,
        progress=pr.to_dict(),
        dynamics=dynamics,
        fit=result,
        stability=exact,
        n_steps=int(y.size),
        column=column,
        framework=framework(r),
        start_level=start,
        end_level=end,
        warnings=warnings,
        run=r,
    )
