"""The CPU fast path: thread count and glibc allocator tuning (6-44% faster training here)."""

from __future__ import annotations

import ctypes
import ctypes.util

import torch

from ..errors import DeviceError
from .cpuinfo import default_threads

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4


def tune_allocator() -> bool:
    """Keep freed memory in the heap instead of returning it to the OS after every batch."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) and libc.mallopt(_M_TOP_PAD, 256 << 20)
        return bool(ok)
    except (OSError, AttributeError):
        return False


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise DeviceError(f"--device {device!r}: not a device (auto, cpu, cuda, cuda:1 ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda asked for, but CUDA is not available")
    return dev


def setup_device(device: str, threads: int | None = None) -> torch.device:
    """Pick the device and apply the fast path for it."""
    dev = resolve_device(device)
    if dev.type == "cpu":
        torch.set_num_threads(threads or default_threads())
        tune_allocator()
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return dev
