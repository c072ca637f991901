"""Checkpoints: plain dicts of tensors and numbers, written atomically, read with weights_only=True."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models.registry import create_model

FORMAT = "ferkit-checkpoint-1"


def save_atomic(obj: dict[str, Any], path: str | Path) -> None:
    """Write to a temporary file beside ``path``, then rename: a crash never leaves half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a ferkit checkpoint safely (no unpickling of arbitrary objects)."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a ferkit checkpoint (format {FORMAT})")
    return ckpt


def model_from_checkpoint(path_or_ckpt: str | Path | dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint in eval mode; returns (model, checkpoint dict)."""
    ckpt = path_or_ckpt if isinstance(path_or_ckpt, dict) else load_checkpoint(path_or_ckpt)
    model = create_model(ckpt["model"], num_classes=len(ckpt["classes"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def save_half(src: str | Path, dst: str | Path) -> Path:
    """Copy a checkpoint keeping only what inference needs (no optimizer or resume state), with its
    floating-point weights stored as float16: half the file. Loading casts them back to float32."""
    ckpt = load_checkpoint(src)
    keep = {k: v for k, v in ckpt.items() if k in ("format", "model", "classes", "input_size", "mean", "std",
                                                   "config", "epoch", "stage", "val_acc")}
    keep["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    keep["stored_as"] = "float16"
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(keep, dst)
    return dst
