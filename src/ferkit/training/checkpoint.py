"""Re-export of :mod:`ferkit.core.checkpoint` (its old import path)."""

from ..core.checkpoint import FORMAT, CheckpointError, load_checkpoint, model_from_checkpoint, save_atomic, save_half

__all__ = ["FORMAT", "CheckpointError", "load_checkpoint", "model_from_checkpoint", "save_atomic", "save_half"]
