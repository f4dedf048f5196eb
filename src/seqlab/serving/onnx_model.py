"""Whole-sequence ONNX exports under ONNX Runtime, a batch split across the CPU's cores.

``seqlab export --format onnx`` writes a graph ``y = f(x (B, T, F)[, lengths (B,)])``
with the run's normaliser inside (``x`` is (B, T) token or character ids for
text models and character language models). :class:`OnnxModel` runs it. A recurrent layer is a chain of small
per-step products, and ONNX Runtime's intra-op threads split each of them,
so the threads meet once per step. Instead, a batch is cut into parts of
about ``part_rows`` rows that run at once, ``workers`` at a time, on one
single-threaded session. Each core then runs whole parts from the first step
to the last without waiting for the others. ONNX Runtime supports concurrent
``run`` calls on one session, and ``run`` holds no Python lock while it
computes. Small parts also keep a part's per-step buffers in cache. With
variable lengths the rows are sorted by length first, so the recurrent
operators of a part of short sequences stop early. The rows of a batch are
independent, so the results are those of one call on the whole batch.
benchmarks/inference_speed.py times this against a single call and against
eager PyTorch, part sizes included. A batch of one row, or ``workers=1``, is one call with ONNX
Runtime's default threading.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from seqlab.errors import SeqlabError
from seqlab.kernels.policy import part_bounds
from seqlab.kernels.parallel import usable_cores


# Rows per part of a split batch. In GRU and LSTM classifiers at B=64, T=250, parts of 4 and 8 rows
# were within noise of each other and 0.9-1.2x the speed of halves; a smaller part is also shorter
# when lengths vary (BENCHMARKS.md; benchmarks/inference_speed.py, onnxruntime_split_rows cases).
PART_ROWS = 4


class OnnxModel:
    """``model(x (B, T, F)[, lengths (B,)]) -> y (B, ...)`` for a whole-sequence ONNX export.

    ``workers``: how many parts of a batch run at once (default: the usable
    CPU cores; 1 runs every batch as one call with ONNX Runtime's own
    threading); ``part_rows``: about how many rows a part holds (at least
    ``workers`` parts are made from a batch of that many rows or more).
    ``lengths`` is needed only by exports that pack variable lengths (the
    default for models that do); an export made with ``--fixed-length``
    reads every row at the batch's length and refuses ``lengths``.
    """

    def __init__(self, path: str | Path, workers: int | None = None, part_rows: int = PART_ROWS):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise SeqlabError(f"{self.path}: file not found (expected an ONNX file written by seqlab export)")
        self.workers = usable_cores() if workers is None else int(workers)
        if self.workers < 1:
            raise SeqlabError(f"--workers: expected at least 1, got {self.workers}")
        self.part_rows = max(1, int(part_rows))
        try:
            self._session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable graphs
            raise SeqlabError(f"{self.path}: ONNX Runtime cannot load it ({type(error).__name__}: "
                              f"{str(error).splitlines()[0]})") from None
        inputs = self._session.get_inputs()
        self.input_names = [i.name for i in inputs]
        if self.input_names not in (["x"], ["x", "lengths"]):
            hint = (" (a step model written with --streaming: use Streamer or seqlab stream)"
                    if len(inputs[0].shape) == 2 else "")
            raise SeqlabError(f"{self.path}: expected a whole-sequence export with inputs x[, lengths], "
                              f"got inputs {', '.join(self.input_names)}{hint}")
        self.variable_length = "lengths" in self.input_names
        self._dtype = np.int64 if inputs[0].type == "tensor(int64)" else np.float32
        feature_axis = inputs[0].shape[2] if len(inputs[0].shape) == 3 else None
        self.features = feature_axis if isinstance(feature_axis, int) else None
        meta = self._session.get_modelmeta().custom_metadata_map
        self.task = meta.get("seqlab_task")
        self.class_names = json.loads(meta["seqlab_class_names"]) if "seqlab_class_names" in meta else None
        self.target_names = json.loads(meta["seqlab_target_names"]) if "seqlab_target_names" in meta else None
        self._single = None  # the single-threaded session the workers share, made on first use
        self._pool = None

    def __call__(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=self._dtype)
        rank = 2 if self._dtype == np.int64 else 3
        if rank == 2 and x.ndim == 3 and x.shape[2] == 1:  # token ids as a .npz holds them, (N, T, 1)
            x = x[..., 0]
        wrong_features = rank == 3 and self.features is not None and x.shape[2] != self.features
        if x.ndim != rank or x.shape[0] == 0 or wrong_features:
            expected = "(B >= 1, T) token or character ids" if rank == 2 else f"(B >= 1, T, {self.features or 'F'})"
            raise SeqlabError(f"{self.path}: expected x of shape {expected}, got {x.shape}")
        if self._dtype == np.float32 and not np.isfinite(x).all():
            raise SeqlabError(f"{self.path}: x holds {int((~np.isfinite(x)).sum())} NaN or Inf values; "
                              "expected finite numbers")
        if lengths is not None:
            if not self.variable_length:
                raise SeqlabError(f"{self.path}: exported with --fixed-length (or for a model that reads every "
                                  "sequence at the batch's length), it takes no lengths; export without "
                                  "--fixed-length for variable lengths")
            lengths = np.asarray(lengths, dtype=np.int64)
            if lengths.shape != (x.shape[0],):
                raise SeqlabError(f"{self.path}: expected lengths of shape ({x.shape[0]},), got {lengths.shape}")
            if lengths.min() < 1 or lengths.max() > x.shape[1]:
                raise SeqlabError(f"{self.path}: expected lengths in 1..{x.shape[1]}, "
                                  f"got {lengths.min()}..{lengths.max()}")
        elif self.variable_length:
            lengths = np.full(x.shape[0], x.shape[1], dtype=np.int64)
        B = x.shape[0]
        if self.workers == 1 or B == 1:
            return self._run(self._session, {"x": x} if lengths is None else {"x": x, "lengths": lengths})
        if self._single is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            self._single = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="seqlab-onnx")
        bounds = part_bounds(B, self.workers, self.part_rows)  # part sizes differ by at most one row
        order = None
        if lengths is not None and lengths.min() < lengths.max():
            order = np.argsort(-lengths, kind="stable")  # longest first: the longest parts start first
            x, lengths = x[order], lengths[order]
        # Every part keeps all T steps, so that each row sees what it sees in one call (a convolution
        # reads past a row's end); the recurrent operators stop at the part's longest length anyway.
        feeds = [{"x": x[r0:r0 + n]} if lengths is None else {"x": x[r0:r0 + n], "lengths": lengths[r0:r0 + n]}
                 for r0, n in bounds]
        futures = [self._pool.submit(self._run, self._single, feed) for feed in feeds]
        y = np.concatenate([future.result() for future in futures], axis=0)  # (B, ...)
        if order is None:
            return y
        restored = np.empty_like(y)
        restored[order] = y
        return restored

    def _run(self, session, feed: dict) -> np.ndarray:
        try:
            return session.run(None, feed)[0]
        except Exception as error:  # onnxruntime's own exception types: shapes the graph cannot take
            raise SeqlabError(f"{self.path}: ONNX Runtime could not run it on x of shape {feed['x'].shape} "
                              f"({str(error).splitlines()[0]})") from None

    def close(self) -> None:
        """Stop the worker threads (also done when the process exits)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            self._single = None
