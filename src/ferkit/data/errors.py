"""The one exception type for bad data, always naming the file and, where known, the line."""

from __future__ import annotations

from pathlib import Path

from ..errors import FerkitError


class DataError(FerkitError, ValueError):
    """Bad or unreadable input data."""

    def __init__(self, source: str | Path, message: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line is not None else str(source)
        super().__init__(f"{where}: {message}")
        self.source = str(source)
        self.line = line
