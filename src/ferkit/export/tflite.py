"""TFLite export for mobile (the Best Actor project shipped TFLite), through litert-torch.

Optional: ``pip install 'ferkit[tflite]'`` (litert-torch and ai-edge-litert; large). The model takes
one grey face as float32 (1, 1, 48, 48), values 0..255, and returns the class probabilities (1, C);
``<file>.json`` beside it names the classes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.checkpoint import model_from_checkpoint
from .onnx import ExportWrapper

NEEDS = "--format tflite needs litert-torch: pip install 'ferkit[tflite]'"


def export_tflite(ckpt: dict[str, Any], out: Path) -> Path:
    """Convert a loaded checkpoint to ``out`` (.tflite) plus ``out.json`` with its classes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        import litert_torch
    except ImportError as exc:
        raise ImportError(NEEDS) from exc
    model, _ = model_from_checkpoint(ckpt)
    wrapper = ExportWrapper(model, ckpt["mean"], ckpt["std"]).eval()
    litert_torch.convert(wrapper, (torch.zeros(1, 1, 48, 48),)).export(str(out))
    meta = {"model": ckpt["model"], "classes": list(ckpt["classes"]),
            "input": "one grey face float32 (1, 1, 48, 48), values 0..255", "output": "class probabilities (1, C)"}
    Path(f"{out}.json").write_text(json.dumps(meta, indent=2))
    return out


def tflite_predict_proba(path: str | Path, faces: np.ndarray) -> np.ndarray:
    """Probabilities (N, C) for uint8 faces (N, 48, 48) with the LiteRT interpreter, one face at a time."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    probs = []
    for face in np.asarray(faces, np.float32):
        it.set_tensor(inp, face[None, None])
        it.invoke()
        probs.append(it.get_tensor(out)[0].copy())
    return np.stack(probs)
