"""Deployment: export to ONNX, TorchScript and ncnn with parity checks, and streaming inference."""

from seqlab.export.exporter import FORMATS, ExportReport, export_run
from seqlab.export.runtime import OnnxModel

__all__ = ["FORMATS", "ExportReport", "OnnxModel", "export_run"]
