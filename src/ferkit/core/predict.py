"""Batched class probabilities for arrays of grey faces (48x48 for FER2013, resized to the model's input size),
with optional test-time augmentation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import Checkpoint, model_from_checkpoint
from .shipped import is_shipped_name

from ..data.augment import TTA_MODES, check_tta

if TYPE_CHECKING:
    from .classifier import EmotionClassifier


def to_input(images: np.ndarray | torch.Tensor, mean: float, std: float, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 (N, H, W) -> normalised float (N, 1, H, W), channels_last, on ``device``."""
    x = torch.as_tensor(images).to(device)
    x = (x.float().unsqueeze(1) / 255.0 - mean) / std
    return x.contiguous(memory_format=torch.channels_last)


def fit_input(x: torch.Tensor, size: int, channels: int = 1) -> torch.Tensor:
    """Grey faces (N, 1, H, W) as a model of input ``size`` and ``channels`` takes them: resized (bilinear,
    antialiased when shrinking) where H or W differs, the grey channel repeated for 3-channel models."""
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])
    if x.shape[1] != channels:
        x = x.expand(-1, channels, -1, -1)
    return x.contiguous(memory_format=torch.channels_last)


def resize_faces(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 faces (N, H, W) resized to (N, size, size) as :func:`fit_input` resizes them, rounded back to uint8."""
    if images.shape[1:] == (size, size):
        return images
    x = fit_input(torch.from_numpy(np.ascontiguousarray(images)).float().unsqueeze(1), size)
    return x.squeeze(1).round().clamp(0, 255).to(torch.uint8).numpy()


def tta_views(x: torch.Tensor, tta: str, crop: int | None = None) -> list[torch.Tensor]:
    """The views averaged for ``tta``: the image; plus its mirror (flip); or ten crops of
    ``crop`` pixels (default: 11/12 of the input's side, 44 of 48; four corners, centre, and their
    mirrors) resized back to the input size."""
    check_tta(tta)
    if tta == "none":
        return [x]
    if tta == "flip":
        return [x, x.flip(-1)]
    size = x.shape[-1]
    crop = round(size * 11 / 12) if crop is None else crop
    m, c = size - crop, (size - crop) // 2
    views = []
    for top, left in ((0, 0), (0, m), (m, 0), (m, m), (c, c)):
        v = F.interpolate(x[..., top : top + crop, left : left + crop], size=(size, size), mode="bilinear",
                          align_corners=False)
        views += [v, v.flip(-1)]
    return views


@torch.no_grad()
def views_proba(model: nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Softmax probabilities (N, C) of a batch ``x`` already normalised and fitted to the model, averaged over the
    views of ``tta`` (:func:`tta_views`)."""
    return torch.stack([F.softmax(model(v.contiguous(memory_format=torch.channels_last)).float(), 1)
                        for v in tta_views(x, tta)]).mean(0)


@torch.no_grad()
def predict_proba(model: nn.Module, images: np.ndarray, mean: float, std: float, tta: str = "none",
                  batch_size: int = 512, device: str | torch.device = "cpu", progress: bool = False,
                  input_size: int | None = None, channels: int = 1) -> np.ndarray:
    """Softmax probabilities (N, C), averaged over the TTA views; the faces are fitted to the model's
    ``input_size`` (default: their own) and ``channels`` (:func:`fit_input`) before the views are cut."""
    was_training = model.training
    model.eval()
    out = []
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=f"predict (tta={tta})", unit=" batch", leave=False)
    for i in starts:
        x = to_input(images[i : i + batch_size], mean, std, device)
        x = fit_input(x, input_size or x.shape[-1], channels)
        out.append(views_proba(model, x, tta).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def onnx_proba(classifier: EmotionClassifier, images: np.ndarray, tta: str = "none", batch_size: int = 512,
               progress: bool = False) -> np.ndarray:
    """Probabilities (N, C) of an exported model on ONNX Runtime (it normalises the 0..255 pixels itself),
    averaged over the TTA views that :meth:`EmotionClassifier.predict_proba` cuts, the same as
    :func:`predict_proba`'s (flips and bilinear crops commute with the normalisation), the faces fitted to its
    input size first."""
    out = []
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=f"predict ONNX (tta={tta})", unit=" batch", leave=False)
    for i in starts:
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).float().unsqueeze(1)
        x = fit_input(x, classifier.input_size)
        out.append(classifier.predict_proba(x.squeeze(1).numpy(), batch_size, tta=tta))
    return np.concatenate(out) if out else np.zeros((0, len(classifier.classes)), np.float32)


def is_onnx_member(member: str | Path) -> bool:
    """Whether ``member`` names an ONNX model (a .onnx file, or a shipped model's name with no such file here)
    rather than a checkpoint."""
    return Path(member).suffix.lower() == ".onnx" or is_shipped_name(member)


def load_member(member: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module | EmotionClassifier, Checkpoint]:
    """A model to score faces with, and its checkpoint: a checkpoint file or run folder (its network, in eval
    mode, on ``device``), or an exported ONNX model or shipped model's name (an ONNX Runtime classifier on the
    CPU, its checkpoint rebuilt from the file's metadata, without weights)."""
    if not is_onnx_member(member):
        model, ckpt = model_from_checkpoint(member)
        return model.to(device), ckpt
    import json

    from .classifier import EmotionClassifier

    clf = EmotionClassifier(str(member))
    meta = clf.metadata
    config = json.loads(meta.get("train_config") or "{}")
    val_acc = float(meta["val_acc"]) if meta.get("val_acc") else None
    return clf, Checkpoint(model=meta.get("model", clf.path.stem), classes=list(clf.classes), state_dict={},
                           input_size=clf.input_size, config=config, val_acc=val_acc)


def ensemble_proba(members: Sequence[tuple[nn.Module | EmotionClassifier, Checkpoint]], images: np.ndarray,
                   tta: str = "none", device: str | torch.device = "cpu", progress: bool = False) -> np.ndarray:
    """The mean of the members' probabilities; each member is (model, its checkpoint), whose mean/std, input size
    and channels it is fed with, or (ONNX classifier, its checkpoint), run on the CPU (:func:`onnx_proba`)."""
    return np.mean([predict_proba(model, images, ckpt.mean, ckpt.std, tta=tta, device=device, progress=progress,
                                  input_size=ckpt.input_size, channels=ckpt.channels)
                    if isinstance(model, nn.Module) else onnx_proba(model, images, tta=tta, progress=progress)
                    for model, ckpt in members], axis=0)
