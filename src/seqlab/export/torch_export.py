"""Writing graphs with torch: ONNX (torch.export's exporter or the TorchScript-based one) and TorchScript.

The callers (:mod:`seqlab.export.exporter` for whole sequences,
:mod:`seqlab.export.streaming` for step models) write to a scratch file,
prove it with :mod:`seqlab.export.parity` and only then move it into place.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

import torch

from seqlab.errors import SeqlabError
from seqlab.export.console import captured_console
from seqlab.runs import Run

EXPORTERS = ("auto", "dynamo", "legacy")


def export_onnx(module: torch.nn.Module, example: tuple, names: list[str], path: Path,
                 axes: dict[str, dict[int, str]] | None, exporter: str) -> str:
    """Write the graph with torch.export's ONNX exporter (``dynamo``) or the TorchScript-based one
    (``legacy``), ``axes`` dynamic (None: every shape static); returns which exporter wrote it.

    ``auto`` takes dynamo for static graphs without a ``lengths`` input and legacy otherwise, because,
    measured on torch 2.13 (README, Deployment):

    * torch.export refuses the packing of variable lengths (``pack_padded_sequence``: batch sizes that
      depend on the data), where the legacy exporter writes the RNN operators' ``sequence_lens``;
    * with a dynamic time axis it fixed that axis at the example's length for bidirectional layers and
      pooled convolutions (a graph that then refuses every other length);
    * it took 23 to 95 times as long as the legacy exporter (BENCHMARKS.md, benchmarks/onnx_exporters.py).

    Both write GRUs in PyTorch's form (the ONNX GRU operator with ``linear_before_reset=1``); the
    reset-before GRU (``reset_after: false``) goes through the legacy exporter, as GRU operators with
    ``linear_before_reset=0`` (:class:`seqlab.models.reset_before.OnnxGRU`).
    """
    if exporter == "auto":
        exporter = "dynamo" if axes is None and "lengths" not in names else "legacy"
    if exporter == "legacy":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, str(path), dynamo=False, opset_version=17, input_names=names,
                              output_names=["y"], dynamic_axes=axes)
        return exporter
    dims = {"batch": torch.export.Dim("batch"), "time": torch.export.Dim("time")}
    shapes = None if axes is None else tuple({k: dims[v] for k, v in axes[n].items()} for n in names)
    try:
        torch.onnx.export(module, example, str(path), dynamo=True, dynamic_shapes=shapes, input_names=names,
                          output_names=["y"], optimize=True, verbose=False)
    except Exception as error:  # torch.export's refusal: name it, not the exporter's three-step banner
        cause = error.__cause__ or error
        text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        raise SeqlabError(f"--exporter dynamo: torch.export refused this model ({type(cause).__name__}: {text}); "
                          "use --exporter legacy") from None
    if axes is not None:
        import onnx

        graph_x = next(value for value in onnx.load(str(path)).graph.input if value.name == "x")
        dims = graph_x.type.tensor_type.shape.dim
        fixed = [f"{name} at {dims[axis].dim_value}" for axis, name in axes["x"].items() if dims[axis].dim_value]
        if fixed:
            raise SeqlabError(f"--exporter dynamo: torch.export fixed axes of x that should stay dynamic "
                              f"({', '.join(fixed)}: the example's size); use --exporter legacy")
    return exporter


def label_onnx(path: Path, run: Run) -> None:
    """Store the run's task (and class names) in the ONNX file's metadata, for OnnxModel, Streamer and the CLI."""
    import onnx

    model = onnx.load(str(path))
    labels = {"seqlab_task": run.task}
    if run.task == "classification":
        labels["seqlab_class_names"] = json.dumps(list(run.class_names))
    if run.task == "regression":
        labels["seqlab_target_names"] = json.dumps(list(run.extras["target_names"]))
    for key, value in labels.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


@contextlib.contextmanager
def torch_refusals(fmt: str, out: Path):
    """Keep torch.onnx's and torch.jit's console notes (C++ shape-inference warnings) out of seqlab's
    output, and turn their refusals (RuntimeError) into a :class:`SeqlabError` naming the cause."""
    try:
        with captured_console():
            yield
    except RuntimeError as error:
        cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SeqlabError(f"export {fmt}: torch could not export this model ({cause}); "
                          f"nothing was written to {out}") from None
