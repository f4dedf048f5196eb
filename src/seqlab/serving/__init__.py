"""Serving: running what ``seqlab export`` writes, and run folders, on new data.

* :class:`OnnxModel` runs a whole-sequence ONNX export on batches, split
  across the CPU's cores;
* :class:`Streamer` answers one frame at a time with the recurrent state
  carried (a run folder, or a step model exported with ``--streaming``);
* :class:`WindowClassifier` reads whole windows, for models that cannot
  stream;
* :func:`stream_file` is ``seqlab stream``: CSV frames in, predictions out.

Exporting (writing graphs and proving them against eager PyTorch) is
:mod:`seqlab.export`; serving only reads its files.
"""

from seqlab.serving.onnx_model import OnnxModel
from seqlab.serving.stream_csv import stream_file
from seqlab.serving.streamer import Streamer, WindowClassifier

__all__ = ["OnnxModel", "Streamer", "WindowClassifier", "stream_file"]
