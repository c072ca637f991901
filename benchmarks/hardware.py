"""The CPU a benchmark ran on, for its tables: the development machine is not always the same one."""

from __future__ import annotations

import os
import platform

from ferkit.core.cpuinfo import first_cpu


def cpu_info() -> tuple[str, float]:
    """The CPU's name and clock in GHz (0.0 where /proc/cpuinfo gives none)."""
    cpu = first_cpu()
    return cpu.get("model name", platform.processor()), float(cpu.get("cpu MHz", 0)) / 1000


def cpu_label() -> str:
    """E.g. '2-core CPU (AMD EPYC, 2.00 GHz)'."""
    name, ghz = cpu_info()
    return f"{os.cpu_count()}-core CPU ({name or 'unknown'}{f', {ghz:.2f} GHz' if ghz else ''})"


def fp32_flops_per_cycle() -> tuple[int, str]:
    """fp32 FLOPs a core can issue a cycle with FMA, and why: 32 for two 256-bit FMA units (AVX2 on Intel since
    Haswell and AMD since Zen 2, and AMD's AVX-512 since Zen 4, which splits 512-bit operations onto them), 16 for
    AMD's first Zen generations (family 23, models below 0x30), whose AVX2 runs on two 128-bit units, 64 for Intel's
    AVX-512 (two 512-bit FMA units)."""
    cpu = first_cpu()
    amd, flags = cpu.get("vendor_id") == "AuthenticAMD", cpu.get("flags", "").split()
    if amd and cpu.get("cpu family") == "23" and int(cpu.get("model", "0")) < 0x30:
        return 16, "AVX2 FMA on two 128-bit units (Zen/Zen+)"
    if "avx512f" in flags:
        return (32, "AVX-512 FMA split onto two 256-bit units (Zen 4 on); bf16 dot products twice that") if amd else \
            (64, "two 512-bit FMA units (one on some Xeons)")
    return 32, "AVX2 FMA on two 256-bit units, no AVX-512"
