"""Training: configuration, optimizers and schedules, the loop, checkpoints.

Names load on first use, so ``ferkit.training.config`` (the command line's options) imports without PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {  # public name -> module
    "TrainConfig": "ferkit.training.config",
    "TrainResult": "ferkit.training.trainer",
    "Trainer": "ferkit.training.trainer",
    "train": "ferkit.training.trainer",
    "load_checkpoint": "ferkit.core.checkpoint",
    "model_from_checkpoint": "ferkit.core.checkpoint",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'ferkit.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


__all__ = sorted(_LAZY)
