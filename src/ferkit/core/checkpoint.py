"""Checkpoints: plain dicts of tensors and numbers, written atomically, read with weights_only=True."""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import FerkitError
from ..models.registry import create_model

FORMAT = "ferkit-checkpoint-1"


class CheckpointError(FerkitError, ValueError):
    """A file that is not a readable ferkit checkpoint; the message names it and says why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: not a ferkit checkpoint ({reason})")
        self.path, self.reason = str(path), reason


def _not_torch_file(path: Path) -> str | None:
    """Why ``path`` cannot be a torch file at all, judged by its first bytes (a zip archive, or an old pickle)."""
    with open(path, "rb") as handle:
        head = handle.read(2)
    if not head:
        return "empty file (0 bytes)"
    if head != b"PK" and head[:1] != b"\x80":
        return "neither a zip archive nor a pickle"
    return None


def _load_failure(exc: Exception) -> str:
    """Why ``torch.load`` failed, in one line, without torch's advice to retry with ``weights_only=False``."""
    text = str(exc)
    if isinstance(exc, EOFError):
        return "truncated file"
    if "Weights only load failed" in text:
        imported = re.search(r"GLOBAL (\S+)", text)
        what = f"imports {imported.group(1)}" if imported else "holds more than tensors and numbers"
        return f"a pickle that {what}; refused without running it"
    if "central directory" in text:
        return "truncated or damaged zip archive"
    lines = text.strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


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
    try:
        problem = _not_torch_file(path)
        if problem is None:
            with warnings.catch_warnings():  # torch warns about pickle protocols before refusing them
                warnings.simplefilter("ignore", UserWarning)
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        problem = f"cannot read: {exc.strerror or exc}"
    except Exception as exc:  # a damaged or foreign file fails in torch.load with any of a dozen types
        problem = _load_failure(exc)
    if problem is not None:  # raised here, outside the except clauses: torch's own message stays out of it
        raise CheckpointError(path, problem)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(path, f"no {FORMAT} format tag")
    missing = [k for k in ("model", "classes", "state_dict") if k not in ckpt]
    if missing:
        raise CheckpointError(path, f"no {', '.join(missing)} in it")
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
