"""Reading and writing GRPO training logs (docs/io.md; the data of docs/model.md section 10).

``read_log(path)`` turns the logs people actually have into a :class:`Run`: a table indexed by
optimizer step with canonical column names (``reward``, ``reward_std``, ``kl``, ...), the
original names beside them, the hyperparameters the log carries, and a list of everything that
was done to the data on the way in. Supported: TRL ``trainer_state.json`` and TRL-like JSON
written by scripts, CSV and JSONL exports (W&B style), TensorBoard event files (read with a
small self-contained decoder of the record framing and the few protobuf fields scalars use)
and console logs that print TRL dicts or ``Reward: x`` lines. ``write_log`` writes a Run back
in TRL, CSV, JSONL or TensorBoard form so that every format round-trips exactly.
"""

from __future__ import annotations

import ast
import functools
import glob as _glob
import json
import math
import os
import re
import struct
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CANONICAL_COLUMNS",
    "GrpoLogWarning",
    "LogFormatError",
    "Run",
    "as_run",
    "read_log",
    "read_logs",
    "write_log",
]


class LogFormatError(ValueError):
    """A log file that cannot be read: the message names the file and the line or key."""

    def __init__(self, path: str | os.PathLike[str] | None, where: str | None, reason: str):
        self.path = None if path is None else str(path)
        self.where = where
        self.reason = reason
        parts = [p for p in (self.path, where) if p]
        super().__init__(": ".join([*parts, reason]))


class GrpoLogWarning(UserWarning):
    """Something was done to a log's data while reading it (also recorded in Run.warnings)."""


# Canonical column -> accepted names, compared after _normalise (lower case, '_' for blanks,
# leading 'train/' dropped); the first one present wins, the others keep their own names.
_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "reward": (
        "reward",
        "rewards",
        "reward_mean",
        "rewards_mean",
        "mean_reward",
        "avg_reward",
        "average_reward",
        "reward_avg",
        "rewards_avg",
        "reward/mean",
        "train_reward",
    ),
    "reward_std": (
        "reward_std",
        "rewards_std",
        "reward/std",
        "std_reward",
        "reward_stddev",
    ),
    "frac_reward_zero_std": ("frac_reward_zero_std", "frac_zero_std", "zero_std_frac"),
    "entropy": ("entropy", "policy_entropy", "mean_entropy", "entropy_avg", "entropy_mean"),
    "kl": (
        "kl",
        "kl_avg",
        "kl_mean",
        "mean_kl",
        "kl_ref",
        "kl_div",
        "kl_divergence",
        "objective/kl",
    ),
    "completion_length": (
        "completion_length",
        "completions/mean_length",
        "mean_completion_length",
        "avg_completion_length",
        "completion_len",
        "response_length",
        "mean_response_length",
        "avg_response_len",
        "avg_response_length",
    ),
    "clip_ratio": (
        "clip_ratio",
        "clip_ratio/region_mean",
        "clipfrac",
        "clip_frac",
        "clip_fraction",
    ),
    "learning_rate": ("learning_rate", "lr"),
    "eval_reward": (
        "eval_reward",
        "eval/reward",
        "eval_rewards",
        "eval_reward_mean",
        "eval/reward_mean",
        "eval/rewards",
        "val_reward",
        "test_reward",
        "heldout_reward",
        "held_out_reward",
        "gold_reward",
    ),
    "grad_norm": ("grad_norm", "gradient_norm", "grad_norm_avg"),
    "loss": ("loss", "actor_loss", "policy_loss"),
    "epoch": ("epoch",),
}
#: Canonical column names, in the order a Run's table puts them (docs/io.md, "Canonical names").
CANONICAL_COLUMNS: tuple[str, ...] = tuple(_COLUMN_ALIASES)

# Last-resort names for the reward of records that only say 'mean'/'std' (per-call reward logs).
_BARE_REWARD = {"reward": "mean", "reward_std": "std"}

# Metadata key -> accepted keys of the log's config/top level (normalised like columns).
_METADATA_ALIASES: dict[str, tuple[str, ...]] = {
    "group_size": (
        "group_size",
        "num_generations",
        "n_generations",
        "generations",
        "g",
        "num_samples_per_prompt",
        "n_completions",
    ),
    "learning_rate": ("learning_rate", "lr"),
    "model_name": (
        "model_name_or_path",
        "model_name",
        "model",
        "base_model_name_or_path",
        "base_model",
        "model_id",
        "_name_or_path",
    ),
    "batch_size": (
        "per_device_train_batch_size",
        "train_batch_size",
        "batch_size",
        "total_train_batch_size",
    ),
    "num_iterations": ("num_iterations", "ppo_epochs"),
    "beta": ("beta", "kl_coef", "kl_beta"),
    "epsilon": ("epsilon", "clip_range", "cliprange"),
    "max_steps": ("max_steps", "total_steps", "total_optimization_steps"),
    "logging_steps": ("logging_steps",),
    "gradient_accumulation_steps": ("gradient_accumulation_steps",),
}

# Step column names, most specific first: W&B's own '_step' counts log calls, not optimizer steps.
_STEP_NAMES = (
    "train/global_step",
    "trainer/global_step",
    "global_step",
    "step",
    "steps",
    "_step",
    "iteration",
    "iter",
    "it",
    "update",
    "train/step",
)
# Entries TRL writes once at the end of training: metadata, not per-step data.
_SUMMARY_KEYS = frozenset(
    {
        "train_runtime",
        "train_samples_per_second",
        "train_steps_per_second",
        "total_flos",
        "train_loss",
    }
)
_OUR_METADATA_KEY = "grpo_dynamics_metadata"
_FORMATS = ("trl", "json", "csv", "jsonl", "tensorboard", "console")


@functools.lru_cache(maxsize=4096)
def _normalise(name: str) -> str:
    text = re.sub(r"[\s\-]+", "_", str(name).strip().lower())
    return text[len("train/") :] if text.startswith("train/") else text


def _column_order(columns: Iterable[str]) -> list[str]:
    """Canonical columns in CANONICAL_COLUMNS order, then the others by name (stable on disk)."""
    names = list(columns)
    return [c for c in CANONICAL_COLUMNS if c in names] + sorted(
        c for c in names if c not in _COLUMN_ALIASES
    )


@functools.lru_cache(maxsize=4096)
def _is_eval(name: str) -> bool:
    return str(name).lower().startswith(("eval_", "eval/"))


