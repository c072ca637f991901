"""The architectures of the projects ferkit grew out of, reimplemented faithfully."""

from __future__ import annotations

from torch import nn

from .registry import register_model


@register_model("webcam_cnn", "4-conv network of the webcam tutorial (Keras): 32-64-128-128 convs, dense 1024 (2.3M)")
def webcam_cnn(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_chans, 32, 3), nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Conv2d(64, 128, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(128, 128, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(128 * 4 * 4, 1024), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(1024, num_classes),
    )
