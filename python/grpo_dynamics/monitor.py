"""Watch a run while it trains: findings, trend and forecast, updated step by step.

:class:`Monitor` is framework-agnostic: feed it one logged step at a time
(``monitor.update(step, metrics)``, metrics as any trainer logs them: TRL's ``reward``, verl's
``critic/score/mean``, ...) and it answers what changed. It never calls anything but the public
entry points of the layers below (``io.as_run``, ``trend.progress``, ``forecast.forecast``,
``diagnose.diagnose``), so ``monitor.report()`` *is* ``diagnose`` of the accumulated log
(docs/monitor.md).

Cost: rows go into growing NumPy buffers (amortised O(1) per call); the diagnosis, the trend
verdict and the forecast are recomputed only when the log has grown by ``refit_every`` rows
and by the fraction ``refit_growth`` of its length since the last refit, so the total refit
work over a run of n rows is a geometric series, O(cost(n) / refit_growth).

Calibration (docs/monitor.md, "Early warnings"):
- a finding at warning/critical severity is announced only when ``confirm`` consecutive
  refits (on logs that differ by at least one refit interval) both show it, so one noisy
  logged point at the end of the log cannot raise an alarm; it clears the same way;
- a forecast (plateau with band, steps to 90 % of the gain) is stated only when the trend
  verdict (``trend.progress``) says the run moved and the forecast identifies its plateau;
- "plateau reached" is said only when ``progress`` has positive evidence of a plateau.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from . import _validation as _v
from ._diagnose import Diagnosis, diagnose
from ._forecast import Forecast, forecast
from .io import Run, as_run
from .trend import Progress, progress

__all__ = ["Monitor", "Update", "ForecastSummary", "SEVERITIES"]

#: Severities of a finding, in increasing order (docs/monitor.md).
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
# the first refit needs this many finite rewards (diagnose itself accepts 8)
MIN_REWARDS = 12
# keys that carry the step (never a metric), and our own fields written back into a trainer's logs
_STEP_KEYS = frozenset(
    {"step", "global_step", "_step", "train/global_step", "trainer/global_step"}
    | {"training/global_step"}
)
_OWN_PREFIX = "grpo_dynamics/"
# progress states in which the run moved, so a forecast can mean something
_MOVED = frozenset({"rising", "falling", "slowing", "plateau"})


# ----------------------------------------------------------------------------------------------
# Adapters: the only code here that reads Diagnosis / Forecast internals.
# Adapt here when diagnose/forecast change; nothing else in this module needs to. Findings are
# grpo_dynamics.detectors.Finding, with their own severity (docs/diagnose.md).


def _finding_keys(diagnosis: Diagnosis) -> dict[str, str]:
    """Finding code -> severity ("info" | "warning" | "critical") of the findings present.

    Only assessable findings count ("not assessable: needs <column>" is no alarm); when one
    code appears more than once, its most severe instance speaks.
    """
    out: dict[str, str] = {}
    for finding in diagnosis.findings:  # sorted most severe first
        if finding.assessable:
            out.setdefault(finding.code, finding.severity)
    return out


def _finding_summaries(diagnosis: Diagnosis) -> dict[str, str]:
    """Finding code -> its title, from the most severe instance (for status lines)."""
    out: dict[str, str] = {}
    for finding in diagnosis.findings:
        out.setdefault(finding.code, finding.title)
    return out


def _make_forecast(
    run: Run, reward_range: Sequence[float] | Literal["auto"] | None
) -> Forecast:
    """The ensemble forecast of the whole log so far (docs/forecast.md), kept inside the
    reward's possible range when it is known: given, or shown by the log's own numbers
    (``"auto"``, docs/io.md "Reward range")."""
    return forecast(run, reward_range=reward_range)


def _forecast_fields(fc: Forecast, reward_range: tuple[float, float] | None) -> dict[str, float]:
    """plateau, plateau_lo, plateau_hi, step_90pct (NaN when the ensemble does not reach 90 %
    of the gain by its horizon), step_90pct_lo, step_90pct_hi (NaN: the forecast gives the
    step no band) and identified (1.0 when the forecast identifies the plateau, its band is
    finite and, with ``reward_range``, strictly inside the range: the forecast clips its band
    to the range, so a band ending at an end of it is a curve the range cuts off; else 0.0),
    in the run's units."""
    plateau = fc.plateau if fc.plateau_identified else None
    fields = {
        "plateau": plateau.estimate if plateau is not None else math.nan,
        "plateau_lo": plateau.lower if plateau is not None else math.nan,
        "plateau_hi": plateau.upper if plateau is not None else math.nan,
        "step_90pct": fc.step_90 if fc.step_90 is not None else math.nan,
        "step_90pct_lo": math.nan,
        "step_90pct_hi": math.nan,
    }
    band = (fields["plateau_lo"], fields["plateau"], fields["plateau_hi"])
    identified = all(math.isfinite(v) for v in band) and band[0] <= band[1] <= band[2]
    if identified and reward_range is not None:
        lo, hi = reward_range
        identified = lo < band[0] and band[2] < hi
    fields["identified"] = 1.0 if identified else 0.0
    return fields