@dataclass(eq=False, repr=False)  # a DataFrame field has no truth value: identity equality
class Run:
    """One training run: per-step metrics, the names they had, and the run's hyperparameters.

    ``frame`` is indexed by optimizer step (int, increasing, unique) and holds float columns,
    canonical ones (:data:`CANONICAL_COLUMNS`) first; ``original_names`` maps each canonical
    column to the name it had in the log; ``metadata`` holds what the log says about the run
    (``group_size``, ``learning_rate``, ``model_name``, ``batch_size``, ``num_iterations``, ...
    when present, plus the raw config keys); ``warnings`` lists what was done to the data,
    ``notes`` what was noticed without changing anything (docs/io.md, "Messy logs").
    """

    frame: pd.DataFrame
    original_names: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    format: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.frame, pd.DataFrame):
            raise ValueError("frame must be a pandas DataFrame indexed by step")
        if "reward" not in self.frame.columns:
            raise ValueError("frame has no 'reward' column")
        index = self.frame.index
        if len(index) and not pd.api.types.is_integer_dtype(index.dtype):
            raise ValueError("frame index (step) must hold integers")
        if not index.is_unique or not index.is_monotonic_increasing:
            raise ValueError("frame index (step) must be unique and increasing")

    @classmethod
    def from_arrays(
        cls,
        steps: Sequence[int] | np.ndarray,
        reward: Sequence[float] | np.ndarray,
        *,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
        **columns: Sequence[float] | np.ndarray,
    ) -> Run:
        """Build a Run from arrays (e.g. a simulated run); extra columns by keyword."""
        step_array = np.asarray(steps)
        if (
            step_array.ndim != 1
            or not np.all(np.isfinite(step_array))
            or np.any(step_array != np.round(step_array))
        ):
            raise ValueError("steps must be a 1-D array of integers")
        data: dict[str, np.ndarray] = {"reward": np.asarray(reward, dtype=float)}
        data.update({name: np.asarray(values, dtype=float) for name, values in columns.items()})
        for name, values in data.items():
            if values.shape != step_array.shape:
                raise ValueError(f"{name} has shape {values.shape}, steps {step_array.shape}")
        index = pd.Index(step_array.astype(np.int64), name="step")
        frame = pd.DataFrame(data, index=index)
        return cls(
            frame=frame[_column_order(frame.columns)].sort_index(),
            original_names={c: c for c in frame.columns if c in _COLUMN_ALIASES},
            metadata=_canonical_metadata(dict(metadata or {}), frame, []),
            source=source,
        )

    @property
    def name(self) -> str:
        """A short label for tables: the file name, or 'run'."""
        return Path(self.source).name if self.source else "run"

    @property
    def _reward_mask(self) -> np.ndarray:
        return np.isfinite(self.frame["reward"].to_numpy(dtype=float))

    @property
    def steps(self) -> np.ndarray:
        """Optimizer steps (int64) at which a finite reward was logged."""
        return self.frame.index.to_numpy(dtype=np.int64)[self._reward_mask]

    @property
    def reward(self) -> np.ndarray:
        """Mean training reward (float64) at :attr:`steps`, in the log's own units."""
        return self.frame["reward"].to_numpy(dtype=float)[self._reward_mask]

    @property
    def logging_interval(self) -> int:
        """The most common gap between consecutive logged reward steps (1 if undefined)."""
        gaps = np.diff(self.steps)
        gaps = gaps[gaps > 0]
        if gaps.size == 0:
            return 1
        values, counts = np.unique(gaps, return_counts=True)
        return int(values[np.argmax(counts)])

    def _resolve(self, name: str) -> str:
        if name in self.frame.columns:
            return name
        for canonical, original in self.original_names.items():
            if original == name and canonical in self.frame.columns:
                return canonical
        raise KeyError(
            f"column {name!r} is not in this run; it has: {', '.join(map(str, self.frame.columns))}"
        )

    def has(self, name: str) -> bool:
        """True when the column (canonical or original name) exists with a finite value."""
        try:
            resolved = self._resolve(name)
        except KeyError:
            return False
        return bool(np.isfinite(self.frame[resolved].to_numpy(dtype=float)).any())

    def column(self, name: str, *, dropna: bool = True) -> pd.Series:
        """One column as a Series indexed by step (canonical or original name; NaN dropped)."""
        series = self.frame[self._resolve(name)]
        return series.dropna() if dropna else series

    def series(self, column: str = "reward") -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one column as float64 arrays, non-finite rows dropped, by step.

        The one coercion of a run into arrays that fit, forecast and diagnose use. ``column``
        is a canonical or original name; a missing column raises ValueError naming it.
        """
        try:
            resolved = self._resolve(column)
        except KeyError:
            raise ValueError(
                f"column: {column!r} is not in this run; it has: "
                + ", ".join(map(str, self.frame.columns))
            ) from None
        t = self.frame.index.to_numpy(dtype=float)
        y = self.frame[resolved].to_numpy(dtype=float)
        keep = np.isfinite(t) & np.isfinite(y)
        return t[keep], y[keep]

    def __len__(self) -> int:
        return int(self._reward_mask.sum())

    def __repr__(self) -> str:
        steps = self.steps
        span = f"steps {steps[0]}..{steps[-1]}" if steps.size else "no finite reward"
        return (
            f"Run({self.name!r}, {len(self)} rewards, {span}, "
            f"columns={list(self.frame.columns)[:6]}{'...' if self.frame.shape[1] > 6 else ''}, "
            f"{len(self.warnings)} warnings)"
        )


def as_run(
    data: Run | pd.DataFrame | Mapping[str, Any] | Sequence[float] | np.ndarray,
    reward: Sequence[float] | np.ndarray | None = None,
) -> Run:
    """Coerce what a user holds into a :class:`Run` (the one entry point above io).

    Accepted: a Run (returned as is); a DataFrame indexed by step or with a ``step`` column
    and a ``reward`` column (canonical or aliased names, as in a CSV log); a mapping of
    column name -> array with ``step`` and ``reward``; or an array of steps with ``reward``
    given as the second argument. Anything else raises ValueError naming ``data``.
    """
    if isinstance(data, Run):
        if reward is not None:
            raise ValueError("reward: must be None when data is a Run (it has its own)")
        return data
    if isinstance(data, Mapping) and not isinstance(data, pd.DataFrame):
        data = pd.DataFrame({str(k): np.asarray(v) for k, v in data.items()})
    if isinstance(data, pd.DataFrame):
        if reward is not None:
            raise ValueError("reward: must be None when data is a DataFrame")
        frame = data
        if "step" in frame.columns:
            frame = frame.set_index("step")
        frame = frame.rename(columns=str)
        try:
            frame, _ = _canonical_columns(frame, [], [], "data")
        except LogFormatError as exc:
            raise ValueError(str(exc)) from None
        numeric = frame.apply(pd.to_numeric, errors="coerce")
        try:
            steps = np.asarray(numeric.index, dtype=float)
        except (TypeError, ValueError):
            raise ValueError("data: the step index must be numeric") from None
        if not np.all(np.isfinite(steps)) or np.any(steps != np.round(steps)):
            raise ValueError("data: steps must be finite integers")
        numeric = numeric.loc[:, [c for c in numeric.columns if numeric[c].notna().any()]]
        columns = {str(c): numeric[c].to_numpy(dtype=float) for c in numeric.columns}
        rewards = columns.pop("reward")
        order = np.argsort(steps, kind="stable")
        if np.any(np.diff(steps[order]) == 0):
            raise ValueError("data: steps must be unique")
        return Run.from_arrays(
            steps[order].astype(np.int64),
            rewards[order],
            **{k: v[order] for k, v in columns.items()},
        )
    if reward is None:
        raise ValueError(
            f"data: expected a Run, a DataFrame, a mapping of columns or steps with a reward "
            f"array; got {type(data).__name__} without reward"
        )
    t = np.asarray(data, dtype=float)
    y = np.asarray(reward, dtype=float)
    if t.ndim != 1 or y.ndim != 1:
        raise ValueError(f"reward: must be 1-D like the steps, got shapes {t.shape} and {y.shape}")
    if t.shape != y.shape:
        raise ValueError(f"reward: shape {y.shape} does not match the steps' shape {t.shape}")
    keep = np.isfinite(t)
    t, y = t[keep], y[keep]
    if np.any(t != np.round(t)):
        raise ValueError("data: steps must be integers")
    order = np.argsort(t, kind="stable")
    if np.any(np.diff(t[order]) == 0):
        raise ValueError("data: steps must be unique")
    return Run.from_arrays(t[order].astype(np.int64), y[order])


# ----------------------------------------------------------------------------------------------
# Records: every reader turns its file into (where, step or None, {name: value}) records.


@dataclass
class _Parsed:
    records: list[tuple[str, int | None, dict[str, float]]]
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    explicit_nan: bool = True  # NaN values are literal in the file (not 'not logged')
    step_source: str | None = None  # how steps were found when records carry none


# compiled once: _to_float runs for every logged value of a text log
_NUMBER = re.compile(
    r"\s*[-+]?(\d[\d,]*\.?\d*|\.\d+)([eE][-+]?\d+)?\s*|\s*[-+]?(nan|inf|infinity)\s*",
    flags=re.IGNORECASE,
)


def _to_float(value: Any) -> float | None:
    """A log value as a float, or None when it is not a number (strings, lists, dicts)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", "")) if _NUMBER.fullmatch(value) else None
        except ValueError:
            return None
    return None


