"""The networks of the five published systems ferkit grew out of (``../shared/seeds/``), as PyTorch modules.

Each follows its seed's Keras code or ``model.summary()`` layer by layer, with Keras numerics (see
:mod:`.keras_layers`): BatchNorm ``eps=1e-3``/momentum 0.99, Glorot-uniform kernels and zero biases, 'same'/'valid'
padding as written, and ``Flatten`` in Keras' channels-last order, so a Keras model's weights map onto these
unpermuted. Parameter counts equal the seeds' summaries (Keras counts BatchNorm's running mean and variance as
non-trainable parameters; PyTorch keeps them as buffers): ``tests/test_seeds.py`` checks them.

==================  ==========================================================================================
``seed000_cnn``     blog "Facial Emotion Recognition Using CNN": ``cnn_model``, 5,810,183 params (5,805,191
                    trainable), ``l2(0.01)`` on its three 512-filter kernels. Alias ``blog_cnn6``.
``seed001_cnn``     Clemson ECE8720 report: its Keras summary, 1,049,159 params (1,048,583 trainable). Alias
                    ``clemson_cnn2``.
``seed002_vgg``     Best Actor (mikemikezhu): VGG-style, 5,102,791 params (5,098,951 trainable). Alias
                    ``bestactor_vgg``.
``seed003_cnn``     webcam tutorial: 2,345,607 params. Alias ``webcam_cnn``.
``seed004_model2``  "Sequential Model" post, models 2-4 (96x96 RGB in the seed). The post describes them in prose
``seed004_model3``  and prints no summary; what it leaves open is chosen here and said in each docstring.
``seed004_model4``
==================  ==========================================================================================

``blog_cnn6`` and ``clemson_cnn2`` used to be reconstructions of a different shape (before the seeds' texts were
at hand); checkpoints of those old shapes no longer load. The shipped model is ``resnet_s`` and is unaffected.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .keras_layers import FlattenNHWC, batch_norm, conv, group_norm, keras_init
from .registry import register_alias, register_model


def _act(name: str) -> nn.Module:
    return {"relu": nn.ReLU(inplace=True), "tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(),
            "leaky": nn.LeakyReLU(0.3, inplace=True)}[name]  # Keras LeakyReLU's default slope is 0.3


def conv_act(cin: int, cout: int, act: str = "relu", k: int = 3, padding: str = "same", l2: float = 0.0,
             bn: bool = False) -> list[nn.Module]:
    """``Conv2D(cout, k, padding, activation=act)``, then ``BatchNormalization()`` if ``bn`` (Keras order)."""
    return [conv(cin, cout, k, padding, l2), _act(act)] + ([batch_norm(cout)] if bn else [])


def dense(cin: int, cout: int, bn: bool = False, dropout: float = 0.0) -> list[nn.Module]:
    """``Dense(cout, activation='relu')``, then ``BatchNormalization()`` and ``Dropout`` if asked."""
    layers: list[nn.Module] = [nn.Linear(cin, cout), nn.ReLU(inplace=True)]
    if bn:
        layers.append(batch_norm(cout, dims=1))
    if dropout:
        layers.append(nn.Dropout(dropout))
    return layers


@register_model("seed000_cnn", "seed 000 blog's cnn_model: convs 32-64-128(5x5)-3x512 with L2 0.01, dense "
                               "256-512, BatchNorm; 5.81M (Keras count)")
def seed000_cnn(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    """Seed 000's ``cnn_model()``, line by line; its three 512-filter convolutions carry ``l2(0.01)``."""
    pool = [nn.MaxPool2d(2), nn.Dropout(0.25)]
    return keras_init(nn.Sequential(
        *conv_act(in_chans, 32), *conv_act(32, 64, bn=True), *pool,
        *conv_act(64, 128, k=5, bn=True), *pool,
        *conv_act(128, 512, l2=0.01, bn=True), *pool,
        *conv_act(512, 512, l2=0.01, bn=True), *pool,
        *conv_act(512, 512, l2=0.01, bn=True), *pool,
        FlattenNHWC(), *dense(512, 256, bn=True, dropout=0.25), *dense(256, 512, bn=True, dropout=0.25),
        nn.Linear(512, num_classes),
    ))


