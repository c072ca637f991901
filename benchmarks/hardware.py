"""The CPU a benchmark ran on, for its tables: the development machine is not always the same one."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_info() -> tuple[str, float]:
    """The CPU's name and clock in GHz, from /proc/cpuinfo (0.0 where it gives none)."""
    name, mhz = platform.processor(), 0.0
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("cpu MHz") and not mhz:
            mhz = float(line.split(":", 1)[1])
    return name, mhz / 1000


def cpu_label() -> str:
    """E.g. '2-core CPU (AMD EPYC, 2.00 GHz)'."""
    name, ghz = cpu_info()
    return f"{os.cpu_count()}-core CPU ({name or 'unknown'}{f', {ghz:.2f} GHz' if ghz else ''})"