def _step_value(value: Any, path: str, where: str, key: str) -> int:
    number = _to_float(value)
    if number is None or not math.isfinite(number) or number != round(number):
        raise LogFormatError(path, where, f"step field {key!r} is not an integer: {value!r}")
    return int(round(number))


def _find_step_key(keys: Iterable[str]) -> str | None:
    by_norm: dict[str, str] = {}
    for key in keys:
        by_norm.setdefault(str(key).strip().lower(), key)
    for name in _STEP_NAMES:
        if name in by_norm:
            return by_norm[name]
    return None


def _records_from_dicts(
    entries: Sequence[Any], path: str, label: str, skipped: dict[str, int]
) -> list[tuple[str, int | None, dict[str, float]]]:
    """Dict entries -> records; the step comes from the usual step keys, numbers only kept."""
    keys: dict[str, None] = {}
    for entry in entries:
        if isinstance(entry, dict):
            keys.update(dict.fromkeys(entry))
    step_key = _find_step_key(keys)
    records = []
    for position, entry in enumerate(entries):
        where = f"{label}[{position}]"
        if not isinstance(entry, dict):
            raise LogFormatError(path, where, f"expected an object, found {type(entry).__name__}")
        step = None
        if step_key is not None and entry.get(step_key) is not None:
            step = _step_value(entry[step_key], path, where, step_key)
        values: dict[str, float] = {}
        for key, value in entry.items():
            if key == step_key:
                continue
            if type(value) is float:  # the common case, checked first for speed
                values[key] = value
                continue
            number = _to_float(value)
            if number is None:
                if value is not None:
                    skipped[str(key)] = skipped.get(str(key), 0) + 1
                continue
            values[str(key)] = number
        records.append((where, step, values))
    return records


# ----------------------------------------------------------------------------------------------
# JSON (TRL trainer_state.json and the TRL-like files scripts write)


def _flat_scalars(source: Mapping[str, Any], into: dict[str, Any], prefix: str = "") -> None:
    for key, value in source.items():
        if isinstance(value, Mapping):
            if key in ("stateful_callbacks", "reward_breakdown"):
                continue
            _flat_scalars(value, into, prefix)
        elif isinstance(value, (str, int, float, bool)) and not isinstance(value, type(None)):
            into.setdefault(prefix + str(key), value)


def _parse_json_document(document: Any, path: str) -> _Parsed:
    skipped: dict[str, int] = {}
    metadata: dict[str, Any] = {}
    parsed: _Parsed
    if isinstance(document, list):
        parsed = _Parsed(_records_from_dicts(document, path, "entry", skipped))
    elif isinstance(document, dict):
        ours = document.get(_OUR_METADATA_KEY)
        list_keys = [k for k, v in document.items() if isinstance(v, list) and v]
        dict_lists = [k for k in list_keys if all(isinstance(e, dict) for e in document[k])]
        number_lists = [
            k for k in list_keys if all(_to_float(e) is not None or e is None for e in document[k])
        ]
        if "log_history" in document:
            history = document["log_history"]
            if not isinstance(history, list):
                raise LogFormatError(path, "key 'log_history'", "is not a list")
            records = _records_from_dicts(history, path, "log_history", skipped)
        elif dict_lists:
            # several lists of objects: the longest one is the per-step history
            key = max(dict_lists, key=lambda k: len(document[k]))
            records = _records_from_dicts(document[key], path, key, skipped)
        elif number_lists:
            records = _records_from_columns(document, number_lists, path)
        else:
            raise LogFormatError(
                path,
                "top level",
                "no per-step data: expected 'log_history', a list of objects or lists of numbers"
                f" (keys: {', '.join(map(str, document)) or 'none'})",
            )
        parsed = _Parsed(records)
        if isinstance(ours, Mapping):
            metadata = dict(ours)
        else:
            _flat_scalars({k: v for k, v in document.items() if not isinstance(v, list)}, metadata)
    else:
        raise LogFormatError(path, "top level", f"expected an object or a list, found {document!r}")
    if skipped:
        parsed.notes.append(
            "non-numeric fields skipped: " + ", ".join(f"{k} ({n}x)" for k, n in skipped.items())
        )
    parsed.metadata = metadata
    return parsed


def _records_from_columns(
    document: Mapping[str, Any], keys: list[str], path: str
) -> list[tuple[str, int | None, dict[str, float]]]:
    """A dict of equal-length lists (one list per metric) -> records."""
    lengths = {k: len(document[k]) for k in keys}
    if len(set(lengths.values())) != 1:
        raise LogFormatError(
            path,
            "top level",
            "metric lists have different lengths: "
            + ", ".join(f"{k}={n}" for k, n in lengths.items()),
        )
    step_key = _find_step_key(keys)
    records = []
    for position in range(next(iter(lengths.values()))):
        where = f"index {position}"
        step = None
        if step_key is not None:
            step = _step_value(document[step_key][position], path, f"key {step_key!r}", step_key)
        values = {}
        for key in keys:
            if key == step_key or document[key][position] is None:
                continue
            number = _to_float(document[key][position])
            if number is not None:
                values[key] = number
        records.append((where, step, values))
    return records


