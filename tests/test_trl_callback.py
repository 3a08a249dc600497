"""GrpoDynamicsCallback with the real transformers classes (no torch needed): real TRL
log_history replayed through CallbackHandler / TrainerState / TrainerControl; fields added to
the trainer's logs only when a forecast is identified, training stopped on a confirmed
critical finding, the JSON report equal to diagnose of the finished log and the HTML report
beside it."""

from __future__ import annotations

import html
import importlib
import io
import json
import sys
import warnings
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

from transformers import TrainerControl, TrainerState, TrainingArguments  # noqa: E402
from transformers.trainer_callback import CallbackHandler  # noqa: E402

from grpo_dynamics._diagnose import diagnose  # noqa: E402
from grpo_dynamics.integrations.trl import (  # noqa: E402
    HTML_REPORT_NAME,
    REPORT_NAME,
    GrpoDynamicsCallback,
)
from grpo_dynamics.io import read_log  # noqa: E402
from grpo_dynamics.monitor import Monitor  # noqa: E402

DATA = Path(__file__).parent / "data"
FIELDS = ("plateau", "plateau_lo", "plateau_hi", "steps_to_90pct")


def log_history(name: str) -> list[dict[str, float]]:
    document = json.loads((DATA / name).read_text())
    entries = document["log_history"] if isinstance(document, dict) else document
    return [e for e in entries if "step" in e]


