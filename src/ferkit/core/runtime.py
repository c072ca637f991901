"""One way to open an ONNX Runtime session for ferkit's models on the CPU."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..errors import FerkitError


class ModelError(FerkitError, ValueError):
    """A model file that ONNX Runtime cannot load, or that is not one of ferkit's; the message names it."""

    def __init__(self, path: str | Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


def _ort_reason(exc: Exception) -> str:
    """The reason in an ONNX Runtime error (``[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from X
    failed:Protobuf parsing failed.``), in one line."""
    text = " ".join(str(exc).split())
    found = re.search(r"failed:\s*(.+?)\.?$", text)
    return found.group(1) if found else text


def cpu_session(path: str | Path, threads: int | None = None, fixed_dims: dict[str, int] | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU with every core (or ``threads``) and no thread
    spinning: the face detector and the classifier run one after the other on the same cores, and
    spinning threads of one slowed the other (2x end to end in paired runs on 2 cores). ``fixed_dims``
    pins named dynamic dimensions, so the graph is optimised for that one shape. A file ONNX Runtime
    cannot load raises :class:`ModelError`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    for name, value in (fixed_dims or {}).items():
        opts.add_free_dimension_override_by_name(name, value)
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime's error types (InvalidProtobuf, Fail, ...) share no narrower base
        reason = _ort_reason(exc)
    raise ModelError(path, f"not an ONNX model ({reason})")
