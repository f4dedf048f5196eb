"""Deployment: export to ONNX, TorchScript and ncnn, each file proven against eager PyTorch.

:func:`export_run` writes a run folder's model as a whole-sequence graph or,
with ``streaming``, as a step model with explicit state; every export passes
through one parity harness (:mod:`seqlab.export.parity`) before it is moved
into place. Running the files is :mod:`seqlab.serving`.
"""

from seqlab.export.exporter import FORMATS, export_run
from seqlab.export.parity import ExportReport

__all__ = ["FORMATS", "ExportReport", "export_run"]