def _read_json(path: str, text: str) -> _Parsed:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data" and text.lstrip().startswith("{"):
            return _read_jsonl(path, text)  # JSON lines saved under a .json name
        # a cut file fails at its very end, or inside a string that runs to the end
        ended = error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string")
        state = "truncated" if ended else "invalid"
        raise LogFormatError(
            path, f"line {error.lineno} column {error.colno}", f"{state} JSON: {error.msg}"
        ) from None
    parsed = _parse_json_document(document, path)
    if isinstance(document, dict) and "log_history" not in document:
        parsed.notes.append("TRL-like JSON written by a script (no log_history)")
    return parsed


def _read_jsonl(path: str, text: str) -> _Parsed:
    entries: list[Any] = []
    metadata: dict[str, Any] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise LogFormatError(
                path, f"line {number} column {error.colno}", f"invalid JSON: {error.msg}"
            ) from None
        if not isinstance(entry, dict):
            raise LogFormatError(path, f"line {number}", "expected one JSON object per line")
        if set(entry) == {_OUR_METADATA_KEY}:
            metadata = dict(entry[_OUR_METADATA_KEY])
            continue
        entries.append(entry)
    skipped: dict[str, int] = {}
    records = _records_from_dicts(entries, path, "record", skipped)
    parsed = _Parsed(records, metadata=metadata)
    if skipped:
        parsed.notes.append(
            "non-numeric fields skipped: " + ", ".join(f"{k} ({n}x)" for k, n in skipped.items())
        )
    return parsed


# ----------------------------------------------------------------------------------------------
# CSV (W&B exports and pandas dumps)


def _read_csv(path: str, text: str) -> _Parsed:
    metadata: dict[str, Any] = {}
    body_lines = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if line.startswith("#"):
            match = re.match(r"#\s*" + _OUR_METADATA_KEY + r"\s*:\s*(.*)$", line.strip())
            if match:
                try:
                    metadata = json.loads(match.group(1))
                except json.JSONDecodeError as error:
                    raise LogFormatError(path, f"line {number}", f"bad metadata: {error}") from None
            continue
        body_lines.append(line)
    body = "".join(body_lines)
    if not body.strip():
        raise LogFormatError(path, None, "CSV has no header or rows")
    try:
        table = pd.read_csv(StringIO(body), sep="\t" if "\t" in body_lines[0] else ",")
    except (pd.errors.ParserError, ValueError) as error:
        raise LogFormatError(path, None, f"malformed CSV: {error}") from None
    columns = [str(c) for c in table.columns]
    # W&B chart exports name columns '<run name> - train/reward'; drop the shared run prefix
    prefixed = [c for c in columns if " - " in c]
    if prefixed and len(prefixed) >= len(columns) - 1:
        prefixes = {c.split(" - ", 1)[0] for c in prefixed}
        if len(prefixes) == 1:
            columns = [c.split(" - ", 1)[1] if " - " in c else c for c in columns]
    table.columns = columns
    notes = []
    keep = []
    for name in columns:
        if not pd.api.types.is_numeric_dtype(table[name]):
            converted = pd.to_numeric(table[name], errors="coerce")
            if converted.notna().sum() < table[name].notna().sum():
                notes.append(f"non-numeric column skipped: {name}")
                continue
            table[name] = converted
        keep.append(name)
    step_key = _find_step_key(keep)
    records: list[tuple[str, int | None, dict[str, float]]] = []
    for position, row in enumerate(table[keep].itertuples(index=False, name=None)):
        where = f"data row {position + 1}"
        values = {
            k: float(v) for k, v in zip(keep, row, strict=True) if k != step_key and not pd.isna(v)
        }
        step: int | None = None
        if step_key is not None:
            raw = row[keep.index(step_key)]
            if pd.isna(raw):
                records.append((where, None, values))
                continue
            step = _step_value(raw, path, where, step_key)
        records.append((where, step, values))
    parsed = _Parsed(records, metadata=metadata, notes=notes, explicit_nan=False)
    return parsed


# ----------------------------------------------------------------------------------------------
# Console logs: TRL's printed dicts, or 'step N ... Reward: x' lines


_TRL_DICT = re.compile(r"\{'[^{}\n]*\}")
_PAIR = re.compile(
    r"(?<![\w/])([A-Za-z_][\w/]*(?: [A-Za-z_][\w/]*)*)\s*[:=]\s*"
    r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)(?![\w.])",
    flags=re.IGNORECASE,
)
_EPOCH_STEP = re.compile(r"Epoch\s*:?\s*\[(\d+)/(\d+)\]\s*\((\d+)/(\d+)\)", re.IGNORECASE)
_STEP_WORD = re.compile(
    r"\b(?:global_step|step|iter|iteration)\b\s*[:=#]?\s*\[?(\d+)", re.IGNORECASE
)
_CONSOLE_META = {
    "batch_size": re.compile(r"Total train batch size[^=\n]*=\s*([\d,]+)"),
    "max_steps": re.compile(r"Total optimization steps\s*=\s*([\d,]+)"),
    "steps_per_epoch": re.compile(r"Num update steps per epoch\s*=\s*([\d,]+)"),
    "gradient_accumulation_steps": re.compile(r"Gradient Accumulation steps\s*=\s*([\d,]+)"),
    "group_size": re.compile(r"\bnum_generations\s*[=:]\s*(\d+)"),
    "model_name": re.compile(
        r"\bmodel(?:_name(?:_or_path)?)?\s*[=:]\s*([A-Za-z0-9][\w.\-]*/[\w.\-]+)"
    ),
}


def _is_reward_key(name: str) -> bool:
    return _normalise(name) in _COLUMN_ALIASES["reward"]


def _read_console(path: str, text: str) -> _Parsed:
    metadata: dict[str, Any] = {}
    for key, pattern in _CONSOLE_META.items():
        match = pattern.search(text)
        if match:
            value = match.group(1)
            metadata[key] = value if key == "model_name" else int(value.replace(",", ""))
    lines = [line.rstrip("\r") for line in text.split("\n")]  # numbered as editors do
    dict_records: list[tuple[str, int | None, dict[str, float]]] = []
    summary: dict[str, float] = {}
    for number, line in enumerate(lines, start=1):
        if "{'" not in line:
            continue
        for match in _TRL_DICT.finditer(line):
            try:
                entry = ast.literal_eval(match.group(0))
            except (ValueError, SyntaxError):
                continue
            if not isinstance(entry, dict):
                continue
            values = {
                str(k): v for k, v in ((k, _to_float(v)) for k, v in entry.items()) if v is not None
            }
            if any(_is_reward_key(k) for k in values):
                step = values.pop("step", None)
                dict_records.append((f"line {number}", None if step is None else int(step), values))
            elif set(values) & _SUMMARY_KEYS:
                summary.update(values)
    parsed = _Parsed([], metadata=metadata)
    if summary:
        metadata["train_summary"] = summary
    if dict_records:
        parsed.records = dict_records
        parsed.notes.append("console log of TRL metric dicts")
        if all(step is None for _, step, _ in dict_records):
            _steps_from_epochs(parsed, metadata)
        return parsed
    # 'Epoch:[1/1](12/9751), Reward: -1.2, KL_ref: 0.01, ...' or 'step 12 | reward=0.4 ...'
    for number, line in enumerate(lines, start=1):
        if "reward" not in line.lower():  # cheap filter before the pair regex
            continue
        pairs = [(k.strip(), v) for k, v in _PAIR.findall(line)]
        if not any(_is_reward_key(k) for k, _ in pairs):
            continue
        step = None
        epoch_match = _EPOCH_STEP.search(line)
        if epoch_match:
            epoch, _, inner, per_epoch = (int(g) for g in epoch_match.groups())
            step = (epoch - 1) * per_epoch + inner
        values = {}
        for key, value in pairs:
            if _normalise(key) in ("step", "global_step", "iter", "iteration"):
                step = int(float(value)) if step is None else step
                continue
            values[key] = float(value)
        if step is None:
            word = _STEP_WORD.search(line)
            step = int(word.group(1)) if word else None
        snippet = line.strip()[:48]
        parsed.records.append((f"line {number} ({snippet!r})", step, values))
    if not parsed.records:
        raise LogFormatError(
            path,
            None,
            "no metric lines found: expected TRL dicts ({'loss': ..., 'reward': ...}) or lines"
            " with 'step N' and 'reward: x'",
        )
    parsed.notes.append("console log of 'key: value' metric lines")
    return parsed


