"""``seqlab export``: a run folder to ONNX, TorchScript or ncnn, proven against eager PyTorch.

After writing the file, the exported model runs on held-out-like inputs of
several batch sizes and lengths; the largest absolute difference from the
eager model is reported, and above the tolerance the file is removed and
the export fails. Exports take raw features: the run's normaliser is part
of the graph. Batch and time axes are dynamic (time is fixed only for
models built around one length, such as SenseFi's CNN-GRU). Variable
lengths are not part of exported graphs: export pads nothing, so feed each
sequence at its own length, or stream it.
"""

from __future__ import annotations

import copy
import io
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seqlab.errors import SeqlabError
from seqlab.export.graph import Deployable, StepModel, replace_projected_lstms
from seqlab.runs import Run, load_run

FORMATS = ("onnx", "torchscript", "ncnn")


@dataclass
class ExportReport:
    path: Path
    format: str
    streaming: bool
    max_abs_diff: float
    cases: list[tuple[int, int, float]] = field(default_factory=list)  # (batch, length, diff)
    note: str = ""


def _eager_parts(run: Run):
    if run.task != "classification":
        raise SeqlabError(f"run folder {run.path}: export covers classification runs; this one is a {run.task} run")
    normalizer = run.normalizer
    return copy.deepcopy(run.model).eval(), normalizer.shift, normalizer.scale


def _test_shapes(run: Run) -> list[tuple[int, int]]:
    steps = int(run.extras["steps"])
    fixed = run.checkpoint["model"]["name"] in ("cnn-gru", "cnn-gru-parallel", "cnn-lstm-parallel") and \
        run.checkpoint["model"]["options"].get("conv_axis", "feature") == "feature"
    shortest = max(2, getattr(run.model, "min_steps", 2))  # strided convolutions need a minimum length
    lengths = [steps] if fixed else sorted({steps, max(shortest, steps // 2 + 1), steps * 2})
    return [(batch, length) for batch in (1, 3, 8) for length in lengths]


def _inputs(run: Run, batch: int, length: int, seed: int) -> torch.Tensor:
    """Inputs on the scale of the training data: normal draws mapped through the normaliser."""
    normalizer = run.normalizer
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(batch, length, int(run.extras["features"])))
    return torch.tensor(z * normalizer.scale + normalizer.shift, dtype=torch.float32)


# ----------------------------------------------------------------------------
# Whole-sequence exports


def _export_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Tracing first lets scripted parts (the decomposed projected LSTM) keep their loops.
        traced = torch.jit.trace(module, (example,), check_trace=False)
        torch.onnx.export(traced, (example,), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch", 1: "time"}, "y": {0: "batch"}})


def _onnx_runner(path: Path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": x.numpy()})[0]


def _torchscript_runner(path: Path):
    loaded = torch.jit.load(str(path))
    return lambda x: loaded(x).detach().numpy()


def export_run(run_dir: str | Path, fmt: str, out: str | Path, streaming: bool = False,
               tolerance: float = 1e-4) -> ExportReport:
    """Export, then check parity; raises :class:`SeqlabError` (and removes ``out``) above ``tolerance``."""
    if fmt not in FORMATS:
        raise SeqlabError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    run = load_run(run_dir)
    model, shift, scale = _eager_parts(run)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if streaming:
        from seqlab.export.streaming import export_step_model

        return export_step_model(run, model, shift, scale, fmt, out, tolerance)
    eager = Deployable(model, shift, scale).eval()
    exportable = copy.deepcopy(eager)
    note = ""
    if replace_projected_lstms(exportable):
        note = "LSTM proj_size decomposed into a scripted loop (the ONNX LSTM operator has no projection)"
    shapes = _test_shapes(run)
    example = _inputs(run, 2, shapes[0][1], seed=0)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if fmt == "onnx":
            _export_onnx(exportable, example, tmp)
            runner = _onnx_runner(tmp)
        elif fmt == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(exportable, (example,), check_trace=False)
            traced.save(str(tmp))
            runner = _torchscript_runner(tmp)
        else:
            from seqlab.export.ncnn import export_ncnn

            return export_ncnn(run, eager, exportable, example, out, shapes, tolerance)
        report = _check(eager, runner, run, shapes, tolerance, out, fmt, note)
        os.replace(tmp, out)
        return report
    finally:
        tmp.unlink(missing_ok=True)


def _check(eager, runner, run: Run, shapes, tolerance: float, out: Path, fmt: str, note: str = "") -> ExportReport:
    cases = []
    with torch.no_grad():
        for i, (batch, length) in enumerate(shapes):
            x = _inputs(run, batch, length, seed=100 + i)
            diff = float(np.abs(runner(x) - eager(x).numpy()).max())
            cases.append((batch, length, diff))
    worst = max(d for _, _, d in cases)
    if not worst <= tolerance:  # also catches NaN
        raise SeqlabError(
            f"export {fmt}: the exported model differs from eager PyTorch by {worst:.3g} (tolerance {tolerance:g}); "
            f"nothing was written to {out}"
        )
    return ExportReport(out, fmt, False, worst, cases, note)
