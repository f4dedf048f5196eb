"""Deployment: export to ONNX, TorchScript and ncnn with parity checks, and streaming inference."""

from seqlab.export.exporter import FORMATS, ExportReport, export_run

__all__ = ["FORMATS", "ExportReport", "export_run"]