def _steps_from_epochs(parsed: _Parsed, metadata: Mapping[str, Any]) -> None:
    """TRL console dicts carry no step: recover it from the epoch fraction when possible."""
    per_epoch = metadata.get("steps_per_epoch")
    epochs = [values.get("epoch") for _, _, values in parsed.records]
    if per_epoch and all(e is not None for e in epochs):
        steps = [round(float(e) * per_epoch) for e in epochs]  # type: ignore[arg-type]
        # the epoch is printed to 4 significant digits: accept only an exact, increasing fit
        if all(b > a for a, b in zip(steps, steps[1:], strict=False)) and steps[0] >= 1:
            parsed.records = [(w, s, v) for (w, _, v), s in zip(parsed.records, steps, strict=True)]
            parsed.step_source = "step = round(epoch x update steps per epoch)"
            return
    parsed.records = [(w, i + 1, v) for i, (w, _, v) in enumerate(parsed.records)]
    parsed.step_source = "steps numbered 1..n in order of appearance"
    parsed.warnings.append(
        f"no step in the log: {parsed.step_source} (assumes one log line per step)"
    )


# ----------------------------------------------------------------------------------------------
# TensorBoard event files: TFRecord framing + the protobuf fields a scalar summary uses


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of TFRecord framing (RFC 3720 polynomial)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_CRC_TABLE_NP = np.asarray(_CRC_TABLE, dtype=np.uint32)


