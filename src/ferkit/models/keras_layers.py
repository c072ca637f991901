"""Keras conventions in PyTorch, so the seed networks match their published Keras code numerically.

* :func:`batch_norm`: Keras ``BatchNormalization`` defaults, ``epsilon=1e-3`` and ``momentum=0.99`` (PyTorch counts
  momentum the other way: 0.01).
* :class:`FlattenNHWC`: Keras flattens channels-last tensors, so ``Dense`` weights after a ``Flatten`` expect the
  (height, width, channel) order; this flattens in that order, and a Keras model's kernels import unpermuted.
* :func:`keras_init`: ``glorot_uniform`` kernels and zero biases, Keras' defaults for ``Conv2D`` and ``Dense``.
* :func:`kernel_l2` / :func:`kernel_l2_penalty`: ``kernel_regularizer=l2(c)`` adds ``c * sum(w**2)`` of that
  kernel to the loss (gradient ``2 c w``); the trainer adds the penalty of every marked kernel.
* ``padding='same'`` is ``padding=k // 2`` for the stride-1 odd kernels used here; ``'valid'`` is 0; Keras pooling
  is ``'valid'`` (PyTorch's floor).
"""

from __future__ import annotations

import torch
from torch import nn

KERAS_BN_EPS = 1e-3
KERAS_BN_MOMENTUM = 0.01  # Keras momentum 0.99: the running mean keeps 0.99 of itself per step


def batch_norm(channels: int, dims: int = 2) -> nn.Module:
    """A BatchNorm with Keras' defaults (``dims``: 2 after convolutions, 1 after dense layers)."""
    cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return cls(channels, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    """Keras ``GroupNormalization`` defaults: 32 groups, ``epsilon=1e-3``."""
    return nn.GroupNorm(min(groups, channels), channels, eps=KERAS_BN_EPS)


class FlattenNHWC(nn.Module):
    """``Flatten`` as Keras does it on channels-last data: (N, C, H, W) -> (N, H*W*C) in (H, W, C) order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


def conv(cin: int, cout: int, k: int = 3, padding: str = "same", l2: float = 0.0) -> nn.Conv2d:
    """A stride-1 ``Conv2D`` with Keras ``padding`` ('same' or 'valid') and an optional kernel L2 coefficient."""
    if padding not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', not {padding!r}")
    layer = nn.Conv2d(cin, cout, k, padding=k // 2 if padding == "same" else 0)
    return kernel_l2(layer, l2) if l2 else layer


def kernel_l2(layer: nn.Module, coefficient: float) -> nn.Module:
    """Mark ``layer.weight`` for a Keras ``l2(coefficient)`` kernel regulariser; returns the layer."""
    layer.kernel_l2 = float(coefficient)
    return layer


def kernel_l2_terms(model: nn.Module) -> list[tuple[nn.Parameter, float]]:
    """The (kernel, coefficient) pairs marked by :func:`kernel_l2` in ``model``."""
    return [(m.weight, m.kernel_l2) for m in model.modules() if getattr(m, "kernel_l2", 0.0)]


def kernel_l2_penalty(terms: list[tuple[nn.Parameter, float]]) -> torch.Tensor | float:
    """``sum(c * sum(w**2))`` over ``terms`` (0.0 when there are none), as Keras adds it to the loss."""
    return sum((c * w.pow(2).sum() for w, c in terms), 0.0)


def keras_init(model: nn.Module) -> nn.Module:
    """Re-initialise every convolution and linear layer as Keras does (Glorot uniform kernel, zero bias)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model