def entries_of(name: str) -> list[dict[str, float]]:
    """TRL's log_history when the file has one, else the rows read_log reads (one a step)."""
    document = json.loads((DATA / name).read_text())
    if isinstance(document, dict) and "log_history" in document:
        return log_history(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = read_log(DATA / name)
    records = run.frame.reset_index().to_dict("records")  # the step is a column again
    return [{str(k): float(v) for k, v in r.items() if v == v} for r in records]  # NaN: unlogged


def train(
    callback: GrpoDynamicsCallback,
    name: str,
    output_dir: Path,
    limit: int | None = None,
    run_name: str | None = None,
):
    """Drive the callback as Trainer does: begin, one on_log per logged entry, end."""
    args = TrainingArguments(output_dir=str(output_dir), report_to=[], run_name=run_name)
    handler = CallbackHandler([callback], None, None, None, None)
    state, control = TrainerState(), TrainerControl()
    control = handler.on_train_begin(args, state, control)
    logged = []
    for entry in entries_of(name)[:limit]:
        state.global_step = int(entry["step"])
        logs = {k: v for k, v in entry.items() if k != "step"}  # Trainer adds step itself
        control = handler.on_log(args, state, control, logs)
        logged.append((state.global_step, logs, control.should_training_stop))
        if control.should_training_stop:
            break
    handler.on_train_end(args, state, control)
    return logged


def test_forecast_fields_only_when_identified(tmp_path):
    name = "CYCLOP5__metascaler-hack__training_metrics.json"
    callback = GrpoDynamicsCallback(Monitor(refit_every=25), stream=io.StringIO())
    reference = Monitor(refit_every=25)  # the same monitor, driven directly
    with_fields = 0
    for step, logs, _ in train(callback, name, tmp_path, limit=130):
        reference.update(step, {k: v for k, v in logs.items() if not k.startswith("grpo_")})
        ours = {k: v for k, v in logs.items() if k.startswith("grpo_dynamics/")}
        if reference.forecast is None:
            assert ours == {}
        else:
            assert ours == reference.forecast.log_fields()
            assert set(ours) == {f"grpo_dynamics/{f}" for f in FIELDS}
            assert ours["grpo_dynamics/plateau_lo"] <= ours["grpo_dynamics/plateau_hi"]
            with_fields += 1
    assert with_fields > 0  # the run rises and bends early on: some forecasts are identified


def test_stop_on_critical_stops_a_degenerate_run(tmp_path):
    name = "aaravarora01__agent-memory-redteam__trainer_state.json"
    stream = io.StringIO()
    callback = GrpoDynamicsCallback(Monitor(forecast=False), stop_on="critical", stream=stream)
    logged = train(callback, name, tmp_path)
    stops = [step for step, _, stop in logged if stop]
    assert stops == [logged[-1][0]]  # stopped at the first confirmed critical finding
    assert callback.stopped_because == {"advantage_degeneracy": "critical"}
    assert f"stopping training at step {stops[0]}" in stream.getvalue()
    assert stops[0] < log_history(name)[-1]["step"]


@pytest.mark.parametrize(
    "name",
    [  # labelled learn_plateau in LABELS.md, with no failure in the reading
        "Rishabh200729__incident-commander-openenv__training_log.json",
        "yuxuanwang2009__RL_GRPO__grpo_metrics.json",
    ],
)
def test_stop_on_warning_never_stops_a_healthy_run(tmp_path, name):
    monitor = Monitor(forecast=False)  # findings only: forecasts never stop a run
    callback = GrpoDynamicsCallback(monitor, stop_on="warning", stream=io.StringIO())
    logged = train(callback, name, tmp_path)
    assert monitor.refits >= 2  # it did look
    assert not any(stop for _, _, stop in logged)
    assert len(logged) == len(entries_of(name))
    assert not callback.stopped_because


def test_report_at_train_end_is_diagnose_of_the_log(tmp_path):
    name = "aaravarora01__agent-memory-redteam__trainer_state.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = read_log(DATA / name)
    monitor = Monitor(metadata=run.metadata, name=name)
    callback = GrpoDynamicsCallback(monitor, stream=io.StringIO())
    train(callback, name, tmp_path)
    path = tmp_path / REPORT_NAME
    assert callback.report_path == path
    expected = diagnose(run)
    assert json.loads(path.read_text()) == json.loads(json.dumps(expected.to_dict()))
    # the HTML report beside it: one self-contained page with every finding's title
    page = tmp_path / HTML_REPORT_NAME
    assert callback.html_path == page and page.is_file()
    text = page.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html")
    assert expected.findings and expected.worst_severity == "critical"
    for finding in expected.findings:
        assert html.escape(finding.title) in text
    assert html.escape(name) in text and "<script" not in text


def test_an_unnamed_monitor_takes_the_run_name(tmp_path):
    name = "aaravarora01__agent-memory-redteam__trainer_state.json"
    callback = GrpoDynamicsCallback(Monitor(forecast=False), stream=io.StringIO())
    train(callback, name, tmp_path / "out", run_name="redteam-3")
    assert callback.monitor.name == "redteam-3"
    report = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert report["name"] == "redteam-3"
    assert "redteam-3" in (tmp_path / "out" / HTML_REPORT_NAME).read_text(encoding="utf-8")
    # without a run name, the output directory names it
    other = GrpoDynamicsCallback(Monitor(forecast=False), stream=io.StringIO())
    train(other, name, tmp_path / "exp-9", limit=20)
    assert other.monitor.name == "exp-9"


def test_a_status_line_at_each_refit_and_at_the_end(tmp_path):
    name = "aaravarora01__agent-memory-redteam__trainer_state.json"
    stream = io.StringIO()
    callback = GrpoDynamicsCallback(Monitor(forecast=False), stream=stream, write_report=False)
    train(callback, name, tmp_path)
    reference = Monitor(forecast=False)
    refits = sum(reference.update(int(e["step"]), e).refitted for e in log_history(name))
    lines = stream.getvalue().splitlines()
    assert len(lines) == refits + 1
    assert all(line.startswith("grpo-dynamics: ") for line in lines)
    assert "CRITICAL advantage_degeneracy" in lines[-1]
    assert not (tmp_path / REPORT_NAME).exists()


def test_group_size_comes_from_grpo_config(tmp_path):
    class GRPOConfigLike(TrainingArguments):  # TRL's GRPOConfig adds num_generations
        num_generations: int = 8

    args = GRPOConfigLike(output_dir=str(tmp_path), report_to=[])
    callback = GrpoDynamicsCallback(stream=io.StringIO())
    callback.on_train_begin(args, TrainerState(), TrainerControl())
    assert callback.monitor.metadata["group_size"] == 8
    assert callback.monitor.metadata["learning_rate"] == args.learning_rate


def test_attach_puts_the_callback_first():
    class Reporter(transformers.TrainerCallback):
        pass

    class TrainerLike:
        def __init__(self) -> None:
            self.callback_handler = CallbackHandler([Reporter()], None, None, None, None)

    trainer = TrainerLike()
    callback = GrpoDynamicsCallback().attach(trainer)  # type: ignore[arg-type]
    assert trainer.callback_handler.callbacks[0] is callback
    assert len(trainer.callback_handler.callbacks) == 2


def test_bad_options_name_the_argument():
    with pytest.raises(ValueError, match="^stop_on: "):
        GrpoDynamicsCallback(stop_on="error")
    with pytest.raises(ValueError, match="^prefix: "):
        GrpoDynamicsCallback(prefix="")


def test_without_transformers_the_import_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    monkeypatch.delitem(sys.modules, "grpo_dynamics.integrations.trl", raising=False)
    with pytest.raises(ImportError, match=r"pip install grpo-dynamics\[trl\]"):
        importlib.import_module("grpo_dynamics.integrations.trl")