# ----------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class ForecastSummary:
    """An identified forecast made at ``step`` (reward units; steps in the run's step units).

    ``plateau`` is the predicted final mean reward with its band [``plateau_lo``,
    ``plateau_hi``]; ``step_90pct`` the step at which the forecast first reaches 90 % of the
    gain (NaN when it does not by its horizon), ``step_90pct_lo`` / ``step_90pct_hi`` its band
    (NaN: the ensemble forecast gives none, docs/forecast.md); :attr:`steps_to_90pct` how many
    steps after ``step`` that is (0 when passed, NaN when unknown).
    """

    step: int
    plateau: float
    plateau_lo: float
    plateau_hi: float
    step_90pct: float
    step_90pct_lo: float
    step_90pct_hi: float

    @property
    def steps_to_90pct(self) -> float:
        if math.isnan(self.step_90pct):
            return math.nan
        return max(0.0, self.step_90pct - self.step)

    def log_fields(self, prefix: str = "grpo_dynamics") -> dict[str, float]:
        """The fields a trainer's logs carry (W&B / TensorBoard plot them)."""
        return {
            f"{prefix}/plateau": self.plateau,
            f"{prefix}/plateau_lo": self.plateau_lo,
            f"{prefix}/plateau_hi": self.plateau_hi,
            f"{prefix}/steps_to_90pct": self.steps_to_90pct,
        }

    def __str__(self) -> str:
        text = f"plateau {self.plateau:.4g} [{self.plateau_lo:.4g}, {self.plateau_hi:.4g}]"
        if math.isnan(self.step_90pct):
            return text
        return text + (
            f", 90% of gain at step {self.step_90pct:.0f} ({self.steps_to_90pct:.0f} to go)"
        )


@dataclass(frozen=True)
class Update:
    """What one :meth:`Monitor.update` changed.

    ``new_findings`` maps finding code (``Finding.code``) -> severity for findings announced
    (or escalated) at this call; ``cleared`` names the codes no longer present; ``forecast``
    is set when an identified forecast was made at this call; ``state`` is the latest progress state
    ("too short" until the first refit); ``refitted`` says whether this call re-diagnosed.
    """

    step: int
    n_steps: int
    reward: float
    state: str
    refitted: bool
    new_findings: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    cleared: tuple[str, ...] = ()
    forecast: ForecastSummary | None = None
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """True when a finding appeared or cleared or a new forecast was made."""
        return bool(self.new_findings or self.cleared or self.forecast is not None)


def _recent_level(t: np.ndarray, r: np.ndarray, prog: Progress) -> tuple[float, float]:
    """Mean reward of the recent window that ``prog`` judged and its standard error (the
    point-to-point noise, inflated for serial correlation, over the window's size)."""
    recent = r[t >= prog.recent_start] if math.isfinite(prog.recent_start) else r[:0]
    if not recent.size or prog.recent is None:
        return math.nan, math.nan
    test = prog.recent
    error = test.noise_sd * math.sqrt(max(test.variance_inflation, 1.0) / recent.size)
    return float(recent.mean()), error


def _consistent(fields: Mapping[str, float], prog: Progress, level: tuple[float, float]) -> bool:
    """Is a plateau band consistent with where the run already is (issue 10's rule)?

    A run that rose cannot end clearly below its recent level (nor a falling one clearly
    above it); at a plateau the band must meet the recent level. "Clearly" is two standard
    errors of the recent mean (none while the recent window itself still moves, as its mean
    then lags the current level): one noisy window cannot veto a forecast.
    """
    mean, error = level
    if prog.overall is None or not (math.isfinite(mean) and math.isfinite(error)):
        return False
    low, high = mean - 2.0 * error, mean + 2.0 * error
    if prog.state == "plateau":
        return fields["plateau_lo"] <= high and fields["plateau_hi"] >= low
    # still moving at the end: the window's mean already lags the run's current level
    if prog.state == "rising":
        return fields["plateau_hi"] >= mean
    if prog.state == "falling":
        return fields["plateau_lo"] <= mean
    if prog.overall.direction == "rising":
        return fields["plateau_hi"] >= low
    if prog.overall.direction == "falling":
        return fields["plateau_lo"] <= high
    return True


