"""The CPU as Linux describes it in /proc/cpuinfo, and how many of its cores to use."""

from __future__ import annotations

import os
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


BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""/proc/cpuinfo flags of bf16 arithmetic in hardware (AVX512-BF16: AMD Zen 4 on, Intel Cooper Lake; AMX: Intel
Sapphire Rapids on), with which oneDNN runs bf16 convolutions faster than fp32 ones."""


def has_bf16() -> bool:
    """Whether this CPU computes in bf16 in hardware (:data:`BF16_FLAGS`)."""
    return bool(set(first_cpu().get("flags", "").split()) & set(BF16_FLAGS))


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the system has one (Linux), else every core."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_threads() -> int:
    """The CPU threads to use when none are asked for: ``$OMP_NUM_THREADS`` where it is a positive whole number
    (the usual way to share a machine's cores between jobs), else every core this process may run on."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else usable_cores()
