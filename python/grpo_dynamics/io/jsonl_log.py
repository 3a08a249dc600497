"""JSON-lines logs: one JSON object per line (W&B-style exports, script loggers)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._aliases import _OUR_METADATA_KEY
from ._errors import LogFormatError
from ._records import _Parsed, _records_from_dicts


def _read_jsonl(path: str, text: str, select: Mapping[str, str] | None = None) -> _Parsed:
    """One JSON object per line -> records (docs/io.md, "JSONL").

    A last line cut short (the writer was killed mid-line) is dropped with a warning naming
    it; a bad line anywhere else is an error. ``select`` keeps the objects whose fields equal
    the given values (one run of a file that holds several).
    """
    entries: list[Any] = []
    metadata: dict[str, Any] = {}
    warned: list[str] = []
    lines = text.split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            ended = error.pos >= len(line.rstrip()) or error.msg.startswith("Unterminated string")
            if number - 1 == last and ended:
                warned.append(
                    f"line {number}: last line cut short ({error.msg}); ignored, "
                    f"the {len(entries)} records before it kept (writer killed?)"
                )
                break
            raise LogFormatError(
                path, f"line {number} column {error.colno}", f"invalid JSON: {error.msg}"
            ) from None
        if not isinstance(entry, dict):
            raise LogFormatError(path, f"line {number}", "expected one JSON object per line")
        if set(entry) == {_OUR_METADATA_KEY}:
            metadata = dict(entry[_OUR_METADATA_KEY])
            continue
        entries.append(entry)
    if select:
        entries = _select_entries(entries, select, path, metadata)
    skipped: dict[str, int] = {}
    records = _records_from_dicts(entries, path, "record", skipped)
    parsed = _Parsed(records, metadata=metadata, warnings=warned)
    if skipped:
        parsed.notes.append(
            "non-numeric fields skipped: " + ", ".join(f"{k} ({n}x)" for k, n in skipped.items())
        )
    return parsed


def _select_entries(
    entries: list[Any], select: Mapping[str, str], path: str, metadata: dict[str, Any]
) -> list[Any]:
    """The objects whose fields equal ``select``'s values (compared as text)."""
    for key in select:
        if not any(isinstance(e, dict) and key in e for e in entries):
            raise LogFormatError(path, f"select {key!r}", "no record has this field")
    chosen = [
        e
        for e in entries
        if isinstance(e, dict) and all(str(e.get(k)) == str(v) for k, v in select.items())
    ]
    if not chosen:
        key = next(iter(select))
        values = list(dict.fromkeys(str(e.get(key)) for e in entries if isinstance(e, dict)))
        shown = ", ".join(repr(v) for v in values[:10])
        raise LogFormatError(
            path, f"select {dict(select)!r}", f"no record matches; values of {key!r}: {shown}"
        )
    metadata["selected"] = {str(k): str(v) for k, v in select.items()}
    return chosen
