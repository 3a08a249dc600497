"""Follow a growing training log and keep one status block up to date (docs/monitor.md).

``watch(path)`` polls a log file that a trainer is writing (console log, JSONL, CSV, or TRL's
``trainer_state.json`` rewritten at every checkpoint), feeds the rows it has not seen yet to a
:class:`~grpo_dynamics.monitor.Monitor` and redraws a few lines: current reward, trend,
forecast with band, findings. It returns when the file has not changed for ``idle_timeout``
seconds, or on Ctrl-C; ``once=True`` prints the current state and returns at once.

Every poll re-reads the whole file with ``read_log`` (any format it reads), which keeps the
follow logic format-free; rows at or before the last step already fed are skipped. A line
log whose last line is still being written is read up to its last complete line; any other
file that does not parse yet (a JSON document mid-rewrite) is retried at its next change.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal, TextIO

import numpy as np

from .io import Run, read_log
from .monitor import Monitor

__all__ = ["watch"]


def _rows(run: Run, after: int | None) -> Iterator[tuple[int, Mapping[str, object]]]:
    """(step, {column: value}) of the rows after step ``after``, finite values only."""
    frame = run.frame if after is None else run.frame[run.frame.index > after]
    names = [str(c) for c in frame.columns]
    values = frame.to_numpy(dtype=float, na_value=np.nan)
    for step, row in zip(frame.index.to_numpy(dtype=np.int64), values, strict=True):
        yield int(step), {names[j]: float(row[j]) for j in np.flatnonzero(np.isfinite(row))}


def _read(file: Path, format: str | None) -> Run:
    """read_log, and for a line-oriented log whose writer is mid-line, the complete lines."""
    try:
        return read_log(file, format=format)
    except ValueError:
        data = file.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut == 0 or cut == len(data):
            raise
    # the last line is still being written: read everything before it (same name, so the
    # format is detected as for the file itself)
    with tempfile.TemporaryDirectory(prefix="grpo-dynamics-watch-") as directory:
        complete = Path(directory) / file.name
        complete.write_bytes(data[:cut])
        return read_log(complete, format=format)


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


class _Screen:
    """One status block, redrawn in place on a terminal, appended when it changed elsewhere."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.drawn: list[str] = []

    def draw(self, lines: list[str]) -> None:
        if lines == self.drawn:
            return
        if self.tty and self.drawn:
            # cursor to the first line of the previous block, then clear to the end
            self.out.write(f"\x1b[{len(self.drawn)}F\x1b[J")
        elif self.drawn:
            self.out.write("\n")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self.drawn = list(lines)


def watch(
    path: str | os.PathLike[str],
    *,
    once: bool = False,
    interval: float = 2.0,
    idle_timeout: float = 300.0,
    out: TextIO | None = None,
    reward_key: str | None = None,
    format: str | None = None,
    reward_range: Sequence[float] | Literal["auto"] | None = "auto",
) -> Monitor:
    """Follow the log at ``path``; return the :class:`Monitor` with everything fed (named
    after the file, so ``monitor.report()`` is labelled as ``diagnose(read_log(path))`` is).

    once: read the file once, print the status and return (the file must exist and parse).
    interval: seconds between polls. idle_timeout: return when the file has not changed for
      this long (a file that does not exist yet counts as unchanged). out: where the status
      goes (default sys.stdout; redrawn in place when it is a terminal). reward_key, format:
      passed to Monitor / read_log. reward_range: passed to Monitor (default "auto": the range
      the log's own numbers show, docs/io.md "Reward range"; None: none).
    """
    if not (isinstance(interval, int | float) and math.isfinite(interval) and interval > 0):
        raise ValueError(f"interval: must be > 0, got {interval!r}")
    if not (isinstance(idle_timeout, int | float) and idle_timeout > 0):
        raise ValueError(f"idle_timeout: must be > 0, got {idle_timeout!r}")
    file = Path(path)
    stream = out if out is not None else sys.stdout
    screen = _Screen(stream)
    # reports labelled as read_log labels the file
    monitor = Monitor(reward_key, name=file.name, reward_range=reward_range)
    header = f"grpo-dynamics watch {file.name}"
    note = ""

    def poll() -> bool:
        """Read the file and feed new rows; False when it did not parse (yet)."""
        nonlocal note
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the reader's notes, once per poll: too noisy
                run = _read(file, format)
        except (ValueError, OSError) as exc:
            note = f"(waiting: {exc})"
            return False
        note = ""
        monitor.metadata.update(run.metadata)
        monitor.extend(_rows(run, monitor.last_step))
        monitor.refresh()
        return True

    def draw() -> None:
        lines = [header + (f"  {note}" if note else ""), *monitor.status_block()]
        screen.draw(lines)

    if once:
        if not file.exists():
            raise ValueError(f"path: no such file {str(file)!r}")
        if not poll():
            raise ValueError(f"path: {note.removeprefix('(waiting: ').removesuffix(')')}")
        draw()
        return monitor

    seen: tuple[int, int] | None = None
    last_change = time.monotonic()
    try:
        while True:
            signature = _signature(file)
            if signature is not None and signature != seen:
                seen = signature  # a half-written file parses once its writer changes it again
                poll()
                last_change = time.monotonic()
                draw()
            elif time.monotonic() - last_change >= idle_timeout:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    draw()
    return monitor