def _masked_crc_many(chunks: Sequence[bytes]) -> np.ndarray:
    """Masked CRC-32C of many byte strings at once: one NumPy step per byte position for all
    chunks of the same length (a pure-Python byte loop runs at ~2 MB/s)."""
    result = np.zeros(len(chunks), dtype=np.uint32)
    by_length: dict[int, list[int]] = {}
    for i, chunk in enumerate(chunks):
        by_length.setdefault(len(chunk), []).append(i)
    for length, members in by_length.items():
        block = np.frombuffer(b"".join(chunks[i] for i in members), dtype=np.uint8)
        block = block.reshape(len(members), length)
        crc = np.full(len(members), 0xFFFFFFFF, dtype=np.uint32)
        for column in range(length):
            crc = _CRC_TABLE_NP[(crc ^ block[:, column]) & 0xFF] ^ (crc >> np.uint32(8))
        crc ^= np.uint32(0xFFFFFFFF)
        masked = ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(0xA282EAD8)
        result[members] = masked
    return result


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(buffer: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buffer):
            raise ValueError("truncated varint")
        byte = buffer[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buffer: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message (value: int or bytes)."""
    out = []
    pos = 0
    size = len(buffer)
    while pos < size:
        key = buffer[pos]
        if key < 0x80:  # one-byte keys: every field we read (numbers < 16)
            pos += 1
        else:
            key, pos = _varint(buffer, pos)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length = buffer[pos] if pos < size else 0x80
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(buffer, pos)
            value: Any = buffer[pos : pos + length]
            pos += length
        elif wire == 0:
            value, pos = _varint(buffer, pos)
        elif wire == 1:
            value, pos = buffer[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buffer[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > size:
            raise ValueError("truncated protobuf field")
        out.append((number, wire, value))
    return out


def _tensor_scalar(buffer: bytes) -> float | str | None:
    """TensorProto -> its single value (float/double/int/string); None for anything else."""
    dtype = 0
    content = b""
    floats: list[float] = []
    strings: list[bytes] = []
    for number, wire, value in _fields(buffer):
        if number == 1 and wire == 0:
            dtype = value
        elif number == 4 and wire == 2:
            content = value
        elif number == 5:  # float_val, packed or not
            floats += (
                list(struct.unpack(f"<{len(value) // 4}f", value))
                if wire == 2
                else [struct.unpack("<f", value)[0]]
            )
        elif number == 6:  # double_val
            floats += (
                list(struct.unpack(f"<{len(value) // 8}d", value))
                if wire == 2
                else [struct.unpack("<d", value)[0]]
            )
        elif number in (7, 10) and wire == 0:  # int_val / int64_val, unpacked
            floats.append(float(value - (1 << 64) if value >= 1 << 63 else value))
        elif number in (7, 10) and wire == 2:  # packed ints
            pos = 0
            while pos < len(value):
                item, pos = _varint(value, pos)
                floats.append(float(item - (1 << 64) if item >= 1 << 63 else item))
        elif number == 8 and wire == 2:
            strings.append(value)
    if dtype == 7 and strings:
        return strings[0].decode("utf-8", "replace")
    if floats:
        return floats[0]
    formats = {1: "<f", 2: "<d", 3: "<i", 9: "<q", 19: "<e"}
    if content and dtype in formats and len(content) == struct.calcsize(formats[dtype]):
        return float(struct.unpack(formats[dtype], content)[0])
    return None


def _event_scalars(data: bytes) -> tuple[int | None, list[tuple[str, float | str]]]:
    step: int | None = None
    scalars: list[tuple[str, float | str]] = []
    for number, wire, value in _fields(data):
        if number == 2 and wire == 0:
            step = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 5 and wire == 2:  # Summary
            for vnum, vwire, summary_value in _fields(value):
                if vnum != 1 or vwire != 2:
                    continue
                tag = None
                scalar: float | str | None = None
                for fnum, fwire, item in _fields(summary_value):
                    if fnum == 1 and fwire == 2:
                        tag = item.decode("utf-8", "replace")
                    elif fnum == 2 and fwire == 5:
                        scalar = struct.unpack("<f", item)[0]
                    elif fnum == 8 and fwire == 2:
                        scalar = _tensor_scalar(item)
                if tag is not None and scalar is not None:
                    scalars.append((tag, scalar))
    return step, scalars


def _tfevents_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if "tfevents" in p.name and p.is_file())
    return [path]


def _read_tensorboard(path: str, raw: bytes | None = None) -> _Parsed:
    parsed = _Parsed([])
    files = _tfevents_files(Path(path))
    if not files:
        raise LogFormatError(
            path, None, "no trainer_state.json or TensorBoard event files (*tfevents*) here"
        )
    for file in files:
        data = raw if raw is not None and len(files) == 1 else file.read_bytes()
        label = str(file)
        # walk the framing first, then check every checksum at once (vectorised CRC)
        frames: list[tuple[int, int]] = []  # (offset, payload length)
        offset = 0
        while offset < len(data):
            if offset + 12 > len(data):
                parsed.warnings.append(
                    f"{file.name}: truncated record header at byte {offset} ignored"
                )
                break
            header = data[offset : offset + 8]
            (length,) = struct.unpack("<Q", header)
            if offset + 16 + length > len(data):
                if _masked_crc(header) != struct.unpack("<I", data[offset + 8 : offset + 12])[0]:
                    raise LogFormatError(
                        label,
                        f"record {len(frames)} (byte {offset})",
                        "bad length checksum: not a TFRecord file or corrupt",
                    )
                parsed.warnings.append(
                    f"{file.name}: last record truncated at byte {offset}; ignored (writer killed?)"
                )
                break
            frames.append((offset, length))
            offset += 16 + length
        headers = [data[o : o + 8] for o, _ in frames]
        stored = [struct.unpack("<I", data[o + 8 : o + 12])[0] for o, _ in frames]
        for record, ok in enumerate(_masked_crc_many(headers) == np.asarray(stored, np.uint32)):
            if not ok:
                where = f"record {record} (byte {frames[record][0]})"
                raise LogFormatError(
                    label, where, "bad length checksum: not a TFRecord file or corrupt"
                )
        # large records are images/graphs/histograms: not scalars, skipped unread
        small = [i for i, (_, length) in enumerate(frames) if length <= 65536]
        payloads = [data[frames[i][0] + 12 : frames[i][0] + 12 + frames[i][1]] for i in small]
        stored = [
            struct.unpack("<I", data[o + 12 + n : o + 16 + n])[0]
            for o, n in (frames[i] for i in small)
        ]
        checks = _masked_crc_many(payloads) == np.asarray(stored, np.uint32)
        for record, payload, ok in zip(small, payloads, checks, strict=True):
            where = f"record {record} (byte {frames[record][0]})"
            if not ok:
                raise LogFormatError(label, where, "bad data checksum: corrupt event file")
            try:
                step, scalars = _event_scalars(payload)
            except (ValueError, struct.error) as error:
                raise LogFormatError(label, where, f"malformed event: {error}") from None
            values: dict[str, float] = {}
            for tag, scalar in scalars:
                if isinstance(scalar, str):
                    if tag == _OUR_METADATA_KEY:
                        parsed.metadata = json.loads(scalar)
                    continue
                values[tag] = float(scalar)
            if values:
                step = 0 if step is None else step
                last = parsed.records[-1] if parsed.records else None
                # one event per tag: consecutive events of a step form one record, unless a tag
                # repeats (a restart logging the step again)
                if last is not None and last[1] == step and not (values.keys() & last[2].keys()):
                    last[2].update(values)
                else:
                    parsed.records.append((where, step, values))
    return parsed


def _pb_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _pb_field(number: int, wire: int, payload: bytes | int) -> bytes:
    key = _pb_varint((number << 3) | wire)
    if wire == 0:
        return key + _pb_varint(int(payload))
    if wire == 2:
        assert isinstance(payload, bytes)
        return key + _pb_varint(len(payload)) + payload
    assert isinstance(payload, bytes)
    return key + payload


def _tf_records(payloads: Sequence[bytes]) -> bytes:
    """Frame payloads as TFRecords: length, masked CRC of length, payload, masked CRC."""
    headers = [struct.pack("<Q", len(p)) for p in payloads]
    header_crcs = _masked_crc_many(headers).tolist()
    payload_crcs = _masked_crc_many(payloads).tolist()
    parts = []
    for header, header_crc, payload, payload_crc in zip(
        headers, header_crcs, payloads, payload_crcs, strict=True
    ):
        parts += [header, struct.pack("<I", header_crc), payload, struct.pack("<I", payload_crc)]
    return b"".join(parts)


def _scalar_event(step: int, wall_time: float, tag: str, value: float | str) -> bytes:
    plugin = "text" if isinstance(value, str) else "scalars"
    metadata = _pb_field(1, 2, _pb_field(1, 2, plugin.encode()))
    if isinstance(value, str):  # DT_STRING scalar
        tensor = _pb_field(1, 0, 7) + _pb_field(2, 2, b"") + _pb_field(8, 2, value.encode())
    else:  # DT_DOUBLE so that float64 values round-trip exactly (simple_value is float32)
        tensor = (
            _pb_field(1, 0, 2) + _pb_field(2, 2, b"") + _pb_field(6, 2, struct.pack("<d", value))
        )
    summary_value = (
        _pb_field(1, 2, tag.encode()) + _pb_field(9, 2, metadata) + _pb_field(8, 2, tensor)
    )
    summary = _pb_field(1, 2, summary_value)
    event = (
        _pb_field(1, 1, struct.pack("<d", wall_time))
        + _pb_field(2, 0, step)
        + _pb_field(5, 2, summary)
    )
    return event


# ----------------------------------------------------------------------------------------------
# Records -> Run


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _build_run(parsed: _Parsed, path: str, fmt: str) -> Run:
    warned = list(parsed.warnings)
    notes = list(parsed.notes)
    metadata = dict(parsed.metadata)
    records = parsed.records
    if not records:
        raise LogFormatError(path, None, "no per-step records found")

    # summary entries TRL writes at the end of training are metadata, not a step
    summary: dict[str, float] = dict(metadata.pop("train_summary", {}) or {})
    cleaned = []
    for where, step, values in records:
        extra = {k: v for k, v in values.items() if k in _SUMMARY_KEYS}
        if extra:
            summary.update(extra)
            values = {k: v for k, v in values.items() if k not in _SUMMARY_KEYS}
            if set(values) <= {"epoch"}:
                continue
        cleaned.append((where, step, values))
    records = cleaned
    if summary:
        metadata["train_summary"] = summary

    missing_step = [where for where, step, _ in records if step is None]
    if missing_step and len(missing_step) == len(records):
        records = [(w, i, v) for i, (w, _, v) in enumerate(records)]
        warned.append("no step column: rows numbered 0..n-1 in file order (spacing unknown)")
    elif missing_step:
        records = [r for r in records if r[1] is not None]
        warned.append(
            f"{len(missing_step)} entries with metrics but no step ignored "
            f"(first: {missing_step[0]})"
        )
    if parsed.step_source and not any("no step" in w for w in warned):
        notes.append(parsed.step_source)

    # merge train and eval entries on step; a metric logged twice with a new value is a restart
    rows: dict[int, dict[str, float]] = {}
    group_rows: tuple[dict[int, dict[str, float]], dict[int, dict[str, float]]] = ({}, {})
    repeated: set[int] = set()
    duplicates = 0
    last_step = None
    backwards = 0
    all_keys: dict[str, None] = {}
    for _, _, values in records:
        all_keys.update(dict.fromkeys(values))
    eval_keys = {k for k in all_keys if _is_eval(k)}
    for _, step, values in records:
        assert step is not None
        has_eval = not eval_keys.isdisjoint(values)
        if has_eval:
            # an eval entry's own 'epoch' stays with it, so it can never look like a restart
            parts = (
                {k: v for k, v in values.items() if k not in eval_keys and k != "epoch"},
                {k: v for k, v in values.items() if k in eval_keys or k == "epoch"},
            )
        else:
            parts = (values, {})
        if parts[0]:
            if last_step is not None and step < last_step:
                backwards += 1
            last_step = step
        for group, part in enumerate(parts):
            if not part:
                continue
            target = group_rows[group]
            existing = target.get(step)
            if existing is None:
                target[step] = dict(part)
            elif any(k in existing and not _same(existing[k], v) for k, v in part.items()):
                target[step] = dict(part)  # keep the last occurrence, whole
                repeated.add(step)
            else:
                if any(k in existing for k in part):
                    duplicates += 1
                existing.update(part)
    order = all_keys
    for group_row in group_rows:
        for step, part in group_row.items():
            rows.setdefault(step, {}).update(part)
    if repeated:
        ordered = sorted(repeated)
        warned.append(
            f"restart: {len(ordered)} steps logged more than once with different values "
            f"(steps {ordered[0]}..{ordered[-1]}); kept the last occurrence"
        )
    elif backwards:
        notes.append(f"entries out of step order {backwards} times; sorted by step")
    if duplicates:
        notes.append(f"{duplicates} identical repeated entries merged")

    # literal NaN / inf in the file
    if parsed.explicit_nan:
        nan_steps: dict[str, list[int]] = {}
        for step, row in rows.items():
            for key, value in row.items():
                if not math.isfinite(value):
                    nan_steps.setdefault(key, []).append(step)
        for key, steps in nan_steps.items():
            steps.sort()
            shown = ", ".join(map(str, steps[:5])) + (", ..." if len(steps) > 5 else "")
            warned.append(
                f"{key}: {len(steps)} non-finite value(s) (NaN/inf) at steps {shown}; kept as NaN"
            )

    steps_sorted = sorted(rows)
    columns = list(order)
    matrix = np.full((len(steps_sorted), len(columns)), np.nan)
    position = {c: j for j, c in enumerate(columns)}
    for i, step in enumerate(steps_sorted):
        for key, value in rows[step].items():
            matrix[i, position[key]] = value
    matrix[~np.isfinite(matrix)] = np.nan
    frame = pd.DataFrame(
        matrix,
        index=pd.Index(np.asarray(steps_sorted, dtype=np.int64), name="step"),
        columns=columns,
    )

    empty_columns = [c for c in frame.columns if frame[c].isna().all()]
    if empty_columns:
        frame = frame.drop(columns=empty_columns)
        notes.append("columns with no finite value dropped: " + ", ".join(empty_columns))

    frame, original = _canonical_columns(frame, warned, notes, path)

    empty_rows = frame.isna().all(axis=1)
    if empty_rows.any():
        warned.append(f"{int(empty_rows.sum())} rows with no finite value dropped")
        frame = frame.loc[~empty_rows]
    no_reward = frame["reward"].isna()
    eval_only = no_reward & frame[[c for c in frame if not _is_eval(c)]].drop(
        columns="reward"
    ).isna().all(axis=1)
    if (no_reward & ~eval_only).any():
        bad = frame.index[no_reward & ~eval_only]
        warned.append(
            f"reward missing or NaN at {len(bad)} logged steps (first {bad[0]}); "
            "those steps are left out of run.steps / run.reward"
        )
    if eval_only.any():
        notes.append(f"{int(eval_only.sum())} steps carry only eval metrics")
    reward = frame["reward"].dropna().to_numpy()
    if reward.size == 0:
        raise LogFormatError(path, "reward", "the reward column has no finite value")
    low, high = float(reward.min()), float(reward.max())
    if low < 0.0 or high > 1.0:
        notes.append(f"reward range [{low:.4g}, {high:.4g}] is outside [0, 1]; used as logged")

    metadata = _canonical_metadata(metadata, frame, notes)
    run = Run(
        frame=frame,
        original_names=original,
        metadata=metadata,
        source=path,
        warnings=warned,
        notes=notes,
        format=fmt,
    )
    interval = run.logging_interval
    if interval > 1:
        notes.append(f"reward logged every {interval} steps")
    gaps = np.diff(run.steps)
    if gaps.size and np.any(gaps != interval):
        notes.append(
            f"irregular logging: gaps between {int(gaps.min())} and {int(gaps.max())} steps"
        )
    missing = [c for c in CANONICAL_COLUMNS if c not in frame.columns]
    if missing:
        notes.append("absent canonical columns: " + ", ".join(missing))
    return run


def _canonical_columns(
    frame: pd.DataFrame, warned: list[str], notes: list[str], path: str
) -> tuple[pd.DataFrame, dict[str, str]]:
    normalised: dict[str, str] = {}
    for column in frame.columns:
        normalised.setdefault(_normalise(column), column)
    exact = set(frame.columns)
    rename: dict[str, str] = {}
    original: dict[str, str] = {}
    for canonical, aliases in _COLUMN_ALIASES.items():
        chosen: str | None
        if canonical in exact:
            chosen = canonical  # a column already named canonically is never displaced
        else:
            chosen = next(
                (normalised[a] for a in aliases if a in normalised and normalised[a] not in rename),
                None,
            )
        if (
            chosen is None
            or chosen in rename
            or (chosen != canonical and chosen in _COLUMN_ALIASES)
        ):
            continue
        rename[chosen] = canonical
        original[canonical] = chosen
    frame = frame.rename(columns=rename)

    if "reward" not in frame.columns:
        parts = sorted(
            c for c in frame.columns if re.fullmatch(r"rewards/[^/]+(/mean)?", _normalise(c))
        )
        if parts:
            frame = frame.assign(reward=frame[parts].sum(axis=1, skipna=False))
            original["reward"] = " + ".join(parts)
            warned.append(
                "no total reward column: reward = sum of per-function means " + " + ".join(parts)
            )
        elif "mean" in frame.columns:
            for canonical, bare in _BARE_REWARD.items():
                if bare in frame.columns and canonical not in frame.columns:
                    frame = frame.rename(columns={bare: canonical})
                    original[canonical] = bare
            warned.append(
                "reward taken from the column 'mean' (per-call reward summaries)"
                + (", reward_std from 'std'" if "reward_std" in original else "")
            )
        else:
            raise LogFormatError(
                path,
                "reward",
                "no reward column (looked for reward, rewards, rewards/<name>/mean, ...); "
                f"columns: {', '.join(map(str, frame.columns)) or 'none'}",
            )
    renamed = {c: o for c, o in original.items() if c != o}
    if renamed:
        notes.append("renamed: " + ", ".join(f"{o} -> {c}" for c, o in renamed.items()))
    return frame[_column_order(frame.columns)], original


def _canonical_metadata(raw: Mapping[str, Any], frame: pd.DataFrame, notes: list[str]) -> dict:
    metadata = dict(raw)
    by_norm: dict[str, Any] = {}
    for key, value in raw.items():
        by_norm.setdefault(_normalise(key), value)
    for canonical, aliases in _METADATA_ALIASES.items():
        if canonical in metadata:
            continue
        for alias in aliases:
            value = by_norm.get(alias)
            if value is None or isinstance(value, bool):
                continue
            if canonical == "model_name" and not isinstance(value, str):
                continue
            if canonical != "model_name" and _to_float(value) is None:
                continue
            metadata[canonical] = value
            break
    # per-call reward logs count the completions of each group
    if "group_size" not in metadata:
        for name in ("n_completions", "num_generations", "group_size"):
            if name in frame.columns:
                values = frame[name].dropna().unique()
                if values.size == 1 and values[0] == round(values[0]) and values[0] > 0:
                    metadata["group_size"] = int(values[0])
                    notes.append(f"group_size read from the constant column {name}")
                    break
    return metadata


# ----------------------------------------------------------------------------------------------
# Public readers


def _detect_format(path: Path, head: bytes) -> str:
    name = path.name.lower()
    if path.is_dir() or "tfevents" in name:
        return "tensorboard"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith(".json"):
        return "trl"
    if len(head) >= 12 and struct.unpack("<I", head[8:12])[0] == _masked_crc(head[:8]):
        return "tensorboard"
    text = head.decode("utf-8", "replace").lstrip()
    if text.startswith("{'"):
        return "console"  # a printed Python dict (TRL's console logging), not JSON
    if text.startswith(("{", "[")):
        first = text.splitlines()[0].strip() if text.splitlines() else ""
        if first.startswith("{") and first.endswith("}") and len(text.splitlines()) > 1:
            return "jsonl"
        return "trl"
    first_line = text.splitlines()[0] if text else ""
    if ("," in first_line or "\t" in first_line) and _find_step_key(
        c.strip() for c in re.split(r"[,\t]", first_line)
    ):
        return "csv"
    return "console"


def read_log(path: str | os.PathLike[str], *, format: str | None = None) -> Run:
    """Read one training log into a :class:`Run` (docs/io.md).

    ``format`` is one of "trl" (also "json": trainer_state.json, TRL-like JSON), "jsonl",
    "csv", "tensorboard" (an event file or a directory of them), "console"; by default it is
    told from the name and content. A directory holding ``trainer_state.json`` is read as that
    file. Everything done to the data is recorded in ``Run.warnings`` and issued as a
    :class:`GrpoLogWarning`. A file that cannot be read raises :class:`LogFormatError`
    naming the file and the line or key.
    """
    if format is not None and format not in _FORMATS:
        raise ValueError(f"format must be one of {', '.join(_FORMATS)}; got {format!r}")
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if file.is_dir() and format in (None, "trl", "json"):
        state = file / "trainer_state.json"
        if state.is_file():
            file = state
        elif format is not None:
            raise LogFormatError(str(path), None, "directory has no trainer_state.json")
    source = str(file)
    raw = b"" if file.is_dir() else file.read_bytes()
    if not file.is_dir() and not raw.strip():
        raise LogFormatError(source, None, "file is empty")
    fmt = format or _detect_format(file, raw[:4096])
    if fmt == "json":
        fmt = "trl"
    if fmt == "tensorboard":
        parsed = _read_tensorboard(source, None if file.is_dir() else raw)
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise LogFormatError(source, f"byte {error.start}", "not UTF-8 text") from None
        readers = {
            "trl": _read_json,
            "jsonl": _read_jsonl,
            "csv": _read_csv,
            "console": _read_console,
        }
        parsed = readers[fmt](source, text)
    if fmt == "trl" and file.parent.is_dir():
        _sibling_model_name(file.parent, parsed.metadata)
    run = _build_run(parsed, source, fmt)
    for message in run.warnings:
        warnings.warn(f"{source}: {message}", GrpoLogWarning, stacklevel=2)
    return run


def _sibling_model_name(directory: Path, metadata: dict[str, Any]) -> None:
    """A checkpoint directory's adapter/model config names the base model."""
    for name, key in (
        ("adapter_config.json", "base_model_name_or_path"),
        ("config.json", "_name_or_path"),
    ):
        candidate = directory / name
        if "model_name" in metadata or not candidate.is_file():
            continue
        try:
            value = json.loads(candidate.read_text()).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, str) and value:
            metadata["model_name"] = value


