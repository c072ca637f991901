"""Calibration of class probabilities: the expected calibration error, and temperature scaling."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


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


def check_temperature(temperature: float) -> float:
    """``temperature`` as a float, if it is a finite number > 0; else a :class:`ConfigError`."""
    if not (isinstance(temperature, (int, float)) and 0 < temperature < float("inf")):
        raise ConfigError(f"the temperature must be a finite number > 0, not {temperature!r}")
    return float(temperature)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probs) / temperature)``: probabilities as a model whose logits were divided by it gives."""
    z = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0)) / temperature
    z = np.exp(z - z.max(1, keepdims=True))
    return (z / z.sum(1, keepdims=True)).astype(probs.dtype)
