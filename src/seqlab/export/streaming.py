"""Streaming inference: one frame in, one prediction out, the recurrent state carried.

:class:`Streamer` loads a run folder, or a step model written by ``seqlab
export --streaming`` (ONNX, or ncnn with its .json), and answers
``push(frame)`` with the class probabilities after that frame; ``reset()``
starts a new stream. Feeding a sequence frame by frame gives what the
whole-sequence model gives after the same frames (pooled heads keep a
running mean or an online softmax as state). Backends: ``compiled``
(seqlab's batch-1 kernels, the fastest), ``eager`` (PyTorch), ``onnx`` (ONNX
Runtime) and ``ncnn``.
"""

from __future__ import annotations

import copy
import csv
import json
import math
from pathlib import Path
from typing import IO

import numpy as np
import torch

from seqlab.errors import SeqlabError
from seqlab.export.graph import StepModel
from seqlab.models.recurrent import use_torch_backend
from seqlab.runs import Run, load_run


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in the input's precision."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class CannotStream(SeqlabError):
    """A classification model that cannot run step by step (it reads whole windows)."""


def step_model(run: Run) -> StepModel:
    if run.task != "classification":
        raise SeqlabError(f"run folder {run.path}: streaming covers classification runs; this one is a {run.task} run")
    model = use_torch_backend(copy.deepcopy(run.model).eval())
    normalizer = run.normalizer
    try:
        return StepModel(model, normalizer.shift, normalizer.scale).eval()
    except ValueError as error:
        name = run.checkpoint["model"]["name"]
        raise CannotStream(f"run folder {run.path}: model {name} cannot stream: {error}. It reads whole windows: "
                          "export it without --streaming, or run seqlab stream --window on the run folder") from None


