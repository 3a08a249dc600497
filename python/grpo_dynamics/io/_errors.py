"""The two exception/warning types every reader shares (docs/io.md, "Errors")."""

from __future__ import annotations

import os


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
