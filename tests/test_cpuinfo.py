"""How many CPU threads ferkit uses when none are asked for (``ferkit.core.cpuinfo``)."""

from __future__ import annotations

import os

from ferkit.core import cpuinfo


def test_cores_without_cpu_affinity(monkeypatch):
    """macOS and Windows have no os.sched_getaffinity: every core counts."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert cpuinfo.usable_cores() == cpuinfo.default_threads() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "cannot be determined"
    assert cpuinfo.default_threads() == 1