@register_model("seed001_cnn", "seed 001 Clemson report's CNN: conv 32 (valid), pool 4/2, convs 64-64, dense 128, "
                               "BatchNorm; 1.05M (Keras count)")
def seed001_cnn(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    """Seed 001's Keras summary: 46x46 after a 'valid' 3x3 conv, 22x22 after a 4x4 pool of stride 2 (the report's
    "pooling size 4x4"; Keras' default stride would give 11), 'same' convs, 11x11x64 flattened to 7744."""
    return keras_init(nn.Sequential(
        *conv_act(in_chans, 32, padding="valid", bn=True), nn.MaxPool2d(4, stride=2), nn.Dropout(0.25),
        *conv_act(32, 64, bn=True), *conv_act(64, 64, bn=True), nn.MaxPool2d(2), nn.Dropout(0.25),
        FlattenNHWC(), *dense(11 * 11 * 64, 128, bn=True, dropout=0.5), nn.Linear(128, num_classes),
    ))


@register_model("seed002_vgg", "seed 002 Best Actor VGG-style: 4x2 convs 64-512, BN after ReLU, pool 3/2, dense "
                               "512-256-64; 5.10M (Keras count)")
def seed002_vgg(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    """Seed 002's Keras code: the first conv 'valid' (46x46), the rest 'same', ``MaxPool2D(3, strides=2)``."""
    layers: list[nn.Module] = []
    cin = in_chans
    for i, w in enumerate((64, 128, 256, 512)):
        layers += conv_act(cin, w, padding="valid" if i == 0 else "same", bn=True) + conv_act(w, w, bn=True)
        layers += [nn.MaxPool2d(3, stride=2), nn.Dropout(0.3)]
        cin = w
    head = [FlattenNHWC(), *dense(512, 512, dropout=0.3), *dense(512, 256, dropout=0.3), *dense(256, 64, dropout=0.3)]
    return keras_init(nn.Sequential(*layers, *head, nn.Linear(64, num_classes)))


@register_model("seed003_cnn", "seed 003 webcam tutorial's CNN: 4 'valid' convs 32-64-128-128, dense 1024; 2.35M")
def seed003_cnn(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    """Seed 003's ``emotion_model``: all convolutions 'valid'; 4x4x128 flattened to 2048 channels-last."""
    return keras_init(nn.Sequential(
        *conv_act(in_chans, 32, padding="valid"), *conv_act(32, 64, padding="valid"), nn.MaxPool2d(2), nn.Dropout(0.25),
        *conv_act(64, 128, padding="valid"), nn.MaxPool2d(2),
        *conv_act(128, 128, padding="valid"), nn.MaxPool2d(2), nn.Dropout(0.25),
        FlattenNHWC(), *dense(128 * 4 * 4, 1024, dropout=0.5), nn.Linear(1024, num_classes),
    ))


class KerasAugment(nn.Module):
    """Seed 004's in-model augmentation (Keras preprocessing layers), active only in train mode: ``RandomFlip
    ('horizontal')``, ``RandomRotation(0.1)`` (a tenth of a full turn, +-36 degrees), ``RandomZoom((-0.1, -0.05))``
    (zoom in 5-10%), ``RandomTranslation(0.1, 0.1)`` with Keras' 'reflect' fill, and ``RandomContrast(0.1)``. Its
    ``RandomCrop(96, 96)`` crops a 96x96 input to itself and is left out. Draws from PyTorch's global generator
    (seeded by the trainer); in eval mode (validation, inference, export) it is the identity."""

    def __init__(self, rotation: float = 0.1, zoom: tuple[float, float] = (-0.1, -0.05), translation: float = 0.1,
                 contrast: float = 0.1) -> None:
        super().__init__()
        self.rotation, self.zoom, self.translation, self.contrast = rotation, zoom, translation, contrast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        n = x.shape[0]

        def uniform(low: float, high: float) -> torch.Tensor:
            return torch.empty(n, device=x.device, dtype=x.dtype).uniform_(low, high)

        angle = uniform(-self.rotation, self.rotation) * 2 * math.pi
        scale = 1 + uniform(*self.zoom)  # < 1: each output pixel samples a smaller area, i.e. zoom in
        flip = torch.where(torch.rand(n, device=x.device) < 0.5, -1.0, 1.0).to(x.dtype)
        tx, ty = uniform(-self.translation, self.translation) * 2, uniform(-self.translation, self.translation) * 2
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        factor = uniform(1 - self.contrast, 1 + self.contrast).view(n, 1, 1, 1)
        mean = x.mean(dim=(2, 3), keepdim=True)  # per image and channel, as tf.image.adjust_contrast
        return (x - mean) * factor + mean


def _seed004_head(num_classes: int, dropouts: int) -> list[nn.Module]:
    """Global average pooling of models 3 and 4's 1024 channels (as the seed's model 1; it keeps the network
    input-size agnostic), then Dense 256 and 128 with Dropout(0.3) (model 1's rate) before each; ``dropouts=3`` adds
    model 4's third, between the last two Dense layers."""
    head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), *dense(1024, 256, dropout=0.3),
                             *dense(256, 128)]
    if dropouts == 3:
        head.append(nn.Dropout(0.3))
    return [*head, nn.Linear(128, num_classes)]


@register_model("seed004_model2", "seed 004 model 2: model 1's head without its EfficientNetB2 (conv 128, GAP, dense "
                                  "128, dropout 0.3); 0.02M", input_size=96, channels=3)
def seed004_model2(num_classes: int = 7, in_chans: int = 3) -> nn.Module:
    """Seed 004's model 2 is "similar to the previous one ... removal of inbuilt 'EfficientNetB2' and adding
    complexity to the layers"; the added layers are not described, so this is model 1's own layers on the image:
    ``Conv2D(128, 3, 'same', relu)``, ``GlobalAveragePooling2D``, ``Dense(128, relu)``, ``Dropout(0.3)``."""
    return keras_init(nn.Sequential(
        *conv_act(in_chans, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(), *dense(128, 128, dropout=0.3),
        nn.Linear(128, num_classes),
    ))


def _seed004_deep(num_classes: int, in_chans: int, model4: bool) -> nn.Module:
    """Seed 004's model 3 as its post lists it (layer 1 is not described: a 64-filter 'same' ReLU conv here; layer 5
    gives no padding: Keras' default 'valid'), and model 4's changes: in-model augmentation first, a second conv
    (512, ReLU) before the first pooling, BatchNorm after the last conv, a third Dropout in the head."""
    layers: list[nn.Module] = [KerasAugment()] if model4 else []
    layers += conv_act(in_chans, 64, bn=True)
    width = 64
    if model4:
        layers += conv_act(64, 512)
        width = 512
    layers += [nn.MaxPool2d(2), *conv_act(width, 1024, "tanh"), *conv_act(1024, 128, padding="valid"),
               group_norm(128), *conv_act(128, 256, bn=True), *conv_act(256, 256, bn=True), *conv_act(256, 512),
               nn.MaxPool2d(2), *conv_act(512, 1024), group_norm(1024), *conv_act(1024, 1024, bn=True),
               *conv_act(1024, 1024, "sigmoid"), *conv_act(1024, 1024, "tanh"), *conv_act(1024, 1024, "leaky", bn=model4),
               nn.MaxPool2d(2)]
    return keras_init(nn.Sequential(*layers, *_seed004_head(num_classes, dropouts=3 if model4 else 2)))


@register_model("seed004_model3", "seed 004 model 3: 14 convs to 1024 with tanh/sigmoid/LeakyReLU, GroupNorm and "
                                  "BatchNorm; 46.6M", input_size=96, channels=3)
def seed004_model3(num_classes: int = 7, in_chans: int = 3) -> nn.Module:
    return _seed004_deep(num_classes, in_chans, model4=False)


@register_model("seed004_model4", "seed 004 model 4: model 3 with in-model augmentation, an extra conv 512, "
                                  "BatchNorm and dropout; 51.0M", input_size=96, channels=3)
def seed004_model4(num_classes: int = 7, in_chans: int = 3) -> nn.Module:
    return _seed004_deep(num_classes, in_chans, model4=True)


for _old, _new in (("blog_cnn6", "seed000_cnn"), ("clemson_cnn2", "seed001_cnn"), ("bestactor_vgg", "seed002_vgg"),
                   ("webcam_cnn", "seed003_cnn")):
    register_alias(_old, _new)
