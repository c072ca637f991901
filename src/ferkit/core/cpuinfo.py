"""The CPU as Linux describes it in /proc/cpuinfo."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def first_cpu() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo ('model name', 'cpu MHz', 'flags', ...); empty where there is
    none (not Linux)."""
    fields: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        key, _, value = line.partition(":")
        if not key.strip():
            break  # the blank line after the first processor
        fields.setdefault(key.strip(), value.strip())
    return fields
