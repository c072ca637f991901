"""Classification metrics: accuracy, macro-F1, per-class report, confusion matrices, calibration."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, f1_score


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> tuple[float, dict[str, list]]:
    """ECE over equal-width confidence bins, and the per-bin data of a reliability diagram."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece, acc_b, conf_b, count_b = 0.0, [], [], []
    for b in range(bins):
        m = which == b
        n = int(m.sum())
        count_b.append(n)
        acc_b.append(float(correct[m].mean()) if n else 0.0)
        conf_b.append(float(conf[m].mean()) if n else 0.0)
        ece += n / len(labels) * abs(acc_b[-1] - conf_b[-1]) if n else 0.0
    return float(ece), {"edges": edges.tolist(), "accuracy": acc_b, "confidence": conf_b, "count": count_b}


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 that minimises the negative log-likelihood of ``softmax(log(probs) / T)`` on
    these labels (temperature scaling, Guo et al. 2017): T > 1 softens over-confident probabilities, T < 1
    sharpens under-confident ones; the predicted class never changes. Fit it on the validation split."""
    from scipy.optimize import minimize_scalar

    logp = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0))
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z -= z.max(1, keepdims=True)
        return float(-(z[rows, labels] - np.log(np.exp(z).sum(1))).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probs) / temperature)``: probabilities as a model whose logits were divided by it gives."""
    z = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0)) / temperature
    z = np.exp(z - z.max(1, keepdims=True))
    return (z / z.sum(1, keepdims=True)).astype(probs.dtype)


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