def _step_value(step: object) -> int:
    if isinstance(step, bool):
        raise ValueError(f"step: must be an integer, got {step!r}")
    if isinstance(step, int | np.integer):
        return int(step)
    if isinstance(step, float | np.floating) and math.isfinite(step) and step == round(step):
        return int(step)
    raise ValueError(f"step: must be an integer, got {step!r}")


class Monitor:
    """Live diagnosis of a training run, one logged step at a time (docs/monitor.md).

    reward_key: the metric that is the training reward (e.g. ``"critic/score/mean"``); None
      finds it among the io package's reward names, as ``read_log`` does.
    refit_every, refit_growth: recompute the diagnosis, trend and forecast once the log has
      grown by at least ``refit_every`` rows and by ``refit_growth`` x its size at the last
      refit (throttling: amortised cost O(cost(n) / refit_growth) over a run).
    confirm: consecutive refits that must show a warning/critical finding before it is
      announced (and miss it before it clears).
    reward_range: the reward's possible (low, high), when known: a forecast plateau band
      that reaches an end of it is not identified (the range, not the data, bounds it).
      ``"auto"`` (default): the range the log's own numbers show, if any (a 0/1 reward shows
      in its logged mean and std; docs/io.md, "Reward range"); None: no range.
    metadata: run facts in ``Run.metadata``'s canonical keys (``group_size``,
      ``learning_rate``, ...), used by ``diagnose``.
    forecast: False skips forecasting (findings and trend only).
    name: the run's label in diagnoses and reports (``Diagnosis.name``; ``watch`` passes the
      log's file name, the TRL callback the run name); None labels it as ``diagnose`` labels a
      run without a file ("run").
    """

    def __init__(
        self,
        reward_key: str | None = None,
        *,
        refit_every: int = 10,
        refit_growth: float = 0.1,
        confirm: int = 2,
        reward_range: Sequence[float] | Literal["auto"] | None = "auto",
        metadata: Mapping[str, object] | None = None,
        forecast: bool = True,
        name: str | None = None,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name: must be a non-empty string or None, got {name!r}")
        if reward_key is not None and (not isinstance(reward_key, str) or not reward_key):
            raise ValueError(f"reward_key: must be a metric name or None, got {reward_key!r}")
        self.refit_every = _v.integer("refit_every", refit_every, minimum=1)
        self.refit_growth = _v.in_range("refit_growth", refit_growth, 0.0, 10.0)
        self.confirm = _v.integer("confirm", confirm, minimum=1)
        self.reward_key = reward_key
        self.reward_range = _v.range_or_auto("reward_range", reward_range)
        self.metadata: dict[str, object] = dict(metadata or {})
        self.forecasting = bool(forecast)
        self.name = name

        self._capacity = 64
        self._n = 0
        self._steps = np.empty(self._capacity, dtype=np.int64)
        self._columns: dict[str, np.ndarray] = {}
        self._reward_column: str | None = reward_key
        self._n_at_refit = 0
        # per finding: consecutive refits it has been seen at >= warning / missed
        self._seen: dict[str, int] = {}
        self._missed: dict[str, int] = {}
        self.findings: dict[str, str] = {}  # announced: name -> severity
        self.diagnosis: Diagnosis | None = None
        self.progress: Progress | None = None
        self.forecast: ForecastSummary | None = None
        self.summaries: dict[str, str] = {}
        self.refits = 0

    # ------------------------------------------------------------------------------------------
    # accumulation

    def __len__(self) -> int:
        """Number of logged rows (distinct consecutive steps) fed so far."""
        return self._n

    @property
    def last_step(self) -> int | None:
        return int(self._steps[self._n - 1]) if self._n else None

    def _grow(self) -> None:
        self._capacity *= 2
        steps = np.empty(self._capacity, dtype=np.int64)
        steps[: self._n] = self._steps[: self._n]
        self._steps = steps
        for name, values in self._columns.items():
            grown = np.full(self._capacity, np.nan)
            grown[: self._n] = values[: self._n]
            self._columns[name] = grown

    def _append(self, step: int, metrics: Mapping[str, object]) -> None:
        # the same step logged twice (train and eval logs of one step) is one row
        if not (self._n and self._steps[self._n - 1] == step):
            if self._n == self._capacity:
                self._grow()
            self._steps[self._n] = step
            self._n += 1
        row = self._n - 1
        for key, value in metrics.items():
            name = str(key)
            if name in _STEP_KEYS or name.startswith(_OWN_PREFIX):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                continue  # strings, lists, None: not a scalar metric
            column = self._columns.get(name)
            if column is None:
                column = self._columns[name] = np.full(self._capacity, np.nan)
            column[row] = float(value)

    def frame(self) -> pd.DataFrame:
        """The accumulated log as a DataFrame indexed by step, the names as logged.

        A step logged again after a restart replaces the earlier entry (the later one wins).
        """
        n = self._n
        data = {name: values[:n] for name, values in self._columns.items()}
        frame = pd.DataFrame(data, index=pd.Index(self._steps[:n].copy(), name="step"))
        frame = frame[~frame.index.duplicated(keep="last")].sort_index()
        if self.reward_key is not None:
            if self.reward_key not in frame.columns:
                raise ValueError(f"reward_key: {self.reward_key!r} was never logged")
            renamed = {self.reward_key: "reward"}
            if "reward" in frame.columns and self.reward_key != "reward":
                renamed["reward"] = "reward_logged"  # keep the chosen metric the reward
            frame = frame.rename(columns=renamed)
        return frame

    def run(self) -> Run:
        """The accumulated log as a :class:`Run` (names normalised by ``io.as_run``)."""
        run = as_run(self.frame())
        run.metadata.update(self.metadata)
        return run

    # ------------------------------------------------------------------------------------------
    # the per-step entry point

    def _due(self) -> bool:
        grown = self._n - self._n_at_refit
        return grown >= max(self.refit_every, math.ceil(self.refit_growth * self._n_at_refit))

    def _current_reward(self) -> float:
        name = self._reward_column
        if name is None or name not in self._columns or not self._n:
            return math.nan
        return float(self._columns[name][self._n - 1])

    def update(
        self, step: int, metrics: Mapping[str, object], *, refit: bool | None = None
    ) -> Update:
        """Feed one logged step; return what changed (:class:`Update`).

        step: the optimizer step (an integer). metrics: the logged dict (non-numeric values
        are ignored). refit: None refits on the throttled schedule, True forces a refit
        (when new rows arrived since the last one), False defers it (bulk feeding).
        """
        step_value = _step_value(step)
        if not isinstance(metrics, Mapping):
            raise ValueError(f"metrics: must be a mapping of name -> value, got {metrics!r}")
        self._append(step_value, metrics)
        do_refit = self._due() if refit is None else refit and self._n > self._n_at_refit
        if not do_refit:
            state = self.progress.state if self.progress is not None else "too short"
            return Update(step_value, self._n, self._current_reward(), state, False)
        return self._refit(step_value)

    def extend(self, rows: Iterable[tuple[int, Mapping[str, object]]]) -> list[Update]:
        """Feed many logged steps at once (a backlog); return the updates of the refits made.

        Instead of one refit per interval, refits happen only at the last ``confirm`` points
        of the live schedule (spaced by the refit interval at the end of the backlog), so a
        finding present throughout is confirmed exactly as a live monitor would have, at the
        cost of ``confirm`` refits.
        """
        batch = list(rows)
        start = self._n
        end = start + len(batch)  # rows counted before merging repeated steps
        gap = max(self.refit_every, math.ceil(self.refit_growth * end / (1 + self.refit_growth)))
        marks = {end - j * gap for j in range(self.confirm)}
        updates: list[Update] = []
        for i, (step, metrics) in enumerate(batch):
            update = self.update(step, metrics, refit=start + i + 1 in marks)
            if update.refitted:
                updates.append(update)
        return updates

    def refresh(self) -> Update | None:
        """Refit now on everything fed so far (None when nothing was fed since the last)."""
        if not self._n or self._n == self._n_at_refit:
            return None
        return self._refit(int(self._steps[self._n - 1]))

    def _refit(self, step: int) -> Update:
        self._n_at_refit = self._n
        notes: list[str] = []
        try:
            run = self.run()
        except ValueError as exc:  # no reward column yet (e.g. only eval rows so far)
            notes.append(str(exc))
            return Update(step, self._n, math.nan, "too short", False, notes=tuple(notes))
        if self._reward_column is None:
            self._reward_column = run.original_names.get("reward", "reward")
        t, r = run.series("reward")
        self.progress = progress(t, r)
        state = self.progress.state
        if t.size < MIN_REWARDS:
            return Update(step, self._n, self._current_reward(), state, False)
        self.refits += 1
        new, cleared = self._update_findings(run, notes)
        made = self._update_forecast(run, step, _recent_level(t, r, self.progress), notes)
        return Update(
            step,
            self._n,
            self._current_reward(),
            state,
            True,
            MappingProxyType(new),
            tuple(cleared),
            made,
            tuple(notes),
        )

    def _update_findings(self, run: Run, notes: list[str]) -> tuple[dict[str, str], list[str]]:
        try:
            self.diagnosis = diagnose(run, name=self.name)
        except ValueError as exc:
            notes.append(f"diagnose: {exc}")
            return {}, []
        present = _finding_keys(self.diagnosis)
        self.summaries = _finding_summaries(self.diagnosis)
        alarms = {k: s for k, s in present.items() if _RANK[s] >= _RANK["warning"]}
        new: dict[str, str] = {}
        for name, severity in alarms.items():
            self._seen[name] = self._seen.get(name, 0) + 1
            self._missed[name] = 0
            announced = self.findings.get(name)
            if self._seen[name] >= self.confirm and (
                announced is None or _RANK[severity] > _RANK[announced]
            ):
                self.findings[name] = severity
                new[name] = severity
        cleared: list[str] = []
        for name in set(self._seen) - set(alarms):
            self._seen[name] = 0
            self._missed[name] = self._missed.get(name, 0) + 1
            if name in self.findings and self._missed[name] >= self.confirm:
                del self.findings[name]
                cleared.append(name)
        cleared.sort()
        return new, cleared

    def _update_forecast(
        self, run: Run, step: int, level: tuple[float, float], notes: list[str]
    ) -> ForecastSummary | None:
        if not self.forecasting or self.progress is None:
            return None
        state = self.progress.state
        if state not in _MOVED:
            self.forecast = None  # no trend: a plateau number would mean nothing
            return None
        try:
            made = _make_forecast(run, self.reward_range)
            fields = _forecast_fields(made, made.reward_range)
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            notes.append(f"forecast: {exc}")
            self.forecast = None
            return None
        if fields["identified"] != 1.0 or not _consistent(fields, self.progress, level):
            self.forecast = None
            return None
        self.forecast = ForecastSummary(
            step,
            fields["plateau"],
            fields["plateau_lo"],
            fields["plateau_hi"],
            fields["step_90pct"],
            fields["step_90pct_lo"],
            fields["step_90pct_hi"],
        )
        return self.forecast

    # ------------------------------------------------------------------------------------------
    # answers

    def report(self) -> Diagnosis:
        """``diagnose`` of the accumulated log: exactly ``diagnose(self.run(), name=self.name)``
        (docs/diagnose.md); ValueError while fewer than 8 finite rewards were logged."""
        return diagnose(self.run(), name=self.name)

    def status_line(self) -> str:
        """One line: step, reward, trend state, forecast when identified, announced findings."""
        if not self._n:
            return "grpo-dynamics: no step logged yet"
        reward = self._current_reward()
        state = self.progress.state if self.progress is not None else "too short"
        parts = [f"step {self.last_step}", f"reward {reward:.4g}", state]
        if self.forecast is not None:
            fc = self.forecast
            text = f"plateau {fc.plateau:.3g} [{fc.plateau_lo:.3g}, {fc.plateau_hi:.3g}]"
            if not math.isnan(fc.step_90pct):
                text += f", 90% at step {fc.step_90pct:.0f}"
            parts.append(text)
        if self.findings:
            parts.append(", ".join(f"{s.upper()} {n}" for n, s in sorted(self.findings.items())))
        else:
            parts.append("no warnings")
        return "grpo-dynamics: " + " | ".join(parts)

    def status_block(self) -> list[str]:
        """A few lines for a terminal: reward, trend, forecast with band, findings."""
        if not self._n:
            return ["grpo-dynamics: no step logged yet"]
        reward = self._current_reward()
        lines = [f"step {self.last_step}  ({self._n} logged rows)   reward {reward:.4g}"]
        prog = self.progress
        if prog is None or prog.overall is None:
            lines.append("trend     too short to say")
        else:
            lines.append(
                f"trend     {prog.state} (change {prog.overall.change:+.4g} over the run, "
                f"p={prog.overall.p_value:.2g})"
            )
        if self.forecast is not None:
            lines.append(f"forecast  {self.forecast}")
        elif prog is not None and prog.state in _MOVED:
            lines.append("forecast  plateau not identified yet")
        else:
            lines.append("forecast  none (no trend)")
        if self.findings:
            for name, severity in sorted(self.findings.items(), key=lambda kv: -_RANK[kv[1]]):
                lines.append(f"{severity.upper():<9} {name}: {self.summaries.get(name, '')}")
        else:
            lines.append("findings  no warning")
        return lines
