"""ncnn export through pnnx (TorchScript -> pnnx -> ncnn), checked with ncnn's Python runtime.

ncnn runs one sequence at a time (no batch axis) and lacks a few PyTorch
operators, so the recurrent classifiers are re-expressed for it: the final
state of each direction is read from the output sequence (forward direction
at the last step, backward direction at step 0) instead of from h_n. Models
ncnn cannot run are refused with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from seqlab.errors import SeqlabError
from seqlab.export.console import captured_console
from seqlab.export.parity import ExportReport, check_parity, raw_inputs, stepwise, whole_sequence_per_step
from seqlab.io import write_json
from seqlab.models.hybrid import CNNGRU
from seqlab.models.recurrent import RecurrentModel
from seqlab.models.registry import get_model_entry, model_names
from seqlab.serving.ncnn_runtime import load_ncnn, ncnn_sequence, ncnn_step

class NcnnRecurrent(nn.Module):
    """A recurrent classifier (heads last or mean) in operators ncnn has."""

    def __init__(self, model: RecurrentModel, shift, scale):
        super().__init__()
        self.rnn, self.fc, self.head = model.encoder.rnn, model.fc, model.head
        self.directions = model.encoder.num_directions
        self.width = model.encoder.step_size
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn((x - self.shift) / self.scale)  # (1, T, D*P)
        if self.head == "mean":
            pooled = outputs.mean(dim=1)
        elif self.directions == 1:
            pooled = outputs[:, -1, :]
        else:
            pooled = torch.cat([outputs[:, -1, : self.width], outputs[:, 0, self.width :]], dim=1)
        return self.fc(pooled)  # (1, C)


class NcnnCNNGRU(nn.Module):
    def __init__(self, model: CNNGRU, shift, scale):
        super().__init__()
        self.encoder, self.gru, self.classifier = model.encoder, model.gru.rnn, model.classifier
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder((x - self.shift) / self.scale)  # (1, T, F')
        outputs, _ = self.gru(features)  # (1, T, H)
        return self.classifier(outputs[:, -1, :])  # (1, C)


class NcnnStep(nn.Module):
    """A step model in operators ncnn runs: (x (1, F), h (L, 1, P)[, c (L, 1, H)]) -> (y (1, C), h'[, c']).

    RNN and GRU steps use ncnn's own layers with a state input; LSTM steps
    are explicit products (ncnn's LSTM layer does not take the state pnnx
    hands it correctly).
    """

    def __init__(self, step):
        super().__init__()
        self.step = step

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None = None):
        step = self.step
        x = (x - step.shift) / step.scale  # (1, F)
        if step.is_lstm:
            top, h, c = step.explicit_lstm(x, h, c)
            return step.model.fc(top), h, c
        outputs, h = step.model.encoder.rnn(x.unsqueeze(1), h)  # (1, 1, P)
        return step.model.fc(outputs[:, 0]), h


def _convert(module: nn.Module, work: Path, flag: str, **inputs) -> None:
    """TorchScript -> pnnx -> ncnn into ``work``/model.param and .bin. pnnx reports its passes on the
    console; that report is kept out of seqlab's output and shown only if the conversion fails."""
    import pnnx

    log = work / "pnnx.log"
    with captured_console(log):
        try:
            pnnx.export(module, str(work / "model.pt"), fp16=False,
                        ncnnparam=str(work / "model.param"), ncnnbin=str(work / "model.bin"),
                        pnnxparam=str(work / "pnnx.param"), pnnxbin=str(work / "pnnx.bin"),
                        pnnxpy=str(work / "pnnx.py"), pnnxonnx=str(work / "pnnx.onnx"), ncnnpy=str(work / "ncnn.py"),
                        **inputs)
        except Exception as error:  # tracing or conversion failed: report it as an export error, below
            (work / "model.param").unlink(missing_ok=True)
            print(f"\n{type(error).__name__}: {error}", flush=True)
    if not (work / "model.param").is_file():
        report = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise SeqlabError(f"{flag}: pnnx produced no ncnn model; its last lines: " + " | ".join(report))


def _place(source: Path, target: Path) -> None:
    """Copy beside the target, then rename over it: a reader never sees half a file."""
    partial = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def export_ncnn_step(run, step, out: Path, tolerance: float, keep_intermediate: bool = False) -> ExportReport:
    """Write the step model as ``out`` (.param), .bin and .json (inputs, outputs, state shapes);
    check it frame by frame against the whole-sequence model."""
    if step.pool is not None:
        raise SeqlabError(f"--format ncnn --streaming: head {step.pool!r} keeps a pooled state that ncnn cannot "
                          "express here; use onnx or torchscript")
    _refuse_unsupported(step.model.encoder.rnn, "--format ncnn --streaming")
    module = NcnnStep(step).eval()
    states = [s.numpy() for s in step.initial_state(1)]
    param, weights, meta = out.with_suffix(".param"), out.with_suffix(".bin"), out.with_suffix(".json")
    with work_folder(out, keep_intermediate) as work:
        example = (raw_inputs(run, 1, 1, seed=0)[:, 0], *(torch.from_numpy(s) for s in states))
        _convert(module, work, "--format ncnn --streaming", inputs=example)
        net = load_ncnn(work / "model.param")

        def run_step(x, carried):  # x (1, F): ncnn has no batch axis
            logits, carried = ncnn_step(net, x[0].numpy(), carried)
            return logits[None], carried

        cases = [(raw_inputs(run, 1, min(int(run.extras["steps"]), 30), seed=200),)]  # (1, T, F)
        report = check_parity(stepwise(run_step, lambda batch: states), lambda x: whole_sequence_per_step(step, x),
                              cases, tolerance, out, "ncnn", streaming=True, path=param)
        _place(work / "model.param", param)
        _place(work / "model.bin", weights)
    names = step.state_names
    write_json(meta, {
        "format": "seqlab-ncnn-step/1", "features": int(run.extras["features"]),
        "class_names": list(run.class_names),
        "inputs": {"in0": "x (1, features): raw frame", **{f"in{i + 1}": n for i, n in enumerate(names)}},
        "outputs": {"out0": "logits (1, classes)", **{f"out{i + 1}": f"{n}'" for i, n in enumerate(names)}},
        "state_shapes": {n: list(s.shape) for n, s in zip(names, states)},
    })
    kept = f"; pnnx's files kept in {intermediate_folder(out)}" if keep_intermediate else ""
    report.note = f"weights in {weights}, inputs and state shapes in {meta}{kept}"
    return report


