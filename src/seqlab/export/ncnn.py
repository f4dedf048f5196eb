"""ncnn export through pnnx (TorchScript -> pnnx -> ncnn), checked with ncnn's Python runtime.

ncnn runs one sequence at a time (no batch axis) and lacks a few PyTorch
operators, so the recurrent classifiers are re-expressed for it: the final
state of each direction is read from the output sequence (forward direction
at the last step, backward direction at step 0) instead of from h_n. Models
ncnn cannot run are refused with the reason.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqlab.errors import SeqlabError
from seqlab.models.hybrid import CNNGRU
from seqlab.models.recurrent import RecurrentModel

NCNN_MODELS = ("rnn", "gru", "lstm", "bigru", "bilstm", "cnn-gru")


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


def ncnn_module(run, model: nn.Module, shift, scale) -> nn.Module:
    name = run.checkpoint["model"]["name"]
    if name not in NCNN_MODELS:
        raise SeqlabError(f"--format ncnn: {name} is not supported (ncnn export covers {', '.join(NCNN_MODELS)}); "
                          "export it to onnx or torchscript")
    if isinstance(model, CNNGRU):
        if model.conv_axis != "feature":
            raise SeqlabError("--format ncnn: cnn-gru with conv_axis time is not supported; use onnx or torchscript")
        return NcnnCNNGRU(model, shift, scale).eval()
    if model.head not in ("last", "mean"):
        raise SeqlabError(f"--format ncnn: head {model.head!r} is not supported (last or mean are); use onnx")
    if getattr(model.encoder.rnn, "proj_size", 0):
        raise SeqlabError("--format ncnn: ncnn's LSTM layer has no projection (proj_size); use onnx or torchscript")
    return NcnnRecurrent(model, shift, scale).eval()


def export_ncnn(run, eager, exportable, out: Path, shapes, tolerance: float):
    """Write ``out`` (.param) and ``out`` with suffix .bin; check batch-1 parity at each test length."""
    import ncnn
    import pnnx

    from seqlab.export.exporter import ExportReport
    from seqlab.export.streaming import raw_inputs

    module = ncnn_module(run, exportable.model, exportable.shift, exportable.scale)
    lengths = sorted({length for _, length in shapes})
    param, weights = out.with_suffix(".param"), out.with_suffix(".bin")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        x1 = raw_inputs(run, 1, lengths[0], seed=0)
        x2 = raw_inputs(run, 1, lengths[-1], seed=1) if len(lengths) > 1 else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pnnx.export(module, str(work / "model.pt"), inputs=x1, inputs2=x2, fp16=False,
                        ncnnparam=str(work / "model.param"), ncnnbin=str(work / "model.bin"),
                        pnnxparam=str(work / "pnnx.param"), pnnxbin=str(work / "pnnx.bin"),
                        pnnxpy=str(work / "pnnx.py"), pnnxonnx=str(work / "pnnx.onnx"), ncnnpy=str(work / "ncnn.py"))
        if not (work / "model.param").is_file():
            raise SeqlabError("--format ncnn: pnnx produced no ncnn model")
        net = ncnn.Net()
        for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
            setattr(net.opt, flag, False)
        net.load_param(str(work / "model.param"))
        net.load_model(str(work / "model.bin"))
        cases = []
        with torch.no_grad():
            for i, length in enumerate(lengths):
                x = raw_inputs(run, 1, length, seed=300 + i)
                extractor = net.create_extractor()
                if extractor.input("in0", ncnn.Mat(x[0].numpy().copy())) != 0:
                    raise SeqlabError("--format ncnn: the converted graph has an operator ncnn cannot run")
                status, result = extractor.extract("out0")
                if status != 0:
                    raise SeqlabError("--format ncnn: ncnn could not run the converted graph")
                diff = float(np.abs(np.array(result).reshape(-1) - eager(x).numpy().reshape(-1)).max())
                cases.append((1, length, diff))
        worst = max(d for _, _, d in cases)
        if not worst <= tolerance:
            raise SeqlabError(f"export ncnn: the ncnn model differs from eager PyTorch by {worst:.3g} "
                              f"(tolerance {tolerance:g}); nothing was written to {out}")
        shutil.copyfile(work / "model.param", param)
        shutil.copyfile(work / "model.bin", weights)
    return ExportReport(param, "ncnn", False, worst, cases, f"weights in {weights}; batch 1 (ncnn has no batch axis)")
