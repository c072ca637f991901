"""What ``ferkit export`` reports about the file it wrote (one model's export, or an ensemble's merge)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class ExportResult:
    path: Path
    max_abs_diff: float  # largest |PyTorch - runtime| probability on the check images (ensemble: |members - file|)
    val_acc_torch: float | None  # validation-split (PublicTest) accuracy of the checkpoint in PyTorch (of the members)
    val_acc_export: float | None  # ... and of the exported file on its runtime (ONNX Runtime or LiteRT)
    temperature: float = 1.0  # the logits are divided by it before the softmax
    val_ece_torch: float | None = None  # validation-split calibration error of the checkpoint (temperature 1)
    val_ece_export: float | None = None  # ... and of the exported file, with its temperature
    val_agreement: float | None = None  # share of validation faces on which the file and PyTorch pick one class
    val_mean_abs_diff: float | None = None  # mean |PyTorch - file| probability over the validation faces' classes
