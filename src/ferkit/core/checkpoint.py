"""Checkpoints: a typed :class:`Checkpoint`, stored as a plain dict of tensors and numbers, written
atomically and read with ``weights_only=True``."""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.dataset import FERDataset, load_dataset, split_settings
from ..errors import FerkitError
from ..models.registry import create_model

FORMAT = "ferkit-checkpoint-1"
REQUIRED = ("model", "classes", "state_dict")
# What only ``last.pt`` holds, to continue training: stored as top-level keys, kept in ``Checkpoint.resume``.
# partial: an epoch cut short (mid-epoch last.pt); cuda_rng: the training GPU's random state (runs on CUDA).
RESUME_KEYS = ("ema_state_dict", "optimizer", "scheduler", "generator", "torch_rng", "cuda_rng", "best_acc",
               "best_epoch", "bad_epochs", "history", "partial")


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


def _umask() -> int:
    """The process's umask (read by setting it, then setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_atomic(obj: dict[str, Any], path: str | Path) -> None:
    """Write to a temporary file beside ``path``, then rename: a crash never leaves half a file. The file gets the
    permissions of any new file (0666 less the umask), not the temporary file's private 0600."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass
class Checkpoint:
    """A trained model: its registry name, classes, input (size, channels, normalisation), the training
    configuration (``TrainConfig.to_dict()``), its weights, and with ``resume`` what continues the run.

    On disk it is the plain dict of :meth:`to_dict` (the keys older ferkit versions write and read).
    ``ckpt["key"]``, ``ckpt.get`` and ``in`` read that dict, for code written against it."""

    model: str
    classes: list[str]
    state_dict: dict[str, torch.Tensor]
    mean: float = 0.0  # of the Training pixels scaled to 0..1 (a file without them: no normalisation)
    std: float = 1.0
    input_size: int = 48
    channels: int = 1
    config: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None
    stage: str | None = None
    val_acc: float | None = None
    stored_as: str | None = None  # "float16": the weights were halved for shipping (cast back on loading)
    resume: dict[str, Any] = field(default_factory=dict)  # RESUME_KEYS found in the file

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Checkpoint":
        """The checkpoint of a loaded dict (one with REQUIRED keys; other unknown keys are ignored)."""
        optional = ("mean", "std", "input_size", "channels", "config", "epoch", "stage", "val_acc", "stored_as")
        return cls(model=d["model"], classes=list(d["classes"]), state_dict=d["state_dict"],
                   **{k: d[k] for k in optional if k in d}, resume={k: d[k] for k in RESUME_KEYS if k in d})

    def to_dict(self) -> dict[str, Any]:
        """The on-disk dict: tensors, numbers, strings, lists and dicts only."""
        d: dict[str, Any] = {"format": FORMAT, "model": self.model, "classes": list(self.classes),
                             "input_size": self.input_size, "channels": self.channels, "mean": self.mean,
                             "std": self.std, "config": self.config, "state_dict": self.state_dict}
        d.update({k: v for k, v in (("epoch", self.epoch), ("stage", self.stage), ("val_acc", self.val_acc),
                                    ("stored_as", self.stored_as)) if v is not None})
        return {**d, **self.resume}

    @classmethod
    def load(cls, path: str | Path) -> "Checkpoint":
        """:func:`load_checkpoint`."""
        return load_checkpoint(path)

    def save(self, path: str | Path) -> None:
        """Write atomically (:func:`save_atomic`)."""
        save_atomic(self.to_dict(), path)

    def inference_only(self) -> "Checkpoint":
        """This checkpoint without its resume state (optimizer, schedule, random states, history)."""
        return Checkpoint(**{**self.__dict__, "resume": {}})

    @property
    def labels(self) -> str:
        """The label set it was trained on (fer2013, ferplus, ferplus-soft)."""
        return self.config.get("labels", "fer2013")

    def build_model(self) -> nn.Module:
        """Its network with its weights, in eval mode (float16-stored weights cast back to float32)."""
        model = create_model(self.model, num_classes=len(self.classes), in_chans=self.channels)
        model.load_state_dict(self.state_dict)
        return model.eval()

    def dataset(self, data: str | Path | FERDataset | None = None, labels: str | None = None,
                ferplus: str | Path | None = None, skip_bad_rows: bool = False, progress: bool = False) -> FERDataset | None:
        """The data set to evaluate it on, read and split as its run did (its ``val_fraction``, ``seed``, ``split_by``,
        ``classes``, ``faces`` ...): ``data`` (default: its run's data, None when that is gone), with ``labels``
        (default: its own). Data of its classes in another order (a frequency-encoded run's) is renumbered in its
        order, so that labels compare with its predictions."""
        from .detect import FaceCropper  # OpenCV and the detector, only for data that needs them

        if data is None:
            data = self.config.get("data")
            if not data or not Path(data).exists():
                return None
        if not isinstance(data, FERDataset):
            data = load_dataset(data, labels=labels or self.labels, ferplus=ferplus, skip_bad_rows=skip_bad_rows,
                                progress=progress, size=self.input_size, cropper=FaceCropper(self.input_size),
                                **split_settings(self.config))
        if list(data.classes) != self.classes and sorted(data.classes) == sorted(self.classes):
            return data.in_class_order(self.classes)
        return data

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()


def load_checkpoint(path: str | Path) -> Checkpoint:
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
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(path, f"no {', '.join(missing)} in it")
    return Checkpoint.from_dict(ckpt)


def as_checkpoint(ckpt: str | Path | Checkpoint | Mapping[str, Any]) -> Checkpoint:
    """A :class:`Checkpoint` from a path (loaded), a checkpoint, or its dict."""
    if isinstance(ckpt, Checkpoint):
        return ckpt
    if isinstance(ckpt, Mapping):
        return Checkpoint.from_dict(ckpt)
    return load_checkpoint(ckpt)


def model_from_checkpoint(path_or_ckpt: str | Path | Checkpoint | Mapping[str, Any]) -> tuple[nn.Module, Checkpoint]:
    """Rebuild the model of a checkpoint in eval mode; returns (model, checkpoint)."""
    ckpt = as_checkpoint(path_or_ckpt)
    return ckpt.build_model(), ckpt


def save_half(src: str | Path, dst: str | Path) -> Path:
    """Copy a checkpoint keeping only what inference needs (no optimizer or resume state), with its
    floating-point weights stored as float16: half the file. Loading casts them back to float32."""
    ckpt = load_checkpoint(src).inference_only()
    ckpt.state_dict = {k: v.half() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
    ckpt.stored_as = "float16"
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    ckpt.save(dst)
    return dst
