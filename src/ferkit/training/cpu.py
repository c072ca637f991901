"""Re-export of :mod:`ferkit.core.device` (its old import path)."""

from ..core.device import resolve_device, setup_device, tune_allocator

__all__ = ["resolve_device", "setup_device", "tune_allocator"]
