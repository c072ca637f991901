"""TFLite export for mobile (the Best Actor project shipped TFLite), through litert-torch.

Optional: ``pip install 'ferkit[tflite]'`` (litert-torch and ai-edge-litert; large). The model takes
one grey face as float32 (1, 1, S, S), S the checkpoint's input size, values 0..255, and returns the
class probabilities (1, C);
``<file>.json`` beside it names the classes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..core.checkpoint import Checkpoint
from ..errors import optional_import
from .onnx import ExportWrapper, input_shape



def export_tflite(ckpt: Checkpoint, out: Path, temperature: float = 1.0) -> Path:
    """Convert a loaded checkpoint to ``out`` (.tflite) plus ``out.json`` with its classes; the logits are divided
    by ``temperature`` before the softmax."""
    out.parent.mkdir(parents=True, exist_ok=True)
    litert_torch = optional_import("litert_torch", "tflite", "--format tflite")
    wrapper = ExportWrapper(ckpt.build_model(), ckpt.mean, ckpt.std, ckpt.channels, temperature).eval()
    litert_torch.convert(wrapper, (torch.zeros(input_shape(ckpt, 1)),)).export(str(out))
    meta = {"model": ckpt.model, "classes": list(ckpt.classes),
            "input": f"one grey face float32 ({', '.join(map(str, input_shape(ckpt, 1)))}), values 0..255",
            "output": "class probabilities (1, C)", "temperature": float(temperature)}
    Path(f"{out}.json").write_text(json.dumps(meta, indent=2))
    return out


def tflite_predict_proba(path: str | Path, faces: np.ndarray) -> np.ndarray:
    """Probabilities (N, C) for uint8 faces (N, S, S) with the LiteRT interpreter, one face at a time."""
    litert = optional_import("ai_edge_litert.interpreter", "tflite", "checking a TFLite model")
    it = litert.Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    probs = []
    for face in np.asarray(faces, np.float32):
        it.set_tensor(inp, face[None, None])
        it.invoke()
        probs.append(it.get_tensor(out)[0].copy())
    return np.stack(probs)
