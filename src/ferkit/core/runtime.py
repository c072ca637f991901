"""One way to open an ONNX Runtime session for ferkit's models on the CPU."""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FerkitError
from .cpuinfo import default_threads, first_cpu

INT8_WEIGHT_BITS = "7"
"""The weight width ``ferkit export --int8`` writes, recorded as the model's ``weight_bits`` metadata: int8 weights
within +-64, exact in the fused int8 kernels of every x86 CPU (see :func:`int8_kernels_saturate`)."""

CALIBRATION_METHODS = ("minmax", "percentile")
"""How ``ferkit export --int8`` sets activations' ranges from the calibration faces: the extremes seen, or the
:data:`PERCENTILE`-th percentile of their magnitudes (ONNX Runtime's calibrators; its entropy calibrator, reached
through ``quantize_static``, has as many histogram bins as quantised ones and so gives the extremes too); recorded
as the model's ``calibration`` metadata."""
PERCENTILE = 99.999


def file_sha256(path: Path) -> str:
    """The first 12 hex digits of a file's SHA-256 (a model file's identity: its name may be reused); remembered
    while the file's size and modification time stay the same."""
    stat = Path(path).stat()
    return _file_sha256(Path(path).resolve(), stat.st_size, stat.st_mtime_ns)


@functools.cache
def _file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:12]


class ModelError(FerkitError, ValueError):
    """A model file that ONNX Runtime cannot load, or that is not one of ferkit's; the message names it."""

    def __init__(self, path: str | Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


def check_calibration_method(method: str) -> str:
    """``method`` if it is one of :data:`CALIBRATION_METHODS`, else a clear error."""
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}, not {method!r}")
    return method


def _ort_reason(exc: Exception) -> str:
    """The reason in an ONNX Runtime error (``[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from X
    failed:Protobuf parsing failed.``), in one line."""
    text = " ".join(str(exc).split())
    found = re.search(r"failed:\s*(.+?)\.?$", text)
    return found.group(1) if found else text


def int8_kernels_saturate() -> bool:
    """Whether this is an x86 CPU with AVX2 but no VNNI, where ONNX Runtime's fused int8 convolutions multiply
    uint8 activations by int8 weights with VPMADDUBSW, whose 16-bit sums of two products saturate with 8-bit weights
    (exact with 7-bit ones): the default model of 2026-12-04 with 8-bit weights lost 2.6 points of PublicTest that
    way on a first-generation EPYC (65.53% against 68.12%)."""
    flags = first_cpu().get("flags", "").split()
    return "avx2" in flags and not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)


def _needs_unfused_int8(session: Any) -> bool:
    """Whether ``session``'s model is int8 with 8-bit weights (ferkit exports before :data:`INT8_WEIGHT_BITS`) and
    this CPU's fused int8 kernels would saturate on them (:func:`int8_kernels_saturate`)."""
    meta = session.get_modelmeta().custom_metadata_map
    return "int8" in meta.get("precision", "").split("+") and meta.get("weight_bits") != INT8_WEIGHT_BITS and int8_kernels_saturate()


def cpu_session(path: str | Path, threads: int | None = None, fixed_dims: dict[str, int] | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU with every core (or ``threads``, or ``$OMP_NUM_THREADS``) and
    no thread spinning: the face detector and the classifier run one after the other on the same cores, and
    spinning threads of one slowed the other (2x end to end in paired runs on 2 cores). ``fixed_dims``
    pins named dynamic dimensions, so the graph is optimised for that one shape. An int8 model with 8-bit
    weights on a CPU whose fused int8 kernels saturate (:func:`int8_kernels_saturate`) is opened with its
    quantise/dequantise pairs unfused, so its convolutions run in float on the int8-rounded values (as accurate
    as intended, but slower); ``ferkit export --int8`` writes 7-bit weights, exact in the fused kernels. A file
    ONNX Runtime cannot load raises :class:`ModelError`."""
    import onnxruntime as ort

    def open_session(unfused_int8: bool) -> Any:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if unfused_int8:
            opts.add_session_config_entry("session.disable_quant_qdq", "1")
        for name, value in (fixed_dims or {}).items():
            opts.add_free_dimension_override_by_name(name, value)
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    try:
        session = open_session(unfused_int8=False)
    except Exception as exc:  # ONNX Runtime's error types (InvalidProtobuf, Fail, ...) share no narrower base
        raise ModelError(path, f"not an ONNX model ({_ort_reason(exc)})") from None
    return open_session(unfused_int8=True) if _needs_unfused_int8(session) else session
