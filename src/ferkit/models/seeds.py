"""The architectures of the projects ferkit grew out of, as PyTorch modules.

``bestactor_vgg`` and ``webcam_cnn`` follow their published Keras code layer by layer (parameter
counts match exactly). The sources of ``blog_cnn6`` and ``clemson_cnn2`` could not be found: they
are reconstructions that fit the published description and parameter count, and say so.
"""

from __future__ import annotations

from torch import nn

from .registry import register_model


def conv_relu(cin: int, cout: int, padding: int, bn: str = "") -> list[nn.Module]:
    """3x3 conv + ReLU, with BatchNorm before ("pre") or after ("post") the ReLU, or none."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=padding)]
    if bn == "pre":
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    if bn == "post":
        layers.append(nn.BatchNorm2d(cout))
    return layers


@register_model("webcam_cnn", "webcam tutorial (atulapra/Emotion-detection): 4 convs 32-64-128-128, dense 1024; 2.35M")
def webcam_cnn(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    return nn.Sequential(
        *conv_relu(in_chans, 32, 0), *conv_relu(32, 64, 0), nn.MaxPool2d(2), nn.Dropout(0.25),
        *conv_relu(64, 128, 0), nn.MaxPool2d(2),
        *conv_relu(128, 128, 0), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(128 * 4 * 4, 1024), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(1024, num_classes),
    )


@register_model("bestactor_vgg", "Best Actor project (mikemikezhu): VGG-style 4x2 convs 64-512, BN after ReLU, "
                                  "dense 512-256-64; 5.10M")
def bestactor_vgg(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    layers: list[nn.Module] = []
    cin = in_chans
    for i, w in enumerate((64, 128, 256, 512)):
        layers += conv_relu(cin, w, 0 if i == 0 else 1, "post") + conv_relu(w, w, 1, "post")
        layers += [nn.MaxPool2d(3, stride=2), nn.Dropout(0.3)]
        cin = w
    head: list[nn.Module] = [nn.Flatten()]
    for a, b in ((512, 512), (512, 256), (256, 64)):
        head += [nn.Linear(a, b), nn.ReLU(inplace=True), nn.Dropout(0.3)]
    return nn.Sequential(*layers, *head, nn.Linear(64, num_classes))


@register_model("blog_cnn6", "FER2013 blog's 6-conv network (reconstruction: 3x[2 convs+BN] 64-128-256, dense 512); 5.87M")
def blog_cnn6(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    layers: list[nn.Module] = []
    cin = in_chans
    for w in (64, 128, 256):
        layers += conv_relu(cin, w, 1, "pre") + conv_relu(w, w, 1, "pre") + [nn.MaxPool2d(2), nn.Dropout(0.25)]
        cin = w
    return nn.Sequential(
        *layers, nn.Flatten(), nn.Linear(256 * 6 * 6, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(512, num_classes),
    )


@register_model("clemson_cnn2", "Clemson report's small 2-conv network (reconstruction: convs 32-64, dense 128); 0.84M")
def clemson_cnn2(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    return nn.Sequential(
        *conv_relu(in_chans, 32, 0), nn.MaxPool2d(2), *conv_relu(32, 64, 0), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(64 * 10 * 10, 128), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(128, num_classes),
    )
