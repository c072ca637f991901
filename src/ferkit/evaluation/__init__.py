"""Evaluation: predictions with TTA, metrics, figures and the HTML report."""

from .evaluate import EvaluationResult, evaluate
from .metrics import classification_metrics
from ..core.predict import TTA_MODES, predict_proba

__all__ = ["EvaluationResult", "TTA_MODES", "classification_metrics", "evaluate", "predict_proba"]
