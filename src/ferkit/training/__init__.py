"""Training: configuration, optimizers and schedules, the loop, checkpoints."""

from ..core.checkpoint import load_checkpoint, model_from_checkpoint
from .config import TrainConfig
from .trainer import TrainResult, Trainer, train

__all__ = ["TrainConfig", "TrainResult", "Trainer", "load_checkpoint", "model_from_checkpoint", "train"]
