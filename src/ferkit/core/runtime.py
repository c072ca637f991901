"""One way to open an ONNX Runtime session for ferkit's models on the CPU."""

from __future__ import annotations

import os
import re
from functools import lru_cache
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


@lru_cache(maxsize=1)
def int8_kernels_saturate() -> bool:
    """Whether this is an x86 CPU with AVX2 but no VNNI, where ONNX Runtime's fused int8 convolutions multiply
    uint8 activations by int8 weights with VPMADDUBSW, whose 16-bit pair sums saturate: the shipped int8 default
    lost 2.6 points of PublicTest that way on a first-generation EPYC (65.53% against 68.15%)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("flags")), [])
    return "avx2" in flags and not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)


def cpu_session(path: str | Path, threads: int | None = None, fixed_dims: dict[str, int] | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU with every core (or ``threads``) and no thread
    spinning: the face detector and the classifier run one after the other on the same cores, and
    spinning threads of one slowed the other (2x end to end in paired runs on 2 cores). ``fixed_dims``
    pins named dynamic dimensions, so the graph is optimised for that one shape. Where
    :func:`int8_kernels_saturate`, an int8 (QDQ) model's quantise/dequantise pairs are left unfused, so its
    convolutions run in float on the int8-rounded values (as accurate as intended, about 20% slower). A file
    ONNX Runtime cannot load raises :class:`ModelError`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if int8_kernels_saturate():
        opts.add_session_config_entry("session.disable_quant_qdq", "1")
    for name, value in (fixed_dims or {}).items():
        opts.add_free_dimension_override_by_name(name, value)
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime's error types (InvalidProtobuf, Fail, ...) share no narrower base
        reason = _ort_reason(exc)
    raise ModelError(path, f"not an ONNX model ({reason})")
