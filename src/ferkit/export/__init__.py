"""Export trained checkpoints for deployment: ONNX fp32 and static int8."""

from .export import ExportResult, export
from .onnx import export_onnx

__all__ = ["ExportResult", "export", "export_onnx"]
