"""ferkit: facial emotion recognition. Train honest FER2013 models; evaluate, export and use them.

The functions mirror the CLI: ``ferkit.train`` = ``ferkit train``, ``ferkit.evaluate`` = ``ferkit evaluate``,
``ferkit.export`` = ``ferkit export``, ``ferkit.predict`` = ``ferkit predict``, ``ferkit.data_report`` =
``ferkit data-report``, ``ferkit.list_models`` = ``ferkit models``; ``ferkit.Recognizer`` for photos in code.
Every name is imported on first use, so ``import ferkit`` loads neither PyTorch nor ONNX Runtime.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from .version import __version__

_LAZY = {  # public name -> (module, attribute)
    "DataError": ("ferkit.data", "DataError"),
    "FER2013_CLASSES": ("ferkit.data", "FER2013_CLASSES"),
    "FERPLUS_CLASSES": ("ferkit.data", "FERPLUS_CLASSES"),
    "FERDataset": ("ferkit.data", "FERDataset"),
    "load_dataset": ("ferkit.data", "load_dataset"),
    "data_report": ("ferkit.data.report", "data_report"),
    "evaluate": ("ferkit.evaluation", "evaluate"),
    "export": ("ferkit.export", "export"),
    "count_macs": ("ferkit.models", "count_macs"),
    "count_parameters": ("ferkit.models", "count_parameters"),
    "create_model": ("ferkit.models", "create_model"),
    "list_models": ("ferkit.models", "list_models"),
    "TrainConfig": ("ferkit.training.config", "TrainConfig"),
    "load_checkpoint": ("ferkit.core.checkpoint", "load_checkpoint"),
    "model_from_checkpoint": ("ferkit.core.checkpoint", "model_from_checkpoint"),
    "train": ("ferkit.training.trainer", "train"),
    "Recognizer": ("ferkit.inference", "Recognizer"),
    "Face": ("ferkit.inference", "Face"),
    "shipped_models": ("ferkit.core.classifier", "shipped_models"),
    "predict": ("ferkit.apps.predict", "predict_files"),
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PyTorch, ONNX Runtime and OpenCV load only when needed)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'ferkit' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    if name != "export":  # see _Package
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


class _Package(types.ModuleType):
    """Keeps ``ferkit.export`` the function: importing the ``ferkit.export`` package would rebind it to the package."""

    @property
    def export(self) -> Any:
        return __getattr__("export")

    @export.setter
    def export(self, value: Any) -> None:
        if not isinstance(value, types.ModuleType):
            raise AttributeError("ferkit.export is read-only")


sys.modules[__name__].__class__ = _Package


__all__ = sorted(_LAZY)
