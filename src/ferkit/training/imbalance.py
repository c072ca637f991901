"""Class imbalance: seed 004's "frequency encoding", the class prior, and the two principled answers beside class
weights: a logit-adjusted loss (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021) and a
log-prior initial bias of the output layer.

Frequency encoding renumbers the classes by their Training frequency (the commonest gets the highest id). For a
softmax classifier trained with cross-entropy the class ids are only names: a permutation of them permutes the
output units and nothing else, so it can change results only through the random start of the output layer (see
benchmarks/seeds.md for the measurement).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.dataset import FERDataset
from ..errors import ConfigError


def frequency_order(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Class ids from the rarest to the commonest in ``labels`` (ties: the lower id first)."""
    counts = np.bincount(labels, minlength=num_classes)
    return np.argsort(counts, kind="stable")


def by_frequency(data: FERDataset) -> FERDataset:
    """Seed 004's frequency encoding: ``data`` with class ids by Training frequency, the commonest last."""
    order = frequency_order(data.split("train").labels, data.num_classes)
    return data.in_class_order([data.classes[i] for i in order])


def class_prior(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """The Training class frequencies (a class with no image counts as one, so its log stays finite)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64).clip(min=1)
    return torch.tensor(counts / counts.sum(), dtype=torch.float32)


def logit_offsets(prior: torch.Tensor, tau: float) -> torch.Tensor:
    """What the logit-adjusted loss adds to the logits: ``tau * log(prior)``."""
    return tau * prior.log()


def init_prior_bias(model: nn.Module, prior: torch.Tensor) -> None:
    """Set the bias of ``model``'s last linear layer (its output layer) to ``log(prior)``, so the untrained model
    predicts the class frequencies."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last or last[-1].bias is None or last[-1].out_features != len(prior):
        raise ConfigError("--prior-bias needs a model whose last layer is a linear layer with a bias, one per class")
    with torch.no_grad():
        last[-1].bias.copy_(prior.log())
