"""Re-export of :mod:`ferkit.core.classifier` (its old import path)."""

from ..core.classifier import DEFAULT_MODEL, EmotionClassifier, default_model_path

__all__ = ["DEFAULT_MODEL", "EmotionClassifier", "default_model_path"]
