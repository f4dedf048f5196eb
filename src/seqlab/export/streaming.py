"""``seqlab export --streaming``: the step model with explicit state, proven frame by frame.

The step model (:class:`seqlab.serving.modules.StepModel`) maps one raw frame
and the state to the prediction and the new state. It is written as ONNX
(batch axis dynamic), TorchScript or ncnn (:mod:`seqlab.export.ncnn`), then
fed sequences frame by frame and held to what the whole-sequence model
outputs after the same frames. :class:`seqlab.serving.Streamer` runs it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from seqlab.export.ncnn import export_ncnn_step
from seqlab.export.parity import (
    ExportReport,
    check_parity,
    onnx_step_runner,
    raw_inputs,
    stepwise,
    torchscript_step_runner,
    whole_sequence_per_step,
)
from seqlab.export.torch_export import label_onnx, torch_refusals
from seqlab.runs import Run
from seqlab.serving.streamer import step_model


def export_step_model(run: Run, fmt: str, out: Path, tolerance: float, keep_intermediate: bool = False) -> ExportReport:
    step = step_model(run)
    if fmt == "ncnn":
        return export_ncnn_step(run, step, out, tolerance, keep_intermediate)
    exportable = copy.deepcopy(step)
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
        runner = onnx_step_runner(tmp) if fmt == "onnx" else torchscript_step_runner(tmp)
        length = min(int(run.extras["steps"]), 30)
        cases = [(raw_inputs(run, batch, length, seed=200 + i),) for i, batch in enumerate((1, 3))]  # (B, T, F)
        report = check_parity(stepwise(runner, step.initial_state), lambda x: whole_sequence_per_step(step, x),
                              cases, tolerance, out, fmt, streaming=True)
        tmp.replace(out)
        return report
    finally:
        tmp.unlink(missing_ok=True)
