"""Classification metrics: accuracy, macro-F1, per-class report, confusion matrices, calibration."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, f1_score

from ..core.calibration import apply_temperature, expected_calibration_error, fit_temperature

__all__ = ["apply_temperature", "classification_metrics", "expected_calibration_error", "fit_temperature"]


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """All metrics of one evaluation, JSON-ready."""
    pred = probs.argmax(1)
    k = list(range(len(classes)))
    cm = confusion_matrix(labels, pred, labels=k)
    rows = cm.sum(1, keepdims=True)
    ece, reliability = expected_calibration_error(probs, labels)
    report = classification_report(labels, pred, labels=k, target_names=list(classes), output_dict=True, zero_division=0)
    return {
        "num_images": int(len(labels)),
        "accuracy": float((pred == labels).mean()),
        "macro_f1": float(f1_score(labels, pred, labels=k, average="macro", zero_division=0)),
        "per_class": {c: report[c] for c in classes},
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_normalized": np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0).round(4).tolist(),
        "ece": ece,
        "reliability": reliability,
        "classification_report": classification_report(labels, pred, labels=k, target_names=list(classes), digits=4,
                                                        zero_division=0),
    }
