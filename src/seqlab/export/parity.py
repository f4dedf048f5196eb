"""The parity harness: an exported file, run by its own runtime, against eager PyTorch.

Every export (ONNX, TorchScript, ncnn; whole-sequence or step model) is
checked by :func:`check_parity`: both sides run on the same input cases, the
largest absolute difference is reported per case, and above the tolerance the
export fails (the caller has written nothing at ``out`` yet). A step model is
compared through :func:`stepwise`, which feeds a sequence frame by frame and
stacks the outputs, against :func:`whole_sequence_per_step`, what the
whole-sequence model outputs after each step.

Symbols: B batch, T steps, F features, C outputs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from seqlab.errors import SeqlabError
from seqlab.models.pooling import masked_mean
from seqlab.runs import Run
from seqlab.serving.modules import StepModel


@dataclass
class ExportReport:
    path: Path
    format: str
    streaming: bool
    max_abs_diff: float
    cases: list[tuple[int, int, float]] = field(default_factory=list)  # (batch, length, diff)
    note: str = ""
    quantization: dict | None = None  # --quantize: float32 against int8 on the run's test split


def _array(value) -> np.ndarray:
    return value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def check_parity(exported: Callable, eager: Callable, cases: list[tuple], tolerance: float, out: Path, fmt: str,
                 streaming: bool = False, note: str = "", path: Path | None = None) -> ExportReport:
    """The largest difference between ``exported(*inputs)`` and ``eager(*inputs)`` over the input ``cases``
    (each a tuple whose first item is x (B, T, ...)); raises :class:`SeqlabError` above ``tolerance``.
    The report names ``path`` (default ``out``), the file the export ends up as."""
    diffs = []
    with torch.no_grad():
        for inputs in cases:
            got, expected = _array(exported(*inputs)), _array(eager(*inputs))
            diff = float(np.abs(got.reshape(-1) - expected.reshape(-1)).max())
            diffs.append((int(inputs[0].shape[0]), int(inputs[0].shape[1]), diff))
    worst = max(d for _, _, d in diffs)
    if not worst <= tolerance:  # also catches NaN
        what = (f"export {fmt} --streaming: step-by-step outputs differ from the whole-sequence model" if streaming
                else f"export {fmt}: the exported model differs from eager PyTorch")
        raise SeqlabError(f"{what} by {worst:.3g} (tolerance {tolerance:g}); nothing was written to {out}")
    return ExportReport(path or out, fmt, streaming, worst, diffs, note)


# ----------------------------------------------------------------------------
# Inputs and references


def raw_inputs(run: Run, batch: int, length: int, seed: int) -> torch.Tensor:
    """Raw-scale frames (B, T, F): normal draws mapped through the run's normaliser."""
    normalizer = run.normalizer
    z = np.random.default_rng(seed).normal(size=(batch, length, int(run.extras["features"])))
    return torch.tensor(z * normalizer.scale + normalizer.shift, dtype=torch.float32)


def whole_sequence_per_step(step: StepModel, x: torch.Tensor) -> np.ndarray:
    """What the whole-sequence model outputs after each step t, computed on the prefix 0..t:
    the head of the top layer's output at t, or the head's pool over outputs 0..t."""
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
# Runners of exported files


def stepwise(step: Callable, initial_state: Callable) -> Callable:
    """``step(x_t (B, F), states) -> (y_t (B, C), states')`` as a whole-sequence function
    ``x (B, T, F) -> y (B, T, C)``, the states starting at ``initial_state(B)``."""

    def run(x: torch.Tensor) -> np.ndarray:
        states, outputs = initial_state(x.shape[0]), []
        for t in range(x.shape[1]):
            y, states = step(x[:, t], states)
            outputs.append(_array(y))
        return np.stack(outputs, axis=1)  # (B, T, C)

    return run


def onnx_runner(path: Path, names: list[str]) -> Callable:
    """``runner(*inputs) -> y`` for a whole-sequence ONNX file with inputs ``names``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda *inputs: session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0]


def onnx_step_runner(path: Path) -> Callable:
    """``step(x_t, states) -> (y_t, states')`` for an ONNX step model (inputs x, then the states)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def step(x, states):
        outputs = session.run(None, {names[0]: x.numpy(), **{n: s.numpy() for n, s in zip(names[1:], states)}})
        return outputs[0], [torch.from_numpy(o) for o in outputs[1:]]

    return step


def load_torchscript(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path))


def torchscript_runner(path: Path) -> Callable:
    loaded = load_torchscript(path)
    return lambda *inputs: loaded(*inputs).detach().numpy()


def torchscript_step_runner(path: Path) -> Callable:
    loaded = load_torchscript(path)

    def step(x, states):
        outputs = loaded(x, *states)
        return outputs[0].detach().numpy(), list(outputs[1:])

    return step
