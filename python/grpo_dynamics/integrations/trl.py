"""A ``transformers`` / TRL Trainer callback that watches a GRPO run (docs/monitor.md).

    from grpo_dynamics.integrations.trl import GrpoDynamicsCallback

    callback = GrpoDynamicsCallback(stop_on="critical")
    trainer = GRPOTrainer(..., callbacks=[callback])      # or: callback.attach(trainer)
    trainer.train()

On every log the callback feeds the trainer's logged metrics to a :class:`~grpo_dynamics.
monitor.Monitor`, adds the identified forecast to the same logs dict (``grpo_dynamics/plateau``,
``grpo_dynamics/plateau_lo``, ``grpo_dynamics/plateau_hi``, ``grpo_dynamics/steps_to_90pct``)
so W&B / TensorBoard plot it, prints a one-line status at each (throttled) refit, optionally
stops training on a confirmed finding (``stop_on``), and at the end writes the diagnosis of the
whole log next to the checkpoints, as JSON and as the self-contained HTML report of
:func:`grpo_dynamics.report.write_html`.

The Trainer calls the reporting callbacks (W&B, TensorBoard) *before* the callbacks a user
passes, so the added fields reach them only when this callback runs first: use
:meth:`GrpoDynamicsCallback.attach`, which puts it at the front.

Needs ``transformers`` (``pip install grpo-dynamics[trl]``); it does not need torch itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
    from transformers.trainer_callback import CallbackHandler
except ImportError as exc:  # pragma: no cover - exercised only without transformers
    raise ImportError(
        "grpo_dynamics.integrations.trl needs the transformers package: "
        "pip install grpo-dynamics[trl]"
    ) from exc

from ..monitor import SEVERITIES, Monitor
from ..report import write_html

__all__ = ["GrpoDynamicsCallback", "REPORT_NAME", "HTML_REPORT_NAME"]

#: File name of the JSON report written at the end of training (in ``report_dir``).
REPORT_NAME = "grpo_dynamics_report.json"
#: File name of the HTML report written beside it.
HTML_REPORT_NAME = "grpo_dynamics_report.html"
_STOP_LEVELS = ("warning", "critical")


class _HasCallbackHandler(Protocol):
    callback_handler: CallbackHandler


class GrpoDynamicsCallback(TrainerCallback):
    """Live GRPO diagnosis inside a Hugging Face / TRL Trainer (docs/monitor.md).

    monitor: a configured :class:`Monitor` (default: ``Monitor(reward_key)``); one without a
      ``name`` is named at the start of training after ``args.run_name`` (else the output
      directory's name), the label of its reports.
    reward_key: the logged metric that is the reward (default: found by name, e.g. TRL's
      ``reward``); ignored when ``monitor`` is given.
    stop_on: None (never stop), "warning" or "critical": set
      ``control.should_training_stop`` once a finding of at least this severity is
      confirmed by the monitor.
    report_dir: where the reports go at the end (default: ``args.output_dir``):
      :data:`REPORT_NAME` (``Diagnosis.to_dict()`` as JSON) and :data:`HTML_REPORT_NAME`
      (``report.write_html``); ``write_report=False`` writes neither.
    status: print a one-line status at each refit of the monitor (throttled: every 10 logged
      steps early, every 10 % of the run later) and when a finding or forecast changes.
    prefix: name prefix of the fields added to the trainer's logs.
    """

    def __init__(
        self,
        monitor: Monitor | None = None,
        *,
        reward_key: str | None = None,
        stop_on: str | None = None,
        report_dir: str | Path | None = None,
        write_report: bool = True,
        status: bool = True,
        stream: TextIO | None = None,
        prefix: str = "grpo_dynamics",
    ) -> None:
        if stop_on is not None and stop_on not in _STOP_LEVELS:
            raise ValueError(f"stop_on: must be None, 'warning' or 'critical', got {stop_on!r}")
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"prefix: must be a non-empty string, got {prefix!r}")
        self.monitor = monitor if monitor is not None else Monitor(reward_key)
        self.stop_on = stop_on
        self.report_dir = None if report_dir is None else Path(report_dir)
        self.write_report = bool(write_report)
        self.status = bool(status)
        self.stream = stream
        self.prefix = prefix
        #: why training was stopped (finding name -> severity), empty when it was not
        self.stopped_because: dict[str, str] = {}
        #: where the JSON and the HTML report were written, once they were
        self.report_path: Path | None = None
        self.html_path: Path | None = None

    def attach(self, trainer: _HasCallbackHandler) -> GrpoDynamicsCallback:
        """Put this callback first in ``trainer``'s callbacks (so W&B/TensorBoard see the
        fields it adds) and return it."""
        callbacks = trainer.callback_handler.callbacks
        if self in callbacks:
            callbacks.remove(self)
        callbacks.insert(0, self)
        return self

    def _print(self, text: str) -> None:
        if self.status:
            print(text, file=self.stream if self.stream is not None else sys.stdout, flush=True)

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        if self.monitor.name is None:
            run_name = args.run_name or (Path(args.output_dir).name if args.output_dir else "")
            self.monitor.name = run_name or None
        metadata = self.monitor.metadata
        # TRL's GRPOConfig carries the group size; plain TrainingArguments do not
        group_size = getattr(args, "num_generations", None)
        if isinstance(group_size, int) and "group_size" not in metadata:
            metadata["group_size"] = group_size
        if "learning_rate" not in metadata:
            metadata["learning_rate"] = float(args.learning_rate)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs is None or not state.is_world_process_zero:
            return
        update = self.monitor.update(state.global_step, logs)
        forecast = self.monitor.forecast
        if forecast is not None:
            logs.update(forecast.log_fields(self.prefix))
        if update.refitted or update.changed:  # a heartbeat at each (throttled) refit
            self._print(self.monitor.status_line())
        if self.stop_on is not None and not self.stopped_because:
            floor = SEVERITIES.index(self.stop_on)
            found = {
                name: severity
                for name, severity in self.monitor.findings.items()
                if SEVERITIES.index(severity) >= floor
            }
            if found:
                self.stopped_because = found
                control.should_training_stop = True
                listed = ", ".join(f"{n} ({s})" for n, s in sorted(found.items()))
                self._print(f"grpo-dynamics: stopping training at step {update.step}: {listed}")

    def on_train_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero:
            return
        self.monitor.refresh()
        self._print(self.monitor.status_line())
        if not self.write_report:
            return
        try:
            diagnosis = self.monitor.report()
        except ValueError as exc:  # too few logged rewards for a diagnosis
            self._print(f"grpo-dynamics: no report: {exc}")
            return
        directory = self.report_dir
        if directory is None:
            directory = Path(args.output_dir) if args.output_dir else Path.cwd()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / REPORT_NAME
        path.write_text(json.dumps(diagnosis.to_dict(), indent=2) + "\n")
        self.report_path = path
        self.html_path = write_html([diagnosis], directory / HTML_REPORT_NAME)
        self._print(f"grpo-dynamics: report written to {path} and {self.html_path}")
