"""ImageNet backbones from timm (``pip install 'ferkit[transfer]'``) in the model registry, and seed 004's
EfficientNetB2 transfer model.

``timm_<arch>`` is timm's ``<arch>`` with a new classifier for the task's classes, at any input size and 1 or 3
input channels; its state-dict keys are timm's own, so a timm/torchvision ImageNet state dict loads into it
(``ferkit train --pretrained PATH``, see :mod:`ferkit.training.warmstart`). The backbones were chosen by their
speed on a 2-core CPU (benchmarks/transfer.md). Nothing here downloads weights.

timm needs torchvision, whose C++ operators (detection ops such as ``nms``) are built for one PyTorch build: PyPI's
torchvision is built against CUDA PyTorch and its operator library does not load beside PyTorch's CPU wheel, after
which ``import torchvision`` stops at declaring a fake ``nms``. :func:`import_timm` then declares the signatures
of those operators itself, so torchvision's Python part (all timm uses) imports; torchvision's own ``nms`` and
``qnms`` would fail if called (ferkit and timm's classifiers never call them).
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import torch
from torch import nn

from ..errors import MissingExtraError
from .registry import register_model

EXTRA = "transfer"
BACKBONES = {
    "efficientnet_b0": "EfficientNet-B0 (5.3M at ImageNet's 1000 classes)",
    "efficientnet_b2": "EfficientNet-B2, seed 004's backbone",
    "resnet18": "ResNet-18",
    "mobilenetv3_small_100": "MobileNetV3-Small",
    "mobilenetv3_large_100": "MobileNetV3-Large",
    "convnext_atto": "ConvNeXt-Atto",
}
"""timm architectures registered as ``timm_<arch>``."""


_TORCHVISION_OPS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
                    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
"""The operators torchvision's Python part registers fakes for without checking that its C++ library loaded."""
_declared: list[Any] = []  # the torch.library.Library holding them, kept alive


def _import_torchvision() -> None:
    """Import torchvision; where its operator library does not load (another PyTorch build), declare the
    operators it expects (:data:`_TORCHVISION_OPS`) and import it again."""
    try:
        import torchvision  # noqa: F401
    except RuntimeError as exc:
        if "torchvision::" not in str(exc) or _declared:
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        lib = torch.library.Library("torchvision", "DEF")
        for schema in _TORCHVISION_OPS:
            lib.define(schema)
        _declared.append(lib)
        import torchvision  # noqa: F401,F811


def timm_available() -> bool:
    """Whether timm is installed (without importing it)."""
    return importlib.util.find_spec("timm") is not None


def import_timm() -> Any:
    """The ``timm`` module, or a MissingExtraError saying how to install it (or why its torchvision fails)."""
    if not timm_available():
        raise MissingExtraError(f"timm backbones need the optional extra: pip install 'ferkit[{EXTRA}]'")
    try:
        _import_torchvision()
        import timm
    except (ImportError, RuntimeError) as exc:
        raise MissingExtraError(
            f"timm does not import ({type(exc).__name__}: {str(exc).splitlines()[0]}); install torchvision for "
            f"PyTorch {torch.__version__}: pip install 'ferkit[{EXTRA}]'") from None
    return timm


def create_timm(arch: str, num_classes: int, in_chans: int, **kwargs: Any) -> nn.Module:
    """timm's ``arch`` with fresh weights (never downloaded)."""
    return import_timm().create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


def _timm_builder(arch: str) -> Any:
    def build(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
        return create_timm(arch, num_classes, in_chans)

    return build


for _arch, _about in BACKBONES.items():
    register_model(f"timm_{_arch}", f"timm {_arch}: {_about}; ImageNet weights with --pretrained", input_size=96,
                   requires="timm")(_timm_builder(_arch))


class Seed004EffNetB2(nn.Module):
    """Seed 004's transfer model: EfficientNetB2 without its top, Conv2D 128 3x3 'same' (no activation, the
    Keras default, as the seed gives none), global average pooling, Dense 128 ReLU, Dropout 0.3, Dense C.
    The backbone's keys are timm's under ``backbone.``."""

    backbone_prefix = "backbone."

    def __init__(self, num_classes: int = 7, in_chans: int = 3) -> None:
        super().__init__()
        self.backbone = create_timm("efficientnet_b2", 0, in_chans, global_pool="")
        self.head = nn.Sequential(
            nn.Conv2d(self.backbone.num_features, 128, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(128, 128), nn.ReLU(inplace=True), nn.Dropout(0.3), nn.Linear(128, num_classes),
        )
        self.pretrained_cfg = {**self.backbone.pretrained_cfg, "classifier": "head",
                               "first_conv": "backbone." + self.backbone.pretrained_cfg["first_conv"]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


@register_model("seed004_effnetb2", "seed 004's transfer model: EfficientNetB2 (ImageNet weights with --pretrained) "
                                    "+ conv 128, GAP, dense 128, dropout 0.3; 96x96 RGB", input_size=96, channels=3,
                requires="timm")
def seed004_effnetb2(num_classes: int = 7, in_chans: int = 3) -> nn.Module:
    return Seed004EffNetB2(num_classes, in_chans)
