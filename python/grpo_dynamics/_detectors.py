"""What a GRPO log shows beyond its reward curve: one detector per failure (docs/diagnose.md).

Each detector is a pure function ``Run -> list[Finding]``: an empty list when the log shows
nothing wrong, one "not assessable: needs <column>" finding (severity info) when the log lacks
the column it reads, otherwise findings with a severity (info / warning / critical), a
plain-language title, the evidence (numbers, steps, the columns used), the setting to change in
the framework that wrote the log and a one-sentence reason.

Every threshold works on robust levels (medians of windows, rolling medians, MADs), never on
one logged point, so a single noisy step cannot raise an alarm (docs/diagnose.md, "Detectors").
The reward's trend comes from :mod:`grpo_dynamics.trend`, the one trend verdict of the package
(docs/model.md, "Fitting real runs").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._results import to_jsonable
from .io import Run
from .trend import ar1_from_differences, noise_from_differences, progress, trend_test

__all__ = [
    "Finding",
    "Severity",
    "SEVERITIES",
    "DETECTORS",
    "detect_all",
    "framework",
    "setting_name",
    "detect_length",
    "detect_kl",
    "detect_clip_fraction",
    "detect_collapse",
    "detect_grad_norm",
    "detect_entropy",
    "detect_reward_functions",
    "detect_degeneracy",
    "detect_no_learning",
    "rose_then_flat",
]

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}

FloatArray = NDArray[np.float64]


@dataclass
class Finding:
    """One thing the log shows (docs/diagnose.md, "Findings").

    ``code`` names the detector's finding (e.g. "length_truncation"); ``columns`` are the
    run's column names the evidence comes from (the report plots them); ``steps`` marks the
    steps that matter (an onset, a spike); ``setting`` is the option to change in the
    framework that wrote the log and ``advice`` the one-sentence reason. A finding with
    ``assessable`` False says which column the check needs; its severity is "info".
    """

    code: str
    severity: Severity
    title: str
    evidence: dict[str, Any] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    setting: str | None = None
    advice: str = ""
    assessable: bool = True

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return _RANK[self.severity]

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "title": self.title,
            "evidence": to_jsonable(self.evidence),
            "columns": list(self.columns),
            "steps": [float(s) for s in self.steps],
            "setting": self.setting,
            "advice": self.advice,
            "assessable": self.assessable,
        }


def _na(code: str, needs: str) -> Finding:
    return Finding(code, "info", f"not assessable: needs {needs}", assessable=False)


# ---------------------------------------------------------------------------------------------
# the framework that wrote the log, and its name for each setting

# knob -> (TRL GRPOConfig, verl, OpenRLHF, plain words)
_SETTINGS: dict[str, tuple[str, str, str, str]] = {
    "max_length": (
        "max_completion_length",
        "data.max_response_length",
        "--generate_max_len",
        "the maximum completion length",
    ),
    "kl_coef": (
        "beta",
        "actor_rollout_ref.actor.kl_loss_coef",
        "--init_kl_coef",
        "the KL penalty coefficient",
    ),
    "lr": (
        "learning_rate",
        "actor_rollout_ref.actor.optim.lr",
        "--actor_learning_rate",
        "the learning rate",
    ),
    "group": (
        "num_generations",
        "actor_rollout_ref.rollout.n",
        "--n_samples_per_prompt",
        "the group size (completions per prompt)",
    ),
    "clip": (
        "epsilon",
        "actor_rollout_ref.actor.clip_ratio",
        "--eps_clip",
        "the PPO clip range",
    ),
    "clip_high": (
        "epsilon_high",
        "actor_rollout_ref.actor.clip_ratio_high",
        "--eps_clip",
        "the upper PPO clip range (clip-higher)",
    ),
    "grad_clip": (
        "max_grad_norm",
        "actor_rollout_ref.actor.grad_clip",
        "--max_norm",
        "the gradient-clipping norm",
    ),
    "temperature": (
        "temperature",
        "actor_rollout_ref.rollout.temperature",
        "--temperature",
        "the sampling temperature",
    ),
    "iterations": (
        "num_iterations",
        "actor_rollout_ref.actor.ppo_epochs",
        "--max_epochs",
        "the number of updates per batch of rollouts",
    ),
    "reward_funcs": (
        "reward_funcs / reward_weights",
        "custom_reward_function.path",
        "--remote_rm_url",
        "the reward functions and their weights",
    ),
}

Framework = Literal["trl", "verl", "openrlhf", "unknown"]


def framework(run: Run) -> Framework:
    """Which trainer wrote the log, from its format, column names and metadata."""
    names = {str(c) for c in run.frame.columns} | {str(v) for v in run.original_names.values()}
    meta = {str(k).lower() for k in run.metadata}
    if meta & {"n_samples_per_prompt", "init_kl_coef", "generate_max_len", "eps_clip"}:
        return "openrlhf"
    verl_prefixes = ("actor/", "critic/", "response_length/", "actor_rollout_ref")
    if any(n.startswith(verl_prefixes) for n in names) or meta & {"data", "actor_rollout_ref"}:
        return "verl"
    trl_names = ("completions/", "rewards/", "clip_ratio/")
    if run.format == "trl" or any(n.startswith(trl_names) for n in names):
        return "trl"
    return "unknown"


def setting_name(knob: str, fw: Framework) -> str:
    """The option that sets ``knob`` in framework ``fw`` (plain words plus the TRL/verl names
    when the framework is unknown)."""
    trl, verl, openrlhf, words = _SETTINGS[knob]
    if fw == "trl":
        return trl
    if fw == "verl":
        return verl
    if fw == "openrlhf":
        return openrlhf
    return f"{words} (TRL {trl}, verl {verl})"


# ---------------------------------------------------------------------------------------------
# column access and robust statistics


@dataclass
class _Col:
    name: str  # the run's column name (canonical when it has one)
    label: str  # the name the log used
    t: FloatArray
    y: FloatArray


def _col(run: Run, *names: str, min_points: int = 1) -> _Col | None:
    for name in names:
        if not run.has(name):
            continue
        t, y = run.series(name)
        if t.size < min_points:
            continue
        resolved = name if name in run.frame.columns else _resolve(run, name)
        label = run.original_names.get(resolved, resolved)
        return _Col(resolved, str(label), t, y)
    return None


def _resolve(run: Run, name: str) -> str:
    for canonical, original in run.original_names.items():
        if original == name and canonical in run.frame.columns:
            return canonical
    return name


def _window(n: int, share: float, least: int = 3) -> int:
    return int(min(n, max(least, math.ceil(share * n))))


def _rolling_median(y: FloatArray, width: int) -> FloatArray:
    width = max(1, min(width, y.size))
    return np.asarray(
        pd.Series(y).rolling(width, center=True, min_periods=1).median().to_numpy(), float
    )


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.3g}"
    return f"{x:.4g}" if abs(x) < 100 else f"{x:.0f}"


def _step(t: float) -> str:
    return f"{t:.0f}"


def _onset(mask: NDArray[np.bool_], share: float = 0.9) -> int | None:
    """First index i with mask[i] True and at least ``share`` of mask[i:] True (None if none):
    where a condition starts and then (mostly) holds to the end, one dip not resetting it."""
    if mask.size == 0:
        return None
    tail_share = np.cumsum(mask[::-1])[::-1] / np.arange(mask.size, 0, -1)
    ok = np.flatnonzero(mask & (tail_share >= share))
    return int(ok[0]) if ok.size else None


def _sustained_from(mask: NDArray[np.bool_]) -> int | None:
    """First index from which mask stays True to the end (None if the last point is False)."""
    if mask.size == 0 or not mask[-1]:
        return None
    false = np.flatnonzero(~mask)
    return int(false[-1] + 1) if false.size else 0


# ---------------------------------------------------------------------------------------------
# length: truncation and drift

_CLIPPED = ("completions/clipped_ratio", "response_length/clip_ratio", "truncated_rate")
_MEAN_LEN = (
    "completion_length",
    "response_length/mean",
    "avg_response_token_length",
    "avg_gen_tokens",
    "completions/mean_length",
)
_MAX_LEN = ("completions/max_length", "response_length/max", "max_gen_tokens")
_CAP_COLUMNS = ("max_tokens", "max_completion_length", "max_response_length")
_CAP_META = ("max_completion_length", "max_response_length", "max_new_tokens", "max_tokens")


def _length_cap(run: Run) -> tuple[float | None, str]:
    for key in _CAP_META:
        value = run.metadata.get(key)
        if isinstance(value, int | float) and value > 0:
            return float(value), f"metadata {key}"
    cap = _col(run, *_CAP_COLUMNS)
    if cap is not None and cap.y.size and np.ptp(cap.y) == 0 and cap.y[0] > 0:
        return float(cap.y[0]), f"column {cap.label}"
    return None, ""


def _clipped_fraction(run: Run) -> _Col | None:
    col = _col(run, *_CLIPPED, min_points=3)
    if col is not None:
        return col
    trunc, total = _col(run, "truncated_count"), _col(run, "rollout_count")
    if trunc is None or total is None:
        return None
    common, i, j = np.intersect1d(trunc.t, total.t, return_indices=True)
    ok = total.y[j] > 0
    if ok.sum() < 3:
        return None
    return _Col(
        "truncated_count",
        "truncated_count / rollout_count",
        common[ok],
        trunc.y[i][ok] / total.y[j][ok],
    )


def detect_length(run: Run) -> list[Finding]:
    """Truncation at the length cap and drift of the completion length.

    Truncation: the clipped fraction (TRL ``completions/clipped_ratio``, verl
    ``response_length/clip_ratio``, truncated/rollout counts) averaged over the second half of
    the run: >= 0.5 critical, >= 0.1 warning, >= 0.02 info; without it, the mean length pinned
    exactly at the cap (the configured maximum, or the largest logged mean when it repeats)
    on >= 50% of steps is critical, >= 10% a warning. The onset is the first step from which
    the 5-point rolling median stays >= 0.8 of that mean on 80% of the rest. Drift: the
    median length of the last fifth against the first tenth, with a Mann-Kendall trend:
    grown x2 is info, shrunk to a half info and to a quarter a warning (answers collapsing to
    a few tokens).
    """
    fw = framework(run)
    out: list[Finding] = []
    clipped = _clipped_fraction(run)
    mean_len = _col(run, *_MEAN_LEN, min_points=3)
    max_len = _col(run, *_MAX_LEN, min_points=3)
    term = _col(run, "completions/mean_terminated_length", min_points=3)
    cap, cap_source = _length_cap(run)
    setting = setting_name("max_length", fw)
    if clipped is not None:
        y = np.clip(clipped.y, 0.0, 1.0)
        half = y[y.size // 2 :]
        late = float(np.mean(half))
        whole = float(np.mean(y))
        evidence: dict[str, Any] = {
            "clipped_fraction_second_half": late,
            "clipped_fraction_whole_run": whole,
            "column": clipped.label,
        }
        columns = [clipped.name]
        steps: list[float] = []
        severity: Severity | None = None
        if late >= 0.5:
            severity = "critical"
        elif late >= 0.1:
            severity = "warning"
        elif late >= 0.02:
            severity = "info"
        if severity is not None:
            start = _onset(_rolling_median(y, 5) >= 0.8 * late, 0.8)
            if start is not None:
                steps.append(float(clipped.t[start]))
                evidence["truncated_from_step"] = float(clipped.t[start])
            if mean_len is not None and max_len is not None:
                common, i, j = np.intersect1d(mean_len.t, max_len.t, return_indices=True)
                pinned = np.isclose(mean_len.y[i], max_len.y[j], rtol=1e-6) & (max_len.y[j] > 0)
                if pinned.size:
                    evidence["steps_mean_length_equals_max"] = float(np.mean(pinned))
                    columns.append(mean_len.name)
            if term is not None:
                evidence["terminated_length_second_half"] = float(
                    np.median(term.y[term.y.size // 2 :])
                )
                columns.append(term.name)
            length = f" at {_fmt(cap)} tokens" if cap is not None else ""
            if cap is None and max_len is not None:
                length = f" (longest completion {_fmt(float(np.max(max_len.y)))} tokens)"
            since = f" from step {_step(steps[0])}" if steps else ""
            title = f"{late:.0%} of completions are truncated{length} in the second half"
            if since:
                title = f"{late:.0%} of completions are truncated{length}{since} on"
            if late >= 0.99:
                title = f"every completion is truncated{length}{since}"
            advice = (
                "raise it (or penalise length): truncated answers never end, so their reward "
                "judges text the model did not finish and the gradient teaches it to ramble"
            )
            if severity == "info":
                advice = "raise it if the truncated answers matter: a few percent are cut off"
            out.append(
                Finding(
                    "length_truncation",
                    severity,
                    title.capitalize(),
                    evidence,
                    columns,
                    steps,
                    setting,
                    advice,
                )
            )
    elif mean_len is not None:
        y = mean_len.y
        pin_cap = cap
        if pin_cap is None:
            top = float(np.max(y))
            if np.sum(y == top) >= 3:
                pin_cap = top
                cap_source = "largest logged mean length, repeated"
        if pin_cap is not None:
            pinned = y >= pin_cap - 0.5
            share = float(np.mean(pinned))
            severity2: Severity | None = (
                "critical" if share >= 0.5 else "warning" if share >= 0.1 else None
            )
            if severity2 is not None:
                first = float(mean_len.t[np.argmax(pinned)])
                out.append(
                    Finding(
                        "length_truncation",
                        severity2,
                        f"Mean completion length sits exactly at the cap {_fmt(pin_cap)} on "
                        f"{share:.0%} of steps (whole batches truncated)",
                        {
                            "steps_at_cap": share,
                            "cap": pin_cap,
                            "cap_source": cap_source,
                            "first_step_at_cap": first,
                            "column": mean_len.label,
                        },
                        [mean_len.name],
                        [first],
                        setting,
                        "raise it: a mean length equal to the cap means every completion of "
                        "those batches was cut off before it finished",
                    )
                )
    else:
        out.append(_na("length_truncation", "completions/clipped_ratio or completion_length"))

    if mean_len is not None and mean_len.y.size >= 10:
        y = mean_len.y
        k0, k1 = _window(y.size, 0.1), _window(y.size, 0.2)
        early, late_len = float(np.median(y[:k0])), float(np.median(y[-k1:]))
        tt = trend_test(mean_len.t, y)
        if early > 0 and tt.present:
            ratio = late_len / early
            evidence = {
                "early_median": early,
                "late_median": late_len,
                "ratio": ratio,
                "trend_p_value": tt.p_value,
                "column": mean_len.label,
            }
            span = [float(mean_len.t[0]), float(mean_len.t[-1])]
            if ratio >= 2.0 and tt.direction == "rising":
                out.append(
                    Finding(
                        "length_growth",
                        "info",
                        f"Completions grew x{ratio:.1f} ({_fmt(early)} -> {_fmt(late_len)} tokens)",
                        evidence,
                        [mean_len.name],
                        span,
                        setting,
                        "longer reasoning is normal in GRPO, but keep the cap above the "
                        "longest answers or they start to be truncated",
                    )
                )
            elif ratio <= 0.5 and tt.direction == "falling":
                severe = ratio <= 0.25
                out.append(
                    Finding(
                        "length_shrink",
                        "warning" if severe else "info",
                        f"Completions shrank to {ratio:.0%} of their early length "
                        f"({_fmt(early)} -> {_fmt(late_len)} tokens)",
                        evidence,
                        [mean_len.name],
                        span,
                        setting_name("reward_funcs", fw),
                        "check the answers: a reward that pays short outputs teaches the "
                        "model to stop reasoning (length hacking)",
                    )
                )
    return out


# ---------------------------------------------------------------------------------------------
# KL to the reference and the PPO clip fraction

_KL = ("kl", "reference_kl", "actor/kl_loss", "objective/kl")


def detect_kl(run: Run) -> list[Finding]:
    """KL to the reference policy: blow-up, acceleration, steady drift, isolated spikes.

    The level is the median of the first three quarters; the end is the median of the last
    5% (at least 3 points). Blow-up (critical): the end is > 10x the level and > 1 nat.
    Acceleration (warning): > 4x and > 0.3 with the last half still rising. Drift (info):
    a significant rise to > 3x. Spikes (info): points > 20x the rolling median that the
    run recovers from.
    """
    col = _col(run, *_KL, min_points=10)
    if col is None:
        return [_na("kl", "kl (KL to the reference policy)")]
    fw = framework(run)
    t, y = col.t, col.y
    n = y.size
    body = y[: max(3, (3 * n) // 4)]
    level = float(np.median(body))
    k_end = _window(n, 0.05)
    end = float(np.median(y[-k_end:]))
    floor = max(abs(level), 1e-4)
    ratio = end / floor
    setting = setting_name("kl_coef", fw)
    evidence: dict[str, Any] = {
        "level_first_three_quarters": level,
        "level_end": end,
        "ratio": ratio,
        "max": float(np.max(y)),
        "column": col.label,
    }
    half = trend_test(t[n // 2 :], y[n // 2 :])
    smooth = _rolling_median(y, 5)
    if ratio > 10.0 and end > 1.0:
        start = _sustained_from(smooth > 10.0 * floor)
        onset = float(t[start]) if start is not None else float(t[-k_end])
        evidence["blow_up_from_step"] = onset
        return [
            Finding(
                "kl_blowup",
                "critical",
                f"KL to the reference blew up: {_fmt(level)} -> {_fmt(end)} from step "
                f"{_step(onset)}",
                evidence,
                [col.name],
                [onset],
                setting,
                "raise it or lower the learning rate and resume from a checkpoint before the "
                "blow-up: the policy has left the region where its reward is trustworthy",
            )
        ]
    if ratio > 4.0 and end > 0.3 and half.direction == "rising":
        return [
            Finding(
                "kl_acceleration",
                "warning",
                f"KL to the reference is accelerating: {_fmt(level)} -> {_fmt(end)}",
                evidence,
                [col.name],
                [float(t[n // 2])],
                setting,
                "raise it or lower the learning rate before the drift turns into a blow-up",
            )
        ]
    out: list[Finding] = []
    whole = trend_test(t, y)
    early = float(np.median(y[: _window(n, 0.1)]))
    if whole.direction == "rising" and early > 0 and end > 3.0 * early:
        evidence["early_level"] = early
        out.append(
            Finding(
                "kl_drift",
                "info",
                f"KL to the reference grows steadily ({_fmt(early)} -> {_fmt(end)})",
                evidence,
                [col.name],
                [],
                setting,
                "expected while the policy learns; raise it only if the reward stops "
                "tracking quality",
            )
        )
    resid_scale = max(float(np.median(np.abs(y - smooth))) * 1.4826, 1e-12)
    spikes = np.flatnonzero((y > 20.0 * np.maximum(smooth, 1e-6)) & (y - smooth > 10 * resid_scale))
    if spikes.size:
        evidence["spike_steps"] = [float(t[i]) for i in spikes[:10]]
        evidence["spike_values"] = [float(y[i]) for i in spikes[:10]]
        out.append(
            Finding(
                "kl_spike",
                "info",
                f"{spikes.size} {'isolated ' if spikes.size <= 3 else ''}KL spike(s), largest "
                f"{_fmt(float(np.max(y[spikes])))} at step "
                f"{_step(float(t[spikes[np.argmax(y[spikes])]]))}; the level recovered after",
                evidence,
                [col.name],
                [float(t[i]) for i in spikes[:10]],
                setting,
                "one-off spikes usually come from a single odd batch; act only if they recur",
            )
        )
    return out


def detect_clip_fraction(run: Run) -> list[Finding]:
    """PPO clip fraction (TRL ``clip_ratio/region_mean``, verl ``actor/pg_clipfrac``): mean of
    the second half >= 0.3 is a warning (updates too large for the trust region), >= 0.1 info."""
    col = _col(run, "clip_ratio", "actor/pg_clipfrac", "clip_fraction", min_points=5)
    if col is None:
        return [_na("clip_fraction", "clip_ratio (PPO clip fraction)")]
    late = float(np.mean(col.y[col.y.size // 2 :]))
    if late < 0.1:
        return []
    fw = framework(run)
    severity: Severity = "warning" if late >= 0.3 else "info"
    return [
        Finding(
            "clip_fraction",
            severity,
            f"{late:.0%} of tokens hit the PPO clip (second half)",
            {"clip_fraction_second_half": late, "column": col.label},
            [col.name],
            [],
            setting_name("lr", fw),
            "lower it (or the number of updates per batch of rollouts): the updates keep "
            "leaving the trust region, so most of the gradient is clipped away",
        )
    ]


# ---------------------------------------------------------------------------------------------
# collapse


def _cosignals(run: Run, onset: float, t_end: float) -> dict[str, str]:
    """How the other columns moved between the window before the onset and the end."""
    out: dict[str, str] = {}
    checks = (
        ("kl", _KL),
        ("entropy", ("entropy", "token_entropy", "actor/entropy_loss")),
        ("completion length", _MEAN_LEN),
        ("zero-spread groups", ("frac_reward_zero_std",)),
        ("grad norm", ("grad_norm", "actor/grad_norm")),
        ("reward std", ("reward_std",)),
    )
    for label, names in checks:
        col = _col(run, *names, min_points=6)
        if col is None:
            continue
        before = col.y[col.t < onset]
        after = col.y[(col.t >= onset) & (col.t <= t_end)]
        if before.size < 3 or after.size < 3:
            continue
        b, a = float(np.median(before[-max(3, before.size // 3) :])), float(np.median(after))
        if label == "grad norm":
            peak = float(np.max(col.y[col.t <= onset + 0.1 * (t_end - onset)]))
            if peak > 10 * max(float(np.median(before)), 1e-12):
                out[label] = f"spiked to {_fmt(peak)} before the collapse"
                continue
        if b == 0 and a == 0:
            continue
        if b <= 0:
            out[label] = f"{_fmt(b)} -> {_fmt(a)}"
        elif a / b >= 1.5 or a / b <= 1 / 1.5:
            out[label] = f"{_fmt(b)} -> {_fmt(a)} (x{a / b:.2g})"
    return out


@dataclass
class _Drop:
    """One candidate collapse: the earlier level, the end level over w points, the drop."""

    w: int
    i_peak: int
    peak: float
    gain: float
    end_level: float
    drop: float
    frac: float
    z: float
    start: int | None
    all_below: bool


def detect_collapse(run: Run, column: str = "reward") -> list[Finding]:
    """The reward falls after a rise or a plateau and stays down (docs/diagnose.md, "Collapse").

    The best earlier level is the highest rolling median of max(3, n/8) points before the
    final window; the end level is the median of the final w points, w = n/8, else n/16 or
    n/32 (3-5 points at least) when every point of that short window is below the midpoint
    and z >= 10 (a collapse in the last steps of a long run). A collapse needs all of: the
    drop is at least half of the earlier gain (or of the level itself when the run started
    there), it is > 5 standard errors of the two window means (inflated for AR(1) noise), and
    the rolling median stays below the midpoint from the onset to the end. A dead end (the
    reward stuck at exactly one value for the last quarter, >= 3 points, below its earlier
    median) is a collapse too. Critical when it lost >= 80%
    and a co-signal or a dead reward confirms it, at a dead end, or when the KL after the
    onset exceeds 10x its median before; warning otherwise. A
    significant fall without those is "reward declining" (warning).
    """
    t, y = run.series(column)
    n = y.size
    if n < 8:
        return [_na("collapse", f"at least 8 finite {column} values")]
    fw = framework(run)
    phi = ar1_from_differences(y)
    inflate = math.sqrt((1 + phi) / (1 - phi))
    w_peak = max(3, n // 8)
    smooth_peak = _rolling_median(y, w_peak)
    # the end window: n/8 points, then shorter ones for a collapse in the last few steps (those
    # must have every point below the midpoint, so a short noisy dip cannot pass)
    ends = sorted({max(3, n // 8), max(4, n // 16), max(5, n // 32)}, reverse=True)
    ends = [e for e in ends if e <= n // 2] or [max(3, n // 8)]
    chosen: _Drop | None = None
    first: _Drop | None = None
    for w in ends:
        head = smooth_peak[: n - w]
        i_peak = int(np.argmax(head))
        peak = float(head[i_peak])
        gain = peak - float(np.min(smooth_peak[: i_peak + 1]))
        end_level = float(np.median(y[-w:]))
        drop = peak - end_level
        lo = max(0, i_peak - w_peak // 2)
        peak_pts, end_pts = y[lo : lo + w_peak], y[-w:]
        se = inflate * math.hypot(
            float(np.std(peak_pts)) / math.sqrt(peak_pts.size),
            float(np.std(end_pts)) / math.sqrt(w),
        )
        se = max(se, 1e-12 * max(1.0, abs(peak)))
        scale = gain if gain > 0.25 * abs(peak) else max(gain, abs(peak))
        mid = peak - 0.5 * drop
        start = _sustained_from(_rolling_median(y, w)[i_peak:] < mid) if drop > 0 else None
        stats = _Drop(
            w=w,
            i_peak=i_peak,
            peak=peak,
            gain=gain,
            end_level=end_level,
            drop=drop,
            frac=drop / scale if scale > 0 else 0.0,
            z=drop / se,
            start=start,
            all_below=bool(np.all(end_pts < mid)),
        )
        first = first or stats
        short_ok = w == ends[0] or (stats.all_below and stats.z >= 10.0)
        if drop > 0 and start is not None and stats.frac >= 0.5 and stats.z >= 5.0 and short_ok:
            chosen = stats
            break
    st = chosen or first
    assert st is not None
    w, i_peak, peak, gain = st.w, st.i_peak, st.peak, st.gain
    end_level, drop, frac, z, start = st.end_level, st.drop, st.frac, st.z, st.start
    evidence: dict[str, Any] = {
        "peak_level": peak,
        "peak_step": float(t[i_peak]),
        "end_level": end_level,
        "earlier_gain": gain,
        "drop": drop,
        "drop_fraction": frac,
        "z": z,
        "window_points": w,
        "column": column,
    }
    # a dead end: the reward stuck at exactly one value for the last quarter of the run (at
    # least 3 points), below what it typically was before
    tail = int(np.argmax(y[::-1] != y[-1])) if np.any(y != y[-1]) else n
    dead_end = (
        tail >= max(3, n // 4) and tail < n and float(np.median(y[: n - tail])) > float(y[-1])
    )
    evidence["constant_tail_points"] = tail
    if start is not None:
        start = max(start, 1)  # the collapse begins after the peak, not at it
    if dead_end and start is None:  # the onset is where the reward died
        i_peak, start = 0, n - tail
    if drop > 0 and start is not None and (dead_end or chosen is not None):
        onset_i = i_peak + start
        onset = float(t[onset_i])
        evidence["onset_step"] = onset
        co = _cosignals(run, onset, float(t[-1]))
        evidence["co_signals"] = co
        dead = dead_end or float(np.ptp(y[-w:])) == 0.0
        rstd = _col(run, "reward_std", min_points=3)
        if rstd is not None:
            late_std = rstd.y[rstd.t >= onset]
            dead = dead or (late_std.size >= 3 and float(np.median(late_std)) == 0.0)
        evidence["reward_dead_at_end"] = dead
        kl = _col(run, *_KL, min_points=6)
        kl_blew = False
        if kl is not None:
            before_kl, after_kl = kl.y[kl.t < onset], kl.y[kl.t >= onset]
            if before_kl.size >= 3 and after_kl.size >= 3:
                kl_blew = float(np.max(after_kl)) > 10 * max(float(np.median(before_kl)), 1e-6)
        evidence["kl_blew_up"] = kl_blew
        critical = dead_end or kl_blew or (frac >= 0.8 and (bool(co) or dead))
        extra = f" (also moved: {', '.join(co)})" if co else ""
        return [
            Finding(
                "collapse",
                "critical" if critical else "warning",
                f"Reward collapsed from {_fmt(peak)} to {_fmt(end_level)} starting at step "
                f"{_step(onset)}{extra}",
                evidence,
                [column] + [c for c in _cosignal_columns(run)],
                [onset],
                setting_name("lr", fw),
                f"resume from a checkpoint before step {_step(onset)} with a lower learning "
                "rate (and gradient clipping and the PPO clip range checked): the policy left "
                "the region it was improving in and did not come back",
            )
        ]
    tt = trend_test(t, y)
    noise = noise_from_differences(y)
    if tt.direction == "falling" and abs(tt.change) > 2 * noise and tt.p_value < 0.01:
        return [
            Finding(
                "reward_declining",
                "warning",
                f"Reward is falling over the run ({_fmt(float(y[:w].mean()))} -> "
                f"{_fmt(end_level)}, p = {tt.p_value:.2g})",
                evidence | {"trend_p_value": tt.p_value, "change": tt.change},
                [column],
                [],
                setting_name("lr", fw),
                "lower it and check the reward functions: the policy is getting worse at what "
                "the reward measures",
            )
        ]
    return []


def _cosignal_columns(run: Run) -> list[str]:
    out = []
    for names in (_KL, ("entropy", "token_entropy", "actor/entropy_loss"), _MEAN_LEN):
        col = _col(run, *names, min_points=6)
        if col is not None:
            out.append(col.name)
    return out


# ---------------------------------------------------------------------------------------------
# gradient norm


def detect_grad_norm(run: Run) -> list[Finding]:
    """Non-finite gradient norms and spikes above a robust running level.

    Non-finite: rows where the loss (or, without one, the reward) was logged but the gradient
    norm is NaN/inf. One isolated such row is a warning; two in a row, three or more, or a
    non-finite last value are critical. Spikes: a point above both 5x the rolling median of
    21 points and that median plus 10 rolling MADs (so a norm alternating between two levels,
    whose MAD is half the gap, raises nothing); one or two spikes are info, three or more
    (and >= 1% of steps) a warning.
    """
    name = next((n for n in ("grad_norm", "actor/grad_norm") if n in run.frame.columns), None)
    if name is None:
        return [_na("grad_norm", "grad_norm")]
    fw = framework(run)
    setting = setting_name("grad_clip", fw)
    raw = run.frame[name].to_numpy(dtype=float)
    ref_name = "loss" if "loss" in run.frame.columns else "reward"
    ref = np.isfinite(run.frame[ref_name].to_numpy(dtype=float))
    steps = run.frame.index.to_numpy(dtype=float)
    rows = ref | np.isfinite(raw)
    g, s = raw[rows], steps[rows]
    bad = ~np.isfinite(g)
    out: list[Finding] = []
    if bad.any() and np.isfinite(g).any():
        idx = np.flatnonzero(bad)
        longest = 1
        current = 1
        for a, b in zip(idx[:-1], idx[1:], strict=True):
            current = current + 1 if b == a + 1 else 1
            longest = max(longest, current)
        last_bad = bool(bad[-1])
        critical = longest >= 2 or idx.size >= 3 or last_bad
        evidence = {
            "non_finite_count": int(idx.size),
            "logged_rows": int(g.size),
            "longest_run": longest,
            "last_value_non_finite": last_bad,
            "steps": [float(s[i]) for i in idx[:20]],
            "column": run.original_names.get(name, name),
        }
        if critical:
            title = (
                f"Gradient norm is NaN/inf on {idx.size} of {g.size} logged steps "
                f"(longest run {longest}, first at step {_step(float(s[idx[0]]))})"
            )
            advice = (
                "lower the learning rate, check for bf16/fp16 overflow and keep clipping on: "
                "updates with a non-finite gradient are skipped or corrupt the weights"
            )
        else:
            title = (
                f"One isolated NaN/inf gradient norm at step {_step(float(s[idx[0]]))}; "
                "finite again after"
            )
            advice = (
                "keep an eye on it: one bad batch was skipped, but repeats point to overflow "
                "(lower the learning rate or use bf16)"
            )
        out.append(
            Finding(
                "grad_nonfinite",
                "critical" if critical else "warning",
                title,
                evidence,
                [name],
                [float(s[i]) for i in idx[:20]],
                setting,
                advice,
            )
        )
    finite = np.isfinite(g)
    y, ts = g[finite], s[finite]
    if y.size >= 10:
        level = np.asarray(
            pd.Series(y).rolling(21, center=True, min_periods=5).median().to_numpy(), float
        )
        mad = np.asarray(
            pd.Series(np.abs(y - level)).rolling(21, center=True, min_periods=5).median(),
            float,
        )
        upper = np.asarray(
            pd.Series(y).rolling(21, center=True, min_periods=5).quantile(0.9).to_numpy(), float
        )
        spike = (y > 8.0 * np.maximum(upper, 1e-12)) & (y > level + 10.0 * 1.4826 * mad)
        idx = np.flatnonzero(spike)
        if idx.size:
            # adjacent spike points are one event
            events = [int(idx[0])] + [
                int(b) for a, b in zip(idx[:-1], idx[1:], strict=True) if b != a + 1
            ]
            k = len(events)
            zs = _zero_spread(run)
            sparse = zs is not None and zs[0] >= 0.5  # most steps carry no gradient at all
            many = k >= 3 and k >= 0.01 * y.size and not sparse
            big = int(idx[np.argmax(y[idx])])
            out.append(
                Finding(
                    "grad_spikes",
                    "warning" if many else "info",
                    f"{k} gradient-norm spike(s) above 8x the running upper level; largest "
                    f"{_fmt(float(y[big]))} at step {_step(float(ts[big]))} "
                    f"(level {_fmt(float(level[big]))})",
                    {
                        "spike_count": k,
                        "spike_steps": [float(ts[i]) for i in events[:20]],
                        "largest": float(y[big]),
                        "running_level_there": float(level[big]),
                        "column": run.original_names.get(name, name),
                    },
                    [name],
                    [float(ts[i]) for i in events[:20]],
                    setting,
                    "lower it (clip harder) or lower the learning rate: repeated spikes are "
                    "large, noisy updates"
                    if many
                    else "most steps have no advantage, so their norm is near 0 and any step "
                    "with a signal stands out; no action"
                    if sparse
                    else "isolated spikes that the run recovered from need no action",
                )
            )
    return out


# ---------------------------------------------------------------------------------------------
# entropy

_ENTROPY = ("entropy", "token_entropy", "actor/entropy_loss", "policy_entropy")


def detect_entropy(run: Run) -> list[Finding]:
    """Entropy collapse (and explosion), with the step it reaches its floor at the current rate.

    Early and late levels are medians of the first tenth and last fifth. Collapse: late <= 0.3
    early on 90% of the last fifth's points and (<= 0.1 early or < 0.05 nat): a warning;
    falling significantly to <= 0.5 early: info. The floor is a tenth of the early level: the
    step where the rolling median first reached it, or, while still above it, where a
    log-linear fit of the last third puts it.
    Explosion: late >= 3x early is a warning (the policy emits noise), >= 1.5x info. A level
    below 0.05 nat from the start is info (an SFT-collapsed policy explores little).
    """
    col = _col(run, *_ENTROPY, min_points=10)
    if col is None:
        return [_na("entropy", "entropy")]
    fw = framework(run)
    t, y = col.t, col.y
    n = y.size
    early = float(np.median(y[: _window(n, 0.1)]))
    late = float(np.median(y[-_window(n, 0.2) :]))
    tt = trend_test(t, y)
    evidence: dict[str, Any] = {
        "early_level": early,
        "late_level": late,
        "ratio": late / early if early > 0 else float("nan"),
        "trend_p_value": tt.p_value,
        "column": col.label,
    }
    if early <= 0:
        return []
    ratio = late / early
    floor = 0.1 * early
    evidence["floor"] = floor
    temp = setting_name("temperature", fw)
    late_pts = y[-_window(n, 0.2) :]
    clear = ratio <= 0.3 and float(np.mean(late_pts < 0.5 * early)) >= 0.9
    if clear or (tt.direction == "falling" and ratio <= 0.5):
        smooth = _rolling_median(y, 5)
        below = np.flatnonzero(smooth <= floor)
        steps: list[float] = []
        if below.size:
            reach = float(t[below[0]])
            evidence["floor_reached_at_step"] = reach
            when = f"; reached a tenth of its start at step {_step(reach)}"
            steps.append(reach)
        else:
            k = _window(n, 1 / 3, 8)
            tail_t, tail_y = t[-k:], np.log(np.maximum(y[-k:], 1e-12))
            slope = float(np.polyfit(tail_t, tail_y, 1)[0]) if k >= 3 else 0.0
            if slope < 0 and late > floor:
                reach = float(t[-1] + math.log(floor / late) / slope)
                evidence["floor_projected_step"] = reach
                when = (
                    f"; at the current rate it reaches a tenth of its start by step {_step(reach)}"
                )
                steps.append(reach)
            else:
                when = ""
        severe = clear and (ratio <= 0.1 or late < 0.05)
        return [
            Finding(
                "entropy_collapse",
                "warning" if severe else "info",
                f"Entropy fell from {_fmt(early)} to {_fmt(late)} ({ratio:.0%} of its start)"
                + when,
                evidence,
                [col.name],
                steps,
                setting_name("clip_high", fw),
                "raise it (clip-higher, e.g. 0.28) or the sampling temperature: a policy that "
                "stops exploring stops finding better answers, so the reward plateaus early"
                if severe
                else "watch it: entropy falling is normal while learning, a collapse is not",
            )
        ]
    if tt.direction == "rising" and ratio >= 1.5:
        severe = ratio >= 3.0
        return [
            Finding(
                "entropy_explosion",
                "warning" if severe else "info",
                f"Entropy rose from {_fmt(early)} to {_fmt(late)} (x{ratio:.2g})",
                evidence,
                [col.name],
                [],
                setting_name("lr", fw),
                "lower it: a policy whose entropy keeps rising is drifting towards random text"
                if severe
                else "rising entropy is unusual in GRPO; check the samples for degenerate text",
            )
        ]
    if early < 0.05 and late < 0.05:
        return [
            Finding(
                "entropy_low",
                "info",
                f"Entropy is very low from the start ({_fmt(early)} -> {_fmt(late)} nats)",
                evidence,
                [col.name],
                [],
                temp,
                "raise it: a policy this sure of itself (e.g. after SFT) rarely samples a "
                "better answer, so GRPO has little to reinforce",
            )
        ]
    return []


# ---------------------------------------------------------------------------------------------
# reward functions


def _components(run: Run) -> dict[str, _Col]:
    out: dict[str, _Col] = {}
    for c in run.frame.columns:
        name = str(c)
        if not name.startswith("rewards/") or name.endswith("/std"):
            continue
        label = name.removeprefix("rewards/").removesuffix("/mean")
        col = _col(run, name, min_points=5)
        if col is not None:
            out[label] = col
    return out


CONSTANT_SHARE = 0.7  # a reward function at one value on this share of steps is "constant"


def detect_reward_functions(run: Run) -> list[Finding]:
    """Per-function rewards (TRL ``rewards/<name>/mean``): constant components (one value on
    >= 70% of steps and, when logged, zero within-group std on >= 70%: warning, they add
    nothing to the advantage there), one component carrying >= 90% of the variance of the
    components (info), a component falling significantly while the total rises (warning)."""
    comps = _components(run)
    if not comps:
        return [_na("reward_functions", "per-function columns rewards/<name>/mean")]
    fw = framework(run)
    setting = setting_name("reward_funcs", fw)
    out: list[Finding] = []
    constant: dict[str, _Col] = {}
    described: dict[str, str] = {}
    for k, c in comps.items():
        values, counts = np.unique(c.y, return_counts=True)
        mode, share = float(values[np.argmax(counts)]), float(np.max(counts)) / c.y.size
        std = _col(run, f"rewards/{k}/std", min_points=5)
        flat_groups = std is None or float(np.mean(std.y == 0.0)) >= CONSTANT_SHARE
        if share >= CONSTANT_SHARE and flat_groups:
            constant[k] = c
            described[k] = (
                f"always {_fmt(mode)}" if share == 1.0 else f"{_fmt(mode)} on {share:.0%} of steps"
            )
    if constant and len(comps) >= 2:
        names = ", ".join(f"{k} ({d})" for k, d in described.items())
        out.append(
            Finding(
                "reward_constant",
                "warning",
                f"{len(constant)} of {len(comps)} reward functions (almost) never change: {names}",
                {"constant_functions": described, "n_functions": len(comps)},
                [c.name for c in constant.values()],
                [],
                setting,
                "fix or drop them: a reward that is the same for every completion adds "
                "nothing to the advantage, only to the logged total",
            )
        )
    moving = {k: c for k, c in comps.items() if k not in constant and "total" not in k.lower()}
    if len(moving) >= 2:
        var = {k: float(np.var(c.y)) for k, c in moving.items()}
        total = sum(var.values())
        if total > 0:
            top = max(var, key=lambda k: var[k])
            share = var[top] / total
            if share >= 0.9:
                out.append(
                    Finding(
                        "reward_dominant",
                        "info",
                        f"{top} carries {share:.0%} of the variance of the reward functions",
                        {"function": top, "variance_share": share},
                        [moving[top].name],
                        [],
                        setting,
                        "the others barely steer the policy; reweight them if they matter",
                    )
                )
    t, r = run.series("reward")
    total_trend = trend_test(t, r)
    if total_trend.direction == "rising" and total_trend.p_value < 0.01:
        for k, c in moving.items():
            tt = trend_test(c.t, c.y)
            if tt.direction == "falling" and tt.p_value < 0.01:
                out.append(
                    Finding(
                        "reward_against_total",
                        "warning",
                        f"{k} falls ({_fmt(tt.change)}) while the total reward rises",
                        {"function": k, "change": tt.change, "p_value": tt.p_value},
                        [c.name, "reward"],
                        [],
                        setting,
                        "the policy trades this goal away for the others; raise its weight if "
                        "it matters",
                    )
                )
    return out


# ---------------------------------------------------------------------------------------------
# advantage degeneracy and no learning


def _group_size(run: Run) -> int | None:
    for key in ("group_size", "num_generations"):
        value = run.metadata.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 1:
            return int(value)
    col = _col(run, "group_size")
    if col is not None and col.y.size and np.ptp(col.y) == 0 and col.y[0] >= 1:
        return int(col.y[0])
    return None


def _zero_spread(run: Run) -> tuple[float, str, str] | None:
    """(fraction of degenerate groups in the second half, column, how) from the log."""
    col = _col(run, "frac_reward_zero_std", min_points=3)
    if col is not None:
        return float(np.clip(np.mean(col.y[col.y.size // 2 :]), 0, 1)), col.name, "measured"
    col = _col(run, "reward_std", min_points=3)
    if col is not None:
        late = col.y[col.y.size // 2 :]
        return float(np.mean(late <= 1e-9)), col.name, "steps with reward_std = 0"
    return None


def detect_degeneracy(run: Run) -> list[Finding]:
    """Groups whose completions all got the same reward carry no advantage (no gradient).

    Measured from ``frac_reward_zero_std`` (mean of the second half), else the share of steps
    whose ``reward_std`` is exactly 0: >= 0.9 critical, >= 0.5 warning, >= 0.25 info. Only when
    neither column exists, rewards lie in [0, 1] and the group size G is known, the binomial
    estimate p^G + (1 - p)^G (exact only for 0/1 rewards) is reported, labelled as an
    estimate, at info level. A group size of 1 is critical: no group has a spread.
    """
    fw = framework(run)
    setting = setting_name("group", fw)
    g = _group_size(run)
    if g == 1:
        return [
            Finding(
                "group_size_one",
                "critical",
                "Group size is 1: every advantage is zero, GRPO has no signal",
                {"group_size": 1},
                ["reward"],
                [],
                setting,
                "set it to 4-16: GRPO's advantage is the reward minus its group's mean",
            )
        ]
    zs = _zero_spread(run)
    if zs is not None:
        value, name, how = zs
        severity: Severity | None = (
            "critical"
            if value >= 0.9
            else "warning"
            if value >= 0.5
            else "info"
            if value >= 0.25
            else None
        )
        if severity is None:
            return []
        t, r = run.series("reward")
        late_r = float(np.median(r[r.size // 2 :])) if r.size else float("nan")
        title = f"{value:.0%} of groups have identical rewards (no advantage), second half"
        if how.startswith("steps"):
            title = f"reward_std is exactly 0 on {value:.0%} of steps in the second half"
        if severity == "critical":
            title = "No learning signal: " + title[0].lower() + title[1:]
        advice = (
            "raise it, filter prompts the model always or never solves (dynamic sampling), or "
            "use a graded reward: only groups with different rewards produce a gradient"
        )
        return [
            Finding(
                "advantage_degeneracy",
                severity,
                title,
                {
                    "zero_spread_fraction": value,
                    "how": how,
                    "late_reward_median": late_r,
                    "column": run.original_names.get(name, name),
                },
                [name],
                [],
                setting,
                advice,
            )
        ]
    t, r = run.series("reward")
    if g is None or r.size < 3:
        return [_na("advantage_degeneracy", "frac_reward_zero_std or reward_std")]
    if np.min(r) < 0 or np.max(r) > 1:
        return [_na("advantage_degeneracy", "frac_reward_zero_std or reward_std")]
    p = r[r.size // 2 :]
    value = float(np.mean(p**g + (1 - p) ** g))
    return (
        [
            Finding(
                "advantage_degeneracy_estimate",
                "info",
                f"Estimate: about {value:.0%} of groups would have identical rewards at G = {g} "
                "(binomial, assumes 0/1 rewards)",
                {"estimated_zero_spread_fraction": value, "group_size": g, "estimate": True},
                ["reward"],
                [],
                setting,
                "log frac_reward_zero_std to measure it; raise the group size if it is high",
            )
        ]
        if value >= 0.25
        else []
    )


def rose_then_flat(steps: FloatArray, reward: FloatArray) -> bool:
    """A rise the rank test can miss: the run starts well below where it ends, then stays flat.

    With w = max(3, n/8), the end level is the median of the last w points and the start the
    lower of the first point and the median of the first w (the first logged point is often
    the model before training, e.g. an eval at step 0). The rise counts when it exceeds 4
    point-to-point noise sds (MAD of first differences, which one jump does not move) and 4
    standard errors of the end level: a fast rise followed by a long plateau.
    """
    y = np.asarray(reward, dtype=float)
    y = y[np.isfinite(y)]
    if y.size < 8:
        return False
    w = max(3, y.size // 8)
    end = float(np.median(y[-w:]))
    start = min(float(y[0]), float(np.median(y[:w])))
    rise = end - start
    noise = noise_from_differences(y)
    se_end = float(np.std(y[-w:])) / math.sqrt(w)
    return rise > 4.0 * max(noise, 1e-12) and rise > 4.0 * se_end


#: Logged points before a flat reward counts as "not learning" at warning level (a live monitor
#: replaying the shared runs raised it at 29-49 points on two runs that then learned).
MIN_POINTS_NO_LEARNING = 50


def detect_no_learning(run: Run, column: str = "reward") -> list[Finding]:
    """No learning: "no signal" (flat and zero spread: critical, unless degeneracy already says
    so), "not learning" (flat although groups disagree: warning) and "learning slowly" (a
    steady rise still going at the end whose total change is under 15% of the reward's range,
    1 for rewards in [0, 1]: info, the learning rate may be too small)."""
    t, y = run.series(column)
    if y.size < 8:
        return [_na("no_learning", f"at least 8 finite {column} values")]
    fw = framework(run)
    pr = progress(t, y)
    lr = run.metadata.get("learning_rate")
    lr_text = f" (now {lr:g})" if isinstance(lr, int | float) else ""
    zs = _zero_spread(run)
    constant = float(np.ptp(y)) == 0.0
    w = max(3, y.size // 8)
    gain = float(np.median(y[-w:]) - np.median(y[:w]))
    learned = rose_then_flat(t, y)
    if pr.state == "flat" and not learned:
        if constant or (zs is not None and zs[0] >= 0.9):
            if zs is not None and zs[0] >= 0.9:
                return []  # detect_degeneracy reports it, critical
            return [
                Finding(
                    "no_signal",
                    "critical",
                    f"No learning signal: the reward is constant at {_fmt(float(y[0]))}",
                    {"reward": float(y[0])},
                    [column],
                    [],
                    setting_name("reward_funcs", fw),
                    "check the verifier: a reward that never varies gives GRPO nothing to learn",
                )
            ]
        overall = pr.overall
        # below MIN_POINTS_NO_LEARNING logged points a flat start (warm-up, a slow first rise
        # inside the noise) is common in runs that go on to learn: information, not a warning
        early = y.size < MIN_POINTS_NO_LEARNING
        return [
            Finding(
                "no_learning",
                "info" if early else "warning",
                ("No trend yet" if early else "Not learning") + ": the reward shows no trend"
                + (" although the groups disagree" if zs is not None else ""),
                {
                    "trend_p_value": None if overall is None else overall.p_value,
                    "change": None if overall is None else overall.change,
                    "noise_sd": None if overall is None else overall.noise_sd,
                },
                [column],
                [],
                setting_name("lr", fw),
                f"check it{lr_text} and the reward: without movement the updates are too small "
                "or the reward does not reward what the model can change",
            )
        ]
    overall = pr.overall
    if overall is not None and overall.direction == "rising" and pr.state in ("rising", "slowing"):
        span = 1.0 if (np.min(y) >= 0 and np.max(y) <= 1) else float(np.ptp(y))
        if span > 0 and overall.change < 0.15 * span and gain < 0.15 * span:
            return [
                Finding(
                    "slow_learning",
                    "info",
                    f"Learning slowly: a steady creep of {_fmt(overall.change)} over the run",
                    {"change": overall.change, "range": span, "state": pr.state},
                    [column],
                    [],
                    setting_name("lr", fw),
                    f"try a larger one{lr_text}: the reward still rises at the end, but slowly",
                )
            ]
    return []


DetectorFn = Callable[[Run], list[Finding]]
#: Every detector, in report order.
DETECTORS: tuple[DetectorFn, ...] = (
    detect_collapse,
    detect_no_learning,
    detect_degeneracy,
    detect_length,
    detect_kl,
    detect_clip_fraction,
    detect_grad_norm,
    detect_entropy,
    detect_reward_functions,
)


def detect_all(run: Run, detectors: Sequence[DetectorFn] = DETECTORS) -> list[Finding]:
    """Every detector's findings, most severe first (stable within a severity)."""
    found: list[Finding] = []
    for detector in detectors:
        found.extend(detector(run))
    return sorted(found, key=lambda f: (not f.assessable, -f.rank))
