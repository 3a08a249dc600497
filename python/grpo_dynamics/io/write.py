"""write_log: a Run back to disk in TRL, CSV, JSONL or TensorBoard form (docs/io.md)."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np

from ._aliases import _OUR_METADATA_KEY, _is_eval
from .run import Run

__all__ = ["write_log"]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"metadata value {value!r} is not JSON serialisable")


def _row_entries(run: Run) -> Iterable[tuple[int, dict[str, float], dict[str, float]]]:
    columns = list(run.frame.columns)
    eval_mask = [_is_eval(c) for c in columns]
    values = run.frame.to_numpy(dtype=float)
    for step, row in zip(run.frame.index.tolist(), values, strict=True):
        train = {
            c: float(v)
            for c, v, e in zip(columns, row, eval_mask, strict=True)
            if not e and not math.isnan(v)
        }
        evals = {
            c: float(v)
            for c, v, e in zip(columns, row, eval_mask, strict=True)
            if e and not math.isnan(v)
        }
        yield int(step), train, evals


def write_log(run: Run, path: str | os.PathLike[str], format: str | None = None) -> Path:
    """Write a Run so that :func:`read_log` gives it back exactly (docs/io.md, "Writing").

    ``format``: "trl" (trainer_state.json layout: train and ``eval_`` entries in
    ``log_history``), "csv", "jsonl" or "tensorboard" (one event file, float64 tensors);
    by default told from the suffix (.csv, .jsonl, 'tfevents' in the name), else "trl".
    Columns keep their canonical names; metadata is stored under ``grpo_dynamics_metadata``.
    Returns the path written.
    """
    target = Path(path)
    if format is None:
        name = target.name.lower()
        format = (
            "csv"
            if name.endswith(".csv")
            else "jsonl"
            if name.endswith(".jsonl")
            else "tensorboard"
            if "tfevents" in name
            else "trl"
        )
    if format == "json":
        format = "trl"
    if format not in ("trl", "csv", "jsonl", "tensorboard"):
        raise ValueError(f"format must be one of trl, csv, jsonl, tensorboard; got {format!r}")
    if not isinstance(run, Run):
        raise ValueError(f"run must be a Run, got {type(run).__name__}")
    target.parent.mkdir(parents=True, exist_ok=True)
    metadata = dict(run.metadata)
    if format == "trl":
        history: list[dict[str, float | int]] = []
        for step, train, evals in _row_entries(run):
            if train:
                history.append({**train, "step": step})
            if evals:
                history.append({**evals, "step": step})
        steps = run.frame.index
        state = {
            "global_step": int(steps.max()) if len(steps) else 0,
            "logging_steps": run.logging_interval,
            "max_steps": int(metadata.get("max_steps", steps.max() if len(steps) else 0)),
            "log_history": history,
            _OUR_METADATA_KEY: metadata,
        }
        target.write_text(json.dumps(state, indent=1, default=_json_default) + "\n")
    elif format == "jsonl":
        lines = [json.dumps({_OUR_METADATA_KEY: metadata}, default=_json_default)]
        for step, train, evals in _row_entries(run):
            lines.append(json.dumps({"step": step, **train, **evals}))
        target.write_text("\n".join(lines) + "\n")
    elif format == "csv":
        header = f"# {_OUR_METADATA_KEY}: {json.dumps(metadata, default=_json_default)}\n"
        body = StringIO()
        run.frame.to_csv(body, index=True, index_label="step", float_format="%.17g")
        target.write_text(header + body.getvalue())
    else:
        from .tensorboard import _encode_events

        rows = [(step, {**train, **evals}) for step, train, evals in _row_entries(run)]
        metadata_json = json.dumps(metadata, default=_json_default)
        target.write_bytes(_encode_events(metadata_json, rows, wall_time=time.time()))
    return target
