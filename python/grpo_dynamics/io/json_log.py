"""JSON logs: TRL trainer_state.json and the TRL-like files scripts write (docs/io.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._aliases import _OUR_METADATA_KEY, _find_step_key
from ._errors import LogFormatError
from ._records import _Parsed, _records_from_dicts, _step_value, _to_float
from .jsonl_log import _read_jsonl


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