class Streamer:
    """``push(frame (F,)) -> probabilities (C,)`` with the state carried between calls."""

    def __init__(self, source: str | Path | Run, backend: str = "compiled"):
        """``source``: a run folder (or its loaded :class:`Run`), or an exported step model file."""
        loaded = source if isinstance(source, Run) else None
        source = loaded.path if loaded else Path(source)
        self.backend = backend
        if source.suffix in (".onnx", ".param") and not source.is_file():
            raise SeqlabError(f"{source}: file not found (expected a step model written by seqlab export --streaming)")
        if source.suffix == ".onnx":
            import onnxruntime as ort

            self.session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
            names = [i.name for i in self.session.get_inputs()]
            self.state_names = names[1:]
            self.state_shapes = [tuple(1 if isinstance(d, str) else d for d in i.shape) for i in self.session.get_inputs()[1:]]
            self.features = self.session.get_inputs()[0].shape[1]
            labels = self.session.get_modelmeta().custom_metadata_map.get("seqlab_class_names")
            classes = self.session.get_outputs()[0].shape[1]
            self.class_names = json.loads(labels) if labels else [str(i) for i in range(classes)]
            self.backend = "onnx"
        elif source.suffix == ".param":
            from seqlab.export.ncnn import load_ncnn

            meta = source.with_suffix(".json")
            if not meta.is_file():
                raise SeqlabError(f"{source}: an ncnn step model needs {meta.name} beside it "
                                  "(written by seqlab export --format ncnn --streaming)")
            try:
                info = json.loads(meta.read_text(encoding="utf-8"))
                self.state_shapes = [tuple(int(d) for d in v) for v in info["state_shapes"].values()]
                self.features, self.class_names = int(info["features"]), [str(c) for c in info["class_names"]]
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise SeqlabError(f"{meta}: expected the JSON written by seqlab export --format ncnn --streaming "
                                  f"(features, class_names, state_shapes); {type(error).__name__}: {error}") from None
            self.net = load_ncnn(source)
            self.backend = "ncnn"
        else:
            run = loaded or load_run(source)
            self.step = step_model(run)
            self.class_names = run.class_names
            self.features = int(run.extras["features"])
            if backend == "compiled":
                self._prepare_compiled()
            elif backend != "eager":
                raise SeqlabError(f"--backend: expected compiled, eager or onnx (an .onnx file), got {backend!r}")
        self.reset()

    # -- compiled backend: weights as float32 arrays, kernels from seqlab.kernels.step_kernels
    def _prepare_compiled(self) -> None:
        rnn = self.step.model.encoder.rnn
        if getattr(rnn, "proj_size", 0) or not self.step.model.encoder.reset_after:
            self.backend = "eager"  # the batch-1 kernels have no projection and no reset-before GRU
            return
        self.mode = self.step.model.encoder.mode
        self.relu = self.mode == "rnn" and rnn.nonlinearity == "relu"
        as_np = lambda t: np.ascontiguousarray(t.detach().numpy(), dtype=np.float32)  # noqa: E731
        self.layers = [tuple(as_np(getattr(rnn, f"{n}_l{k}")) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                       for k in range(rnn.num_layers)]
        self.fc = (as_np(self.step.model.fc.weight), as_np(self.step.model.fc.bias))
        self.shift, self.inv_scale = as_np(self.step.shift), 1.0 / as_np(self.step.scale)
        gates = self.layers[0][0].shape[0]
        self.scratch = (np.zeros(gates, np.float32), np.zeros(gates, np.float32))
        self.logits = np.zeros(self.fc[0].shape[0], np.float32)
        self.pool = self.step.pool
        if self.pool == "attention":
            attention = self.step.model.attention
            self.attention = (as_np(attention.project.weight), as_np(attention.project.bias),
                              as_np(attention.score.weight)[0])

    def reset(self) -> None:
        if self.backend in ("onnx", "ncnn"):
            self.state = [np.zeros(s, np.float32) for s in self.state_shapes]
        elif self.backend == "compiled":
            hidden = self.layers[0][1].shape[1]
            self.h = [np.zeros(hidden, np.float32) for _ in self.layers]
            self.c = [np.zeros(hidden, np.float32) for _ in self.layers]
            self.count, self.peak, self.norm = 0, 0.0, 0.0
            self.total = np.zeros(hidden, np.float32)  # mean: sum of outputs; attention: weighted sum
        else:
            self.state = self.step.initial_state(1)

    def push(self, frame) -> np.ndarray:
        x = np.asarray(frame, dtype=np.float32).reshape(-1)
        if x.shape[0] != self.features:
            raise SeqlabError(f"frame has {x.shape[0]} values; the model expects {self.features} features")
        if not np.isfinite(x).all():  # one NaN would stay in the state for the rest of the stream
            raise SeqlabError("frame has NaN or Inf values; expected finite numbers (the state is unchanged)")
        if self.backend == "compiled":
            return self._push_compiled(x)
        if self.backend == "ncnn":
            from seqlab.export.ncnn import ncnn_step

            logits, self.state = ncnn_step(self.net, x, self.state)
            return softmax(logits)
        if self.backend == "onnx":
            outputs = self.session.run(None, {"x": x[None], **dict(zip(self.state_names, self.state))})
            self.state = outputs[1:]
            return softmax(outputs[0][0])
        with torch.no_grad():
            y, *self.state = self.step(torch.from_numpy(x)[None], *self.state)
        return softmax(y[0].numpy())

    def _push_compiled(self, x: np.ndarray) -> np.ndarray:
        from seqlab.kernels import step_kernels as K

        v = (x - self.shift) * self.inv_scale
        gi, gh = self.scratch
        for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(self.layers):
            if self.mode == "gru":
                K.gru_step1(v, self.h[k], w_ih, w_hh, b_ih, b_hh, gi, gh)
            elif self.mode == "lstm":
                K.lstm_step1(v, self.h[k], self.c[k], w_ih, w_hh, b_ih, b_hh, gi, gh)
            else:
                K.rnn_step1(v, self.h[k], w_ih, w_hh, b_ih, b_hh, self.relu, gi, gh)
            v = self.h[k]
        if self.pool is not None:
            v = self._pool(v)
        K.head_step1(self.fc[0], self.fc[1], v, self.logits)
        return softmax(self.logits)

    def _pool(self, top: np.ndarray) -> np.ndarray:
        """Running mean, or attention as an online softmax, of the top layer's outputs so far."""
        self.count += 1
        if self.pool == "mean":
            self.total += top
            return self.total / np.float32(self.count)
        w_project, b_project, w_score = self.attention
        score = float(w_score @ np.tanh(w_project @ top + b_project))
        previous = score if self.count == 1 else self.peak
        self.peak = max(previous, score)
        decay, weight = np.exp(previous - self.peak), np.exp(score - self.peak)
        self.norm = self.norm * decay + weight
        self.total = self.total * np.float32(decay) + np.float32(weight) * top
        return self.total / np.float32(self.norm)


# ----------------------------------------------------------------------------
# Export of the step model


def raw_inputs(run: Run, batch: int, length: int, seed: int) -> torch.Tensor:
    """Raw-scale frames: normal draws mapped through the run's normaliser."""
    normalizer = run.normalizer
    z = np.random.default_rng(seed).normal(size=(batch, length, int(run.extras["features"])))
    return torch.tensor(z * normalizer.scale + normalizer.shift, dtype=torch.float32)


def export_step_model(run: Run, fmt: str, out: Path, tolerance: float, keep_intermediate: bool = False):
    from seqlab.export.exporter import label_onnx, torch_refusals

    step = step_model(run)
    exportable = copy.deepcopy(step)
    if fmt == "ncnn":
        from seqlab.export.ncnn import export_ncnn_step

        return export_ncnn_step(run, step, out, tolerance, keep_intermediate)
    states = step.initial_state(2)
    names = step.state_names
    example = (raw_inputs(run, 2, 1, seed=0)[:, 0], *states)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with torch_refusals(fmt, out):
            if fmt == "onnx":
                axes = {"x": {0: "batch"}, "y": {0: "batch"}}
                axes.update({n: {1 if n in ("h", "c") else 0: "batch"} for n in names})
                axes.update({f"{n}_out": {1 if n in ("h", "c") else 0: "batch"} for n in names})
                torch.onnx.export(exportable, example, str(tmp), dynamo=False, opset_version=17,
                                  input_names=["x"] + names, output_names=["y"] + [f"{n}_out" for n in names],
                                  dynamic_axes=axes)
                label_onnx(tmp, run)
            else:
                torch.jit.trace(exportable, example, check_trace=False).save(str(tmp))
        report = _check_streaming(run, step, tmp, fmt, len(names), out, tolerance)
        tmp.replace(out)
        return report
    finally:
        tmp.unlink(missing_ok=True)


def _check_streaming(run: Run, step: StepModel, path: Path, fmt: str, n_states: int, out: Path, tolerance: float):
    from seqlab.export.exporter import ExportReport

    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def run_step(x, states):
            outputs = session.run(None, {names[0]: x.numpy(), **{n: s.numpy() for n, s in zip(names[1:], states)}})
            return outputs[0], [torch.from_numpy(o) for o in outputs[1:]]
    else:
        loaded = torch.jit.load(str(path))

        def run_step(x, states):
            outputs = loaded(x, *states)
            return outputs[0].detach().numpy(), list(outputs[1:])

    cases = []
    with torch.no_grad():
        for i, batch in enumerate((1, 3)):
            x = raw_inputs(run, batch, min(int(run.extras["steps"]), 30), seed=200 + i)  # (B, T, F)
            reference = whole_sequence_per_step(step, x)  # (B, T, C)
            states = step.initial_state(batch)
            worst = 0.0
            for t in range(x.shape[1]):
                y, states = run_step(x[:, t], states)
                worst = max(worst, float(np.abs(y - reference[:, t]).max()))
            cases.append((batch, x.shape[1], worst))
    top = max(d for _, _, d in cases)
    if not top <= tolerance:
        raise SeqlabError(f"export {fmt} --streaming: step-by-step outputs differ from the whole-sequence model by "
                          f"{top:.3g} (tolerance {tolerance:g}); nothing was written to {out}")
    return ExportReport(out, fmt, True, top, cases)


def whole_sequence_per_step(step: StepModel, x: torch.Tensor) -> np.ndarray:
    """What the whole-sequence model outputs after each step t, computed on the prefix 0..t:
    the head of the top layer's output at t, or the head's pool over outputs 0..t."""
    from seqlab.models.pooling import masked_mean

    model = step.model
    with torch.no_grad():
        outputs, _, _ = model.encoder((x - step.shift) / step.scale)  # (B, T, P)
        if step.pool is None:
            return model.fc(outputs).numpy()  # (B, T, C)
        per_step = []
        for t in range(outputs.shape[1]):
            prefix = outputs[:, : t + 1]
            mask = torch.ones(prefix.shape[:2], dtype=torch.bool)
            pooled = masked_mean(prefix, mask) if step.pool == "mean" else model.attention(prefix, mask)
            per_step.append(model.fc(pooled))
        return torch.stack(per_step, dim=1).numpy()  # (B, T, C)


# ----------------------------------------------------------------------------
# seqlab stream


class WindowClassifier:
    """``classify(frames (W, F)) -> probabilities (C,)``: the whole-sequence model of a run folder on one
    window, for models that cannot run step by step (convolutions over the window, bidirectional layers)."""

    def __init__(self, run: Run, window: int):
        from seqlab.export.graph import Deployable

        self.name = run.checkpoint["model"]["name"]
        self.model = Deployable(copy.deepcopy(run.model).eval(), run.normalizer.shift, run.normalizer.scale).eval()
        self.class_names = run.class_names
        self.features = int(run.extras["features"])
        self.window = window
        self.classify(np.zeros((window, self.features), np.float32))  # a window this model cannot read fails here

    def classify(self, frames) -> np.ndarray:
        x = torch.as_tensor(np.asarray(frames, dtype=np.float32))[None]  # (1, W, F)
        try:
            with torch.no_grad():
                logits = self.model(x)[0].numpy()  # (C,)
        except (ValueError, RuntimeError) as error:  # the model's own check, or a layer torch refuses to run
            raise SeqlabError(f"--window {self.window}: model {self.name} cannot read windows of "
                              f"{self.window} frames: {error}") from None
        return softmax(logits)


def stream_file(run_dir: str | Path, source: IO[str], name: str, out: IO[str], window: int = 0, stride: int = 0,
                backend: str = "compiled") -> int:
    """Read CSV frames (one per row; a header row is skipped) and write one prediction per frame,
    or per window of ``window`` frames every ``stride`` frames (each window from a fresh state).
    A run folder whose model cannot run step by step is read window by window with its
    whole-sequence model (``--window`` is then required). Returns the number of predictions written."""
    check_window(window, stride)
    if window and Path(run_dir).is_dir():
        run = load_run(run_dir)
        try:
            streamer = Streamer(run, backend)
        except CannotStream:
            streamer = WindowClassifier(run, window)
    else:
        streamer = Streamer(run_dir, backend)
    writer = csv.writer(out, lineterminator="\n")
    header = "frame" if not window else "window_end"
    writer.writerow([header, "predicted"] + [f"prob_{c}" for c in streamer.class_names])
    try:
        return _stream_rows(streamer, source, name, writer, out, window, stride)
    except UnicodeDecodeError:
        raise SeqlabError(f"{name}: not UTF-8 text; expected CSV rows of numbers") from None


def check_window(window: int, stride: int) -> None:
    if window < 0 or stride < 0 or (window > 0) != (stride > 0):
        raise SeqlabError(f"--window and --stride: expected two positive frame counts (or neither), "
                          f"got {window} and {stride}")


def _classify_window(streamer, frames) -> np.ndarray:
    """The prediction after a window of frames, read from a fresh state."""
    if isinstance(streamer, WindowClassifier):
        return streamer.classify(frames)
    streamer.reset()
    for frame in frames:
        probabilities = streamer.push(frame)
    return probabilities


def _stream_rows(streamer, source, name: str, writer, out, window: int, stride: int) -> int:
    classes = streamer.class_names
    count, buffer, skip = 0, [], 0
    for line_no, row in enumerate(csv.reader(source), start=1):
        if not row or not "".join(row).strip():
            continue
        try:
            frame = [float(v) for v in row]
        except ValueError:
            if line_no == 1:
                continue  # a header
            raise SeqlabError(f"{name}:{line_no}: expected {streamer.features} numbers, got {row[:4]}...") from None
        if len(frame) != streamer.features:
            raise SeqlabError(f"{name}:{line_no}: expected {streamer.features} features per frame, got {len(frame)}")
        if not all(math.isfinite(v) for v in frame):
            raise SeqlabError(f"{name}:{line_no}: expected finite numbers, got {row[:4]}...")
        if not window:
            probabilities = streamer.push(frame)
            writer.writerow([line_no, classes[int(np.argmax(probabilities))]] + [f"{p:.6f}" for p in probabilities])
            count += 1
            continue
        if skip:  # a stride longer than the window jumps over frames
            skip -= 1
            continue
        buffer.append(frame)
        if len(buffer) == window:
            probabilities = _classify_window(streamer, buffer)
            writer.writerow([line_no, classes[int(np.argmax(probabilities))]] + [f"{p:.6f}" for p in probabilities])
            count += 1
            buffer = buffer[stride:]
            skip = max(0, stride - window)
        out.flush()
    return count
