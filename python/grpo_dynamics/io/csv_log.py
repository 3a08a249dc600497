"""CSV/TSV logs: W&B exports and pandas dumps (docs/io.md)."""

from __future__ import annotations

import json
import re
from io import StringIO
from typing import Any

import pandas as pd

from ._aliases import _OUR_METADATA_KEY, _find_step_key
from ._errors import LogFormatError
from ._records import _Parsed, _step_value


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
