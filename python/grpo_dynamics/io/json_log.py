"""JSON logs: TRL trainer_state.json and the TRL-like files scripts write (docs/io.md)."""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ._aliases import _OUR_METADATA_KEY, _find_step_key
from ._errors import LogFormatError
from ._records import _MAX_STEP, _Columns, _Parsed, _records_from_dicts, _step_value, _to_float
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
        metadata = _document_metadata(document)
    else:
        raise LogFormatError(path, "top level", f"expected an object or a list, found {document!r}")
    if skipped:
        parsed.notes.append(
            "non-numeric fields skipped: " + ", ".join(f"{k} ({n}x)" for k, n in skipped.items())
        )
    parsed.metadata = metadata
    return parsed


def _document_metadata(document: Mapping[str, Any]) -> dict[str, Any]:
    ours = document.get(_OUR_METADATA_KEY)
    if isinstance(ours, Mapping):
        return dict(ours)
    metadata: dict[str, Any] = {}
    _flat_scalars({k: v for k, v in document.items() if not isinstance(v, list)}, metadata)
    return metadata


_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, as json.decoder skips it


def _skip(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    return pos if match is None else match.end()


class _NotSimple(Exception):
    """The document is not one the streaming reader handles; json.loads reads it instead."""


# beyond this many distinct key sets a history is read the usual way (one dict per record)
_MAX_KEYSETS = 4096


def _stream_trainer_state(text: str) -> _Parsed | None:
    """A TRL trainer_state.json read without building its log_history as objects.

    The top-level object's other keys are decoded as usual; the log_history array is decoded
    one entry at a time, each entry's numbers appended to compact arrays and the entry freed
    at once, so the peak memory stays a small multiple of the file. Returns None for anything
    else (no log_history, non-numeric or stepless entries, invalid JSON, ...): the caller
    then reads the text with json.loads, which gives every other case and every error message
    exactly as before.
    """
    try:
        return _stream(text)
    except (_NotSimple, ValueError, TypeError, OverflowError, RecursionError, IndexError):
        return None


def _stream(text: str) -> _Parsed | None:
    decode = json.JSONDecoder().raw_decode  # json.loads's decoder, one value at a time
    pos = _skip(text, 0)
    if text[pos : pos + 1] != "{":
        return None
    pos = _skip(text, pos + 1)
    document: dict[str, Any] = {}
    columns: _Columns | None = None
    while True:
        if text[pos : pos + 1] != '"':
            return None
        key, pos = decode(text, pos)
        pos = _skip(text, pos)
        if text[pos : pos + 1] != ":":
            return None
        pos = _skip(text, pos + 1)
        if key == "log_history":
            if columns is not None or key in document or text[pos : pos + 1] != "[":
                return None
            columns, pos = _stream_history(text, pos + 1, decode)
            document[key] = []  # keeps the key's place; its records are in columns
        else:
            document[key], pos = decode(text, pos)
        pos = _skip(text, pos)
        delimiter = text[pos : pos + 1]
        pos = _skip(text, pos + 1)
        if delimiter == "}":
            break
        if delimiter != ",":
            return None
    if pos != len(text) or columns is None:
        return None
    parsed = _Parsed([], columns=columns)
    parsed.metadata = _document_metadata(document)
    return parsed


def _stream_history(
    text: str, pos: int, decode: Callable[[str, int], tuple[Any, int]]
) -> tuple[_Columns, int]:
    """Entries of the log_history array from ``pos`` (just after its '[') -> compact columns."""
    keysets: list[tuple[str, ...]] = []
    kind_of: dict[tuple[str, ...], int] = {}
    kinds = array("q")
    starts = array("q")
    values = array("d")
    pos = _skip(text, pos)
    if text[pos : pos + 1] == "]":
        raise _NotSimple  # an empty history: the usual reader says so
    while True:
        entry, pos = decode(text, pos)
        if type(entry) is not dict:
            raise _NotSimple
        keys = tuple(entry)
        kind = kind_of.get(keys)
        if kind is None:
            if len(keysets) == _MAX_KEYSETS:
                raise _NotSimple
            kind = kind_of[keys] = len(keysets)
            keysets.append(keys)
        kinds.append(kind)
        starts.append(len(values))
        values.extend(entry.values())  # TypeError for None, text, lists, objects
        del entry
        pos = _skip(text, pos)
        delimiter = text[pos : pos + 1]
        pos = _skip(text, pos + 1)
        if delimiter == "]":
            break
        if delimiter != ",":
            raise _NotSimple
    union: dict[str, None] = {}
    for keys in keysets:
        union.update(dict.fromkeys(keys))
    step_key = _find_step_key(union)
    if step_key is None or any(step_key not in keys for keys in keysets):
        raise _NotSimple  # records without steps: the usual reader numbers or drops them
    kind_array = np.frombuffer(kinds, dtype=np.int64)
    start_array = np.frombuffer(starts, dtype=np.int64)
    value_array = np.frombuffer(values, dtype=np.float64)
    step_at = np.array([keys.index(step_key) for keys in keysets], dtype=np.int64)
    step_positions = start_array + step_at[kind_array]
    steps = value_array[step_positions]
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(steps) & (steps == np.round(steps)) & (np.abs(steps) <= _MAX_STEP)
    if not whole.all():
        raise _NotSimple  # the usual reader names the entry with the bad step
    columns = _Columns(
        label="log_history",
        step_key=step_key,
        keysets=keysets,
        kinds=kind_array,
        starts=start_array,
        values=value_array,
        steps=steps.astype(np.int64),
    )
    return columns, pos


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
    streamed = _stream_trainer_state(text)
    if streamed is not None:
        return streamed
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
