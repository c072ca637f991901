"""Compact modern networks sized for 48x48 faces: pre-activation-free ResNet and MobileNetV2-style
inverted residuals. Candidates for the best accuracy per CPU-second (see benchmarks/)."""

from __future__ import annotations

from torch import nn

from .registry import register_model


def conv_bn(cin: int, cout: int, stride: int = 1, groups: int = 1, act: bool = True, k: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, stride), conv_bn(cout, cout, act=False))
        self.skip = nn.Identity() if stride == 1 and cin == cout else conv_bn(cin, cout, stride, act=False, k=1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.skip(x))


class ResNetFER(nn.Module):
    """ResNet for 48x48: a 3x3 stem at full resolution, then stages at 24, 12, 6 and 3 pixels."""

    def __init__(self, widths: tuple[int, ...], depths: tuple[int, ...], num_classes: int = 7, in_chans: int = 1,
                 dropout: float = 0.3) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(in_chans, widths[0] // 2), conv_bn(widths[0] // 2, widths[0], stride=2)]
        cin = widths[0]
        for i, (w, d) in enumerate(zip(widths, depths)):
            for j in range(d):
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


class VGGFER(nn.Module):
    """VGG-style stages of 3x3 conv-BN-ReLU pairs with max-pooling, ending in global average pooling (no big dense
    layers): a member unlike the ResNets for ensembles."""

    def __init__(self, widths: tuple[int, ...], num_classes: int = 7, in_chans: int = 1, dropout: float = 0.3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for i, w in enumerate(widths):
            if i:
                layers.append(nn.MaxPool2d(2))
            layers += [conv_bn(cin, w), conv_bn(w, w)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.use_skip = stride == 1 and cin == cout
        self.body = nn.Sequential(conv_bn(cin, mid, k=1), conv_bn(mid, mid, stride, groups=mid), conv_bn(mid, cout, act=False, k=1))

    def forward(self, x):
        return x + self.body(x) if self.use_skip else self.body(x)


class MobileNetFER(nn.Module):
    """MobileNetV2-style network for 48x48 faces."""

    def __init__(self, num_classes: int = 7, in_chans: int = 1, dropout: float = 0.2) -> None:
        super().__init__()
        # (expansion, width, repeats, first stride)
        cfg = [(1, 24, 1, 1), (4, 32, 2, 2), (4, 64, 3, 2), (4, 128, 3, 2), (4, 192, 2, 2)]
        layers: list[nn.Module] = [conv_bn(in_chans, 32)]
        cin = 32
        for t, c, n, s in cfg:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn(cin, 512, k=1))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(512, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


@register_model("resnet_s", "ResNet for 48x48, widths 32-64-128-256, one basic block per stage")
def resnet_s(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    return ResNetFER((32, 64, 128, 256), (1, 1, 1, 1), num_classes, in_chans)


@register_model("resnet_m", "ResNet for 48x48, widths 64-128-256-512, two basic blocks per stage (ResNet-18 depth)")
def resnet_m(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    return ResNetFER((64, 128, 256, 512), (2, 2, 2, 2), num_classes, in_chans)


@register_model("resnet_sw", "wider resnet_s: widths 48-96-192-384, one basic block per stage (ensemble member)")
def resnet_sw(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    return ResNetFER((48, 96, 192, 384), (1, 1, 1, 1), num_classes, in_chans)


@register_model("vgg_gap", "VGG-style 4x2 convs 32-64-128-256 with BatchNorm and global average pooling (ensemble member)")
def vgg_gap(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    return VGGFER((32, 64, 128, 256), num_classes, in_chans)


@register_model("mobilenet_s", "MobileNetV2-style inverted residuals for 48x48 (depthwise convolutions)")
def mobilenet_s(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    return MobileNetFER(num_classes, in_chans)