_LOG_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".log", ".txt", ".out")


def _expand(item: str | os.PathLike[str]) -> list[str]:
    text = os.fspath(item)
    path = Path(text)
    if path.is_dir():
        if (path / "trainer_state.json").is_file() or any(
            "tfevents" in p.name for p in path.iterdir()
        ):
            return [text]
        found = []
        for child in sorted(path.iterdir()):
            if child.is_file() and (
                child.suffix.lower() in _LOG_SUFFIXES or "tfevents" in child.name
            ):
                found.append(str(child))
            elif child.is_dir() and (
                (child / "trainer_state.json").is_file()
                or any("tfevents" in p.name for p in child.iterdir())
            ):
                found.append(str(child))
        return found
    if path.exists() or not _glob.has_magic(text):
        return [text]
    return sorted(_glob.glob(text, recursive=True))


def read_logs(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    format: str | None = None,
) -> list[tuple[str, Run | Exception]]:
    """Read many logs (files, directories, globs); never loses an item.

    Returns one ``(path, result)`` per file found, where ``result`` is a :class:`Run` or the
    exception that stopped that file (LogFormatError, FileNotFoundError, ...). A glob or
    directory that matches nothing gives ``(pattern, FileNotFoundError)``.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    results: list[tuple[str, Run | Exception]] = []
    for item in items:
        expanded = _expand(item)
        if not expanded:
            results.append(
                (os.fspath(item), FileNotFoundError(f"{os.fspath(item)}: no log files match"))
            )
            continue
        for path in expanded:
            try:
                results.append((path, read_log(path, format=format)))
            except Exception as error:  # noqa: BLE001 - a batch keeps every item's outcome
                results.append((path, error))
    return results


# ----------------------------------------------------------------------------------------------
# Writers


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
        wall_time = time.time()
        events = [
            _pb_field(1, 1, struct.pack("<d", wall_time)) + _pb_field(3, 2, b"brain.Event:2"),
            _scalar_event(
                0, wall_time, _OUR_METADATA_KEY, json.dumps(metadata, default=_json_default)
            ),
        ]
        for step, train, evals in _row_entries(run):
            for tag, value in {**train, **evals}.items():
                events.append(_scalar_event(step, wall_time, tag, value))
        target.write_bytes(_tf_records(events))
    return target
