"""Streaming inference: one frame in, one prediction out, the recurrent state carried.

:class:`Streamer` loads a run folder, or a step model written by ``seqlab
export --streaming`` (ONNX, or ncnn with its .json), and answers
``push(frame)`` with the class probabilities after that frame; ``reset()``
starts a new stream. Feeding a sequence frame by frame gives what the
whole-sequence model gives after the same frames (pooled heads keep a
running mean or an online softmax as state). Backends: ``compiled``
(seqlab's batch-1 kernels, the fastest), ``eager`` (PyTorch), ``onnx`` (ONNX
Runtime) and ``ncnn``. :class:`WindowClassifier` reads whole windows with
the whole-sequence model, for models that cannot run step by step.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch

from seqlab.errors import SeqlabError
from seqlab.kernels import step_kernels as K
from seqlab.models.recurrent import use_torch_backend
from seqlab.models.registry import get_model_entry
from seqlab.runs import Run, load_run
from seqlab.serving.modules import STEPWISE_MODELS, Deployable, StepModel
from seqlab.serving.ncnn_runtime import load_ncnn, ncnn_step


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in the input's precision."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class CannotStream(SeqlabError):
    """A classification model that cannot run step by step (it reads whole windows)."""


def step_model(run: Run) -> StepModel:
    """The run's step model; :class:`CannotStream` (with the reason) where its model reads whole windows."""
    if run.task != "classification":
        raise SeqlabError(f"run folder {run.path}: streaming covers classification runs; this one is a {run.task} run")
    model = use_torch_backend(copy.deepcopy(run.model).eval())
    normalizer = run.normalizer
    name = run.checkpoint["model"]["name"]
    try:
        step = StepModel(model, normalizer.shift, normalizer.scale)  # the reason the model's options give, if any
        if not get_model_entry(name).streamable:  # a family registered without streaming
            raise ValueError(STEPWISE_MODELS)
        return step.eval()
    except ValueError as error:
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

    # -- compiled backend: weights as float32 arrays, kernels from seqlab.kernels.step_kernels (K)
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


class WindowClassifier:
    """``classify(frames (W, F)) -> probabilities (C,)``: the whole-sequence model of a run folder on one
    window, for models that cannot run step by step (convolutions over the window, bidirectional layers)."""

    def __init__(self, run: Run, window: int):
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
