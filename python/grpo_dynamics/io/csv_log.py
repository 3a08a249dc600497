"""CSV/TSV logs: W&B exports and pandas dumps (docs/io.md)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from io import StringIO
from typing import Any

import numpy as np
import pandas as pd

from ._aliases import _OUR_METADATA_KEY, _find_step_key
from ._errors import LogFormatError
from ._records import _Parsed, _step_value


def _read_csv(path: str, text: str, select: Mapping[str, str] | None = None) -> _Parsed:
    """A CSV/TSV table -> records (docs/io.md, "CSV").

    ``select`` keeps the rows whose columns equal the given values (one run of a file that
    holds several); without it, a file whose rows form several runs told apart by a text column
    gives the first run, with a warning naming the column and its values.
    """
    return _one_run(path, _parse_csv(path, text), select)


@dataclass
class _CsvTable:
    """A CSV file parsed once: its table (a W&B export of runs side by side already turned
    into rows), the file line of each row, the metadata of its comment line and the column
    telling its runs apart when the writer says so (W&B's ``run``), else None (unknown yet)."""

    table: pd.DataFrame
    rows_at: np.ndarray
    metadata: dict[str, Any]
    label: str | None


def _one_run(path: str, csv: _CsvTable, select: Mapping[str, str] | None) -> _Parsed:
    """The records of the run ``select`` names (or the first run, with a warning) of a parsed
    file."""
    warned: list[str] = []
    table, rows_at = _select_run(
        csv.table, csv.rows_at, select, path, csv.metadata, warned, csv.label
    )
    return _records(path, table, rows_at, csv.metadata, warned)


def _parse_csv(path: str, text: str) -> _CsvTable:
    """The text of a CSV/TSV log -> its table: metadata comment, pandas' parse, W&B prefixes."""
    metadata: dict[str, Any] = {}
    body_lines = []
    line_numbers = []  # file line of each non-blank body line (header first)
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
        if line.strip():
            line_numbers.append(number)
    body = "".join(body_lines)
    if not body.strip():
        raise LogFormatError(path, None, "CSV has no header or rows")
    try:
        table = pd.read_csv(StringIO(body), sep="\t" if "\t" in body_lines[0] else ",")
    except (pd.errors.ParserError, ValueError) as error:
        raise LogFormatError(path, None, f"malformed CSV: {error}") from None
    columns = [str(c) for c in table.columns]
    # file line of each data row (quoted line breaks inside a cell would shift these)
    rows_at = np.asarray(line_numbers[1:], dtype=np.int64)
    if rows_at.size != len(table):
        rows_at = np.arange(len(table), dtype=np.int64) + (line_numbers[0] + 1)
    # W&B chart exports name columns '<run name> - train/reward'; drop a prefix shared by all
    # columns, and turn several runs side by side into rows told apart by a 'run' column
    prefixed = [c for c in columns if " - " in c]
    wide_runs: list[str] = []
    if prefixed and len(prefixed) >= len(columns) - 1:
        prefixes = list(dict.fromkeys(c.split(" - ", 1)[0] for c in prefixed))
        if len(prefixes) == 1:
            columns = [c.split(" - ", 1)[1] if " - " in c else c for c in columns]
        elif _WIDE_RUN_COLUMN not in columns:
            table.columns = columns
            table, rows_at = _wide_to_long(table, rows_at, prefixes)
            columns = [str(c) for c in table.columns]
            wide_runs = prefixes
    table.columns = columns
    return _CsvTable(table, rows_at, metadata, _WIDE_RUN_COLUMN if wide_runs else None)


def _records(
    path: str,
    table: pd.DataFrame,
    rows_at: np.ndarray,
    metadata: dict[str, Any],
    warned: list[str],
) -> _Parsed:
    """The rows of one run -> records: text columns skipped (or their few bad cells read as
    NaN, each named by its file line), the step column found."""
    columns = [str(c) for c in table.columns]
    notes = []
    keep = []
    for name in columns:
        if not pd.api.types.is_numeric_dtype(table[name]):
            present = table[name].notna().to_numpy()
            converted = pd.to_numeric(table[name], errors="coerce")
            bad = present & converted.isna().to_numpy()
            numeric = int(present.sum() - bad.sum())
            if numeric == 0 or numeric < bad.sum():
                notes.append(f"non-numeric column skipped: {name}")
                continue
            # a few bad cells in a numeric column: NaN there, the column kept (none here when
            # the text was in another run's rows of the file: nothing to say then)
            if bad.any():
                cells = [
                    f"line {line} ({value!r})"
                    for line, value in zip(
                        rows_at[bad][:5], table[name].to_numpy()[bad][:5], strict=True
                    )
                ]
                more = f" and {int(bad.sum()) - 5} more" if bad.sum() > 5 else ""
                warned.append(
                    f"column {name!r}: {int(bad.sum())} non-numeric cell(s) read as NaN at "
                    + ", ".join(cells)
                    + more
                )
            table[name] = converted
        keep.append(name)
    step_key = _find_step_key(keep)
    records: list[tuple[str, int | None, dict[str, float]]] = []
    for line, row in zip(rows_at, table[keep].itertuples(index=False, name=None), strict=True):
        where = f"line {line}"
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
    return _Parsed(records, metadata=metadata, warnings=warned, notes=notes, explicit_nan=False)


def _split_csv(
    path: str, text: str
) -> tuple[_Parsed | None, str, list[tuple[str, Callable[[], _Parsed]]]]:
    """A CSV parsed once, for reading every run it holds (read_logs(split_runs=True)).

    Returns ``(parsed, label, runs)``: for a file of one run, its records and ``("", [])``;
    for a file of several, ``(None, label column, [(value, make records), ...])`` in order of
    first appearance, each ``make`` giving exactly what ``_read_csv(path, text, {label:
    value})`` gives (the rows of one run are cut from the one parsed table by position, in file
    order; each call builds its own records, warnings and metadata). A run that fails to
    read raises from its own ``make`` only.
    """
    csv = _parse_csv(path, text)
    label = csv.label if csv.label is not None else _run_label_column(csv.table)
    if label is None:  # one run (csv.label is None too)
        return _one_run(path, csv, None), "", []
    codes, values = pd.factorize(csv.table[label].astype(str), sort=False)
    order = np.argsort(codes, kind="stable")  # each run's rows together, in file order
    ends = np.cumsum(np.bincount(codes, minlength=len(values)))

    def make(first: int, last: int, value: str) -> Callable[[], _Parsed]:
        def records() -> _Parsed:
            rows = order[first:last]
            metadata = copy.deepcopy(csv.metadata)
            metadata["selected"] = {label: value}
            part = csv.table.iloc[rows].reset_index(drop=True)
            return _records(path, part, csv.rows_at[rows], metadata, [])

        return records

    starts = np.concatenate([[0], ends[:-1]])
    runs = [
        (str(value), make(int(a), int(b), str(value)))
        for value, a, b in zip(values, starts, ends, strict=True)
    ]
    return None, label, runs


_WIDE_RUN_COLUMN = "run"  # the label column of a W&B export with several runs side by side


def _wide_to_long(
    table: pd.DataFrame, rows_at: np.ndarray, prefixes: list[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    """W&B's '<run> - <metric>' columns of several runs -> one block of rows per run, labelled
    by a 'run' column; a run's rows are those where it logged something."""
    shared = [c for c in table.columns if " - " not in c]
    parts, lines = [], []
    for prefix in prefixes:
        own = {c: c.split(" - ", 1)[1] for c in table.columns if c.startswith(prefix + " - ")}
        part = table[shared + list(own)].rename(columns=own)
        logged = part[list(own.values())].notna().any(axis=1).to_numpy()
        part = part.loc[logged]
        part.insert(0, _WIDE_RUN_COLUMN, prefix)
        parts.append(part)
        lines.append(rows_at[logged])
    return pd.concat(parts, ignore_index=True), np.concatenate(lines)


def _select_run(
    table: pd.DataFrame,
    rows_at: np.ndarray,
    select: Mapping[str, str] | None,
    path: str,
    metadata: dict[str, Any],
    warned: list[str],
    label: str | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of one run: those ``select`` names, or the first run of a multi-run file, whose
    runs are told apart by the column ``label`` when the caller knows it, else by a text column
    found here."""
    if select:
        mask = np.ones(len(table), dtype=bool)
        for key, value in select.items():
            if key not in table.columns:
                raise LogFormatError(
                    path,
                    f"select {key!r}",
                    "no such column; columns: " + ", ".join(map(str, table.columns)),
                )
            mask &= (table[key].astype(str) == str(value)).to_numpy()
        if not mask.any():
            key = next(iter(select))
            shown = ", ".join(repr(v) for v in pd.unique(table[key].astype(str))[:10])
            raise LogFormatError(
                path, f"select {dict(select)!r}", f"no row matches; values of {key!r}: {shown}"
            )
        metadata["selected"] = {str(k): str(v) for k, v in select.items()}
        return table.loc[mask].reset_index(drop=True), rows_at[mask]
    if label is None:
        label = _run_label_column(table)
        if label is None:
            return table, rows_at
    text = table[label].astype(str)
    labels = [str(v) for v in pd.unique(text)]
    shown = ", ".join(repr(v) for v in labels[:10])
    warned.append(
        f"the file holds {len(labels)} runs told apart by column {label!r} ({shown}); "
        f"read the first, {labels[0]!r} (choose one with select={{{label!r}: ...}})"
    )
    metadata["selected"] = {label: labels[0]}
    metadata["runs_in_file"] = {label: labels}
    mask = (text == labels[0]).to_numpy()
    return table.loc[mask].reset_index(drop=True), rows_at[mask]


def _run_label_column(table: pd.DataFrame) -> str | None:
    """The text column that tells the runs of a multi-run file apart: steps repeat, and this
    column has a few values within each of which the step is unique; None for one run."""
    step_key = _find_step_key(str(c) for c in table.columns)
    if step_key is None or not table[step_key].duplicated().any():
        return None
    for name in table.columns:
        column = table[name]
        if pd.api.types.is_numeric_dtype(column) or column.isna().any():
            continue
        n_labels = len(pd.unique(column.astype(str)))
        if 1 < n_labels <= len(table) // 2 and not table.duplicated([name, step_key]).any():
            return str(name)
    return None
