"""Re-export of :mod:`ferkit.core.checkpoint` (its old import path)."""

from ..core.checkpoint import FORMAT, Checkpoint, CheckpointError, load_checkpoint, model_from_checkpoint, save_atomic, save_half

__all__ = ["FORMAT", "Checkpoint", "CheckpointError", "load_checkpoint", "model_from_checkpoint", "save_atomic", "save_half"]
