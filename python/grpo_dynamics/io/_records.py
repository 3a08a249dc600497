"""Records: every reader turns its file into (where, step or None, {name: value}) records."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._aliases import _find_step_key, _is_eval
from ._errors import LogFormatError

# a record's kind, in logs that interleave training and evaluation records in one stream
_SPLIT_KEYS = ("type", "split", "mode", "phase")
_EVAL_SPLITS = frozenset({"eval", "evaluation", "val", "valid", "validation", "test"})
# keys under which some loggers nest a step's metrics ({"step": N, "data": {...}})
_NESTED_KEYS = ("data", "metrics")
# steps beyond 2**53 are not exact as float64 (Run.series) and overflow int64 soon after
_MAX_STEP = 2**53


@dataclass
class _Parsed:
    records: list[tuple[str, int | None, dict[str, float]]]
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    explicit_nan: bool = True  # NaN values are literal in the file (not 'not logged')
    step_source: str | None = None  # how steps were found when records carry none
    # a long all-numeric history kept as compact arrays instead of one dict per record
    columns: _Columns | None = None


@dataclass
class _Columns:
    """Records stored compactly: record i has the keys ``keysets[kinds[i]]`` with the values
    ``values[starts[i]:starts[i] + len(keys)]``; its step (the value of ``step_key``, which
    every record has) is ``steps[i]``, its metrics the other keys.
    """

    label: str  # records are named label[i], as _records_from_dicts names them
    step_key: str
    keysets: list[tuple[str, ...]]
    kinds: np.ndarray  # int64 index into keysets, one per record
    starts: np.ndarray  # int64 offset into values, one per record
    values: np.ndarray  # float64
    steps: np.ndarray  # int64

    def records(self) -> list[tuple[str, int | None, dict[str, float]]]:
        """The same records _records_from_dicts makes from the entries."""
        out: list[tuple[str, int | None, dict[str, float]]] = []
        values = self.values
        for i, (kind, start, step) in enumerate(
            zip(self.kinds.tolist(), self.starts.tolist(), self.steps.tolist(), strict=True)
        ):
            keys = self.keysets[kind]
            numbers = values[start : start + len(keys)].tolist()
            metrics = {k: v for k, v in zip(keys, numbers, strict=True) if k != self.step_key}
            out.append((f"{self.label}[{i}]", step, metrics))
        return out


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
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range (JSON allows any size)
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        try:
            return float(value.replace(",", "")) if _NUMBER.fullmatch(value) else None
        except ValueError:
            return None
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _step_value(value: Any, path: str, where: str, key: str) -> int:
    number = _to_float(value)
    if number is None or math.isnan(number) or (math.isfinite(number) and number != round(number)):
        raise LogFormatError(path, where, f"step field {key!r} is not an integer: {_short(value)}")
    if abs(number) > _MAX_STEP:
        raise LogFormatError(
            path, where, f"step field {key!r} is out of range (|step| <= 2**53): {_short(value)}"
        )
    return int(round(number))


def _records_from_dicts(
    entries: Sequence[Any], path: str, label: str, skipped: dict[str, int]
) -> list[tuple[str, int | None, dict[str, float]]]:
    """Dict entries -> records; the step comes from the usual step keys, numbers only kept."""
    keys: dict[str, None] = {}
    for entry in entries:
        if isinstance(entry, dict):
            keys.update(dict.fromkeys(entry))
    step_key = _find_step_key(keys)
    # checked per entry only when some entry has such a key (the common TRL case has none)
    split_keys = [k for k in _SPLIT_KEYS if k in keys]
    nested_keys = [k for k in _NESTED_KEYS if k in keys]
    records = []
    for position, entry in enumerate(entries):
        where = f"{label}[{position}]"
        if not isinstance(entry, dict):
            raise LogFormatError(path, where, f"expected an object, found {type(entry).__name__}")
        step = None
        if step_key is not None and entry.get(step_key) is not None:
            step = _step_value(entry[step_key], path, where, step_key)
        nested = [k for k in nested_keys if isinstance(entry.get(k), dict)]
        if nested:  # {"step": 3, "data": {"critic/score/mean": 0.4, ...}}: metrics one level down
            flat = {k: v for k, v in entry.items() if k not in nested}
            for key in nested:
                for name, value in entry[key].items():
                    flat.setdefault(str(name), value)
            entry = flat
        values: dict[str, float] = {}
        # a record that says it is an evaluation: its metrics are eval_ metrics
        split = next((entry[k] for k in split_keys if isinstance(entry.get(k), str)), None)
        prefix = "eval_" if split is not None and split.lower() in _EVAL_SPLITS else ""
        for key, value in entry.items():
            if key == step_key:
                continue
            if prefix and not _is_eval(key):
                key = prefix + str(key)
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
