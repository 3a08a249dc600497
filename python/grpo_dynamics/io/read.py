"""read_log / read_logs: format detection and dispatch to the per-format readers."""

from __future__ import annotations

import glob as _glob
import json
import os
import re
import struct
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._aliases import _FORMATS, _find_step_key
from ._errors import GrpoLogWarning, LogFormatError
from ._normalize import _build_run
from ._records import _Parsed
from .run import Run

__all__ = ["read_log", "read_logs"]


# a JSON array starts with a value: object, array, string, literal, or a number then ',' or ']'
_JSON_ARRAY = re.compile(
    r'\[\s*(?:[\[{"\]]|true|false|null|-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?\s*[,\]])'
)


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
    if len(head) >= 12 and _framed(head):
        return "tensorboard"
    text = head.decode("utf-8", "replace").lstrip()
    if text.startswith("{'"):
        return "console"  # a printed Python dict (TRL's console logging), not JSON
    # '[2025-12-12 13:59:45,818] [INFO] ...' is a console log, not a JSON array
    if text.startswith("{") or _JSON_ARRAY.match(text):
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


def _framed(head: bytes) -> bool:
    """True when the first 12 bytes are a TFRecord header (length + its masked CRC)."""
    from .tensorboard import _masked_crc

    return bool(struct.unpack("<I", head[8:12])[0] == _masked_crc(head[:8]))


def _decode(source: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LogFormatError(source, f"byte {error.start}", "not UTF-8 text") from None


def _parse(
    fmt: str, source: str, raw: bytes, is_dir: bool, select: Mapping[str, str] | None
) -> _Parsed:
    """Run the reader of one format; its module is imported here, only when needed."""
    try:
        if fmt == "tensorboard":
            from .tensorboard import _read_tensorboard

            return _read_tensorboard(source, None if is_dir else raw)
        text = _decode(source, raw)
        if fmt == "trl":
            from .json_log import _read_json

            return _read_json(source, text)
        if fmt == "jsonl":
            from .jsonl_log import _read_jsonl

            return _read_jsonl(source, text, select)
        if fmt == "csv":
            from .csv_log import _read_csv

            return _read_csv(source, text, select)
        from .console import _read_console

        return _read_console(source, text)
    except RecursionError:
        raise LogFormatError(
            source, None, "nested too deeply to read (more levels than Python's recursion limit)"
        ) from None


def _open(
    path: str | os.PathLike[str], format: str | None, select: Mapping[str, str] | None
) -> tuple[Path, str, bytes, str]:
    """Check the arguments, find the file and its format: (file, source name, bytes, format)."""
    if select is not None and (
        not isinstance(select, Mapping) or not select or not all(isinstance(k, str) for k in select)
    ):
        raise ValueError(f"select: must be a non-empty mapping of column -> value, got {select!r}")
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
    if select is not None and fmt not in ("csv", "jsonl"):
        raise ValueError(f"select: only CSV and JSONL logs hold several runs, got format {fmt!r}")
    return file, source, raw, fmt


def _finish(parsed: _Parsed, file: Path, source: str, fmt: str) -> Run:
    """Records -> Run, each of its warnings issued as a GrpoLogWarning (for the caller of the
    public function that called this)."""
    if fmt == "trl" and file.parent.is_dir():
        _sibling_model_name(file.parent, parsed.metadata)
    run = _build_run(parsed, source, fmt)
    for message in run.warnings:
        warnings.warn(f"{source}: {message}", GrpoLogWarning, stacklevel=3)
    return run


def read_log(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    select: Mapping[str, str] | None = None,
) -> Run:
    """Read one training log into a :class:`Run` (docs/io.md).

    ``format`` is one of "trl" (also "json": trainer_state.json, TRL-like JSON), "jsonl",
    "csv", "tensorboard" (an event file or a directory of them), "console" (verl's
    ``step:N - name:value`` lines, TRL's printed dicts, ``key: value`` lines); by default it is
    told from the name and content. A directory holding ``trainer_state.json`` is read as that
    file. Everything done to the data is recorded in ``Run.warnings`` and issued as a
    :class:`GrpoLogWarning`. A file that cannot be read raises :class:`LogFormatError`
    naming the file and the line or key.

    ``select`` picks one run of a CSV or JSONL file that holds several: ``{"arm": "control"}``
    keeps the rows whose ``arm`` column equals ``"control"`` (values compared as text). Without
    it such a CSV gives its first run, with a warning naming the column and the runs.
    """
    file, source, raw, fmt = _open(path, format, select)
    parsed = _parse(fmt, source, raw, file.is_dir(), select)
    return _finish(parsed, file, source, fmt)


def _read_split(path: str, format: str | None, results: list[tuple[str, Run | Exception]]) -> None:
    """Every run of one file onto ``results``: one item for a file of one run (what read_log
    gives), one ``path[column=value]`` item per run of a multi-run CSV, each what
    ``read_log(path, select={column: value})`` gives. The file is read and parsed once; its
    runs are cut from the parsed table."""
    file, source, raw, fmt = _open(path, format, None)
    if fmt != "csv":
        parsed = _parse(fmt, source, raw, file.is_dir(), None)
        results.append((path, _finish(parsed, file, source, fmt)))
        return
    from .csv_log import _split_csv

    single, column, runs = _split_csv(source, _decode(source, raw))
    if single is not None:
        results.append((path, _finish(single, file, source, fmt)))
        return
    for value, records in runs:
        name = f"{path}[{column}={value}]"
        try:
            results.append((name, _finish(records(), file, source, fmt)))
        except Exception as error:  # noqa: BLE001 - a batch keeps every item's outcome
            results.append((name, error))


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
        children = sorted(path.iterdir())
        run_files = [c for c in children if c.name == "trainer_state.json" or "tfevents" in c.name]
        other_logs = [
            c
            for c in children
            if c.is_file() and c.suffix.lower() in _LOG_SUFFIXES and c not in run_files
        ]
        if run_files and not other_logs:
            return [text]  # a checkpoint or TensorBoard directory: one run
        # a folder of logs (event files among them are read one by one): never one opaque run
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
    select: Mapping[str, str] | None = None,
    split_runs: bool = False,
) -> list[tuple[str, Run | Exception]]:
    """Read many logs (files, directories, globs); never loses an item.

    Returns one ``(path, result)`` per file found, where ``result`` is a :class:`Run` or the
    exception that stopped that file (LogFormatError, FileNotFoundError, ...). A glob or
    directory that matches nothing gives ``(pattern, FileNotFoundError)``.

    ``select`` is passed to :func:`read_log` for every file (one run of multi-run CSV/JSONL
    files). With ``split_runs=True`` (and no ``select``), a CSV file that holds several runs
    told apart by a text column gives one item per run, named ``"path[column=value]"``, instead
    of its first run only: each what ``read_log(path, select={column: value})`` gives, the file
    read and parsed once (a run that cannot be read is its own error item).
    """
    if split_runs and select is not None:
        raise ValueError("split_runs: must be False when select names one run, got True")
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
                if split_runs:
                    _read_split(path, format, results)
                else:
                    results.append((path, read_log(path, format=format, select=select)))
            except Exception as error:  # noqa: BLE001 - a batch keeps every item's outcome
                results.append((path, error))
    return results