def ncnn_module(run, model: nn.Module, shift, scale) -> nn.Module:
    name = run.checkpoint["model"]["name"]
    if not get_model_entry(name).ncnn:
        raise SeqlabError(f"--format ncnn: {name} is not supported (ncnn export covers "
                          f"{', '.join(model_names('ncnn'))}); export it to onnx or torchscript")
    if isinstance(model, CNNGRU):
        if model.conv_axis != "feature":
            raise SeqlabError("--format ncnn: cnn-gru with conv_axis time is not supported; use onnx or torchscript")
        return NcnnCNNGRU(model, shift, scale).eval()
    if model.head not in ("last", "mean"):
        raise SeqlabError(f"--format ncnn: head {model.head!r} is not supported (last or mean are); use onnx")
    if model.patch > 1:
        raise SeqlabError(f"--format ncnn: model.patch {model.patch} (steps grouped before the recurrence) is not "
                          "supported; use onnx or torchscript")
    if getattr(model.encoder.rnn, "proj_size", 0):
        raise SeqlabError("--format ncnn: ncnn's LSTM layer has no projection (proj_size); use onnx or torchscript")
    _refuse_unsupported(model.encoder.rnn, "--format ncnn")
    return NcnnRecurrent(model, shift, scale).eval()


def _refuse_unsupported(rnn: nn.Module, flag: str) -> None:
    """Refuse the recurrences ncnn's layers do not compute: relu RNNs and the reset-before GRU."""
    if isinstance(rnn, nn.RNN) and rnn.nonlinearity == "relu":
        raise SeqlabError(f"{flag}: ncnn's RNN layer computes tanh only; this RNN uses relu. Use onnx or torchscript")
    if not getattr(rnn, "reset_after", True):
        raise SeqlabError(f"{flag}: ncnn's GRU layer applies the reset gate after the product; this GRU has "
                          "reset_after: false. Use onnx")


def intermediate_folder(out: Path) -> Path:
    """Where ``--keep-intermediate`` keeps pnnx's files: ``NAME.pnnx/`` beside ``NAME.param``."""
    return out.with_suffix(".pnnx")


@contextlib.contextmanager
def work_folder(out: Path, keep: bool):
    """pnnx's working folder: a scratch folder removed afterwards, or with ``keep`` :func:`intermediate_folder`
    (TorchScript ``model.pt``, ``pnnx.param``/``.bin``/``.py``/``.onnx``, ``ncnn.py`` and ``pnnx.log``)."""
    if not keep:
        with tempfile.TemporaryDirectory() as work:
            yield Path(work)
        return
    folder = intermediate_folder(out)
    if folder.exists() and not folder.is_dir():
        raise SeqlabError(f"--keep-intermediate: {folder} exists and is not a folder")
    folder.mkdir(exist_ok=True)
    yield folder


def export_ncnn(run, eager, exportable, out: Path, shapes, tolerance: float,
                keep_intermediate: bool = False) -> ExportReport:
    """Write ``out`` (.param) and ``out`` with suffix .bin; check batch-1 parity at each test length."""
    module = ncnn_module(run, exportable.model, exportable.shift, exportable.scale)
    lengths = sorted({length for _, length in shapes})
    param, weights = out.with_suffix(".param"), out.with_suffix(".bin")
    with work_folder(out, keep_intermediate) as work:
        x1 = raw_inputs(run, 1, lengths[0], seed=0)
        x2 = raw_inputs(run, 1, lengths[-1], seed=1) if len(lengths) > 1 else None
        _convert(module, work, "--format ncnn", inputs=x1, inputs2=x2)
        net = load_ncnn(work / "model.param")
        cases = [(raw_inputs(run, 1, length, seed=300 + i),) for i, length in enumerate(lengths)]  # (1, T, F)
        report = check_parity(lambda x: ncnn_sequence(net, x[0].numpy()), eager, cases, tolerance, out, "ncnn",
                              path=param)
        _place(work / "model.param", param)
        _place(work / "model.bin", weights)
    kept = f"; pnnx's files kept in {intermediate_folder(out)}" if keep_intermediate else ""
    report.note = f"weights in {weights}; batch 1 (ncnn has no batch axis){kept}"
    return report
