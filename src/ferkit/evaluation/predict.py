"""Re-export of :mod:`ferkit.core.predict` (its old import path)."""

from ..core.predict import TTA_MODES, ensemble_proba, predict_proba, to_input, tta_views

__all__ = ["TTA_MODES", "ensemble_proba", "predict_proba", "to_input", "tta_views"]
