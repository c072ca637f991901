"""Re-export of :mod:`ferkit.core.runtime` (its old import path)."""

from ..core.runtime import ModelError, cpu_session

__all__ = ["ModelError", "cpu_session"]
