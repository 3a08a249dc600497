"""JSON-lines logs: one JSON object per line (W&B-style exports, script loggers)."""

from __future__ import annotations

import json
from typing import Any

from ._aliases import _OUR_METADATA_KEY
from ._errors import LogFormatError
from ._records import _Parsed, _records_from_dicts


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
