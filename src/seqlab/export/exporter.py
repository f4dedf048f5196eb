"""``seqlab export``: a run folder to ONNX, TorchScript or ncnn, proven against eager PyTorch.

After writing the file, the exported model runs on inputs of several batch
sizes and lengths; the largest absolute difference from the eager model is
reported, and above the tolerance the file is removed and the export fails.
Classification exports take raw features (the run's normaliser is part of
the graph), or token ids for token models, and, for models that read
variable lengths, a ``lengths`` input. For those, the tracing example and
every checked batch of two or more rows mix a full-length sequence with a
shorter one: tracing follows one branch of the recurrent encoder, and a
batch of full lengths would freeze its no-packing branch into the graph.
Batch and time axes are dynamic (time is fixed only for models built around
one length, such as SenseFi's CNN-GRU), or with ``static`` fixed.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqlab.errors import SeqlabError
from seqlab.export.graph import LanguageModelLogits, TokenClassifier, replace_projected_lstms
from seqlab.export.ncnn import export_ncnn
from seqlab.export.parity import ExportReport, check_parity, onnx_runner, torchscript_runner
from seqlab.export.quantize import check_quantizable, quantize_onnx
from seqlab.export.streaming import export_step_model
from seqlab.export.torch_export import EXPORTERS, export_onnx, label_onnx, torch_refusals
from seqlab.models.recurrent import use_torch_backend
from seqlab.models.registry import get_model_entry
from seqlab.runs import Run, load_run
from seqlab.serving.modules import Deployable

FORMATS = ("onnx", "torchscript", "ncnn")


@dataclass
class ExportSpec:
    """What to export for a run: the eager module, how to make its inputs, which shapes to test."""

    module: torch.nn.Module
    input_names: list[str]
    shapes: list[tuple[int, int]]
    make_inputs: object  # (batch, length, seed, full_row=True) -> tuple of tensors; full_row: row 0 fills T
    variable_length: bool
    dynamic_time: bool = True  # False for models built around one length

    def axes(self) -> dict[str, dict[int, str]]:
        """The dynamic axes of each input and of the output ``y``."""
        x = {0: "batch", 1: "time"} if self.dynamic_time else {0: "batch"}
        return {"x": x, "y": {0: "batch"}, **({"lengths": {0: "batch"}} if self.variable_length else {})}


def export_spec(run: Run, fixed_length: bool = False) -> ExportSpec:
    """Classification and regression: raw features (the normaliser inside, and a regression run's target
    scaling), or token ids for token models, and, where the model packs, lengths (unless ``fixed_length``:
    every sequence of a batch then has the batch's length).
    Forecast: the model's own inputs (transformed, scaled series plus covariates).
    Language model: character ids in, logits out."""
    model = use_torch_backend(copy.deepcopy(run.model).eval())  # the fast backend cannot be traced
    if run.task == "lm":
        vocab = run.checkpoint["model"]["output_size"]

        def ids(batch, length, seed, full_row=True):
            return (torch.from_numpy(np.random.default_rng(seed).integers(1, vocab, size=(batch, length))),)

        return ExportSpec(LanguageModelLogits(model).eval(), ["x"], [(b, n) for b in (1, 3) for n in (5, 40)], ids,
                          False)
    if run.task == "forecast":
        features = run.checkpoint["model"]["input_size"]
        window = int(run.config["forecast"]["window"])

        def series(batch, length, seed, full_row=True):
            return (torch.tensor(np.random.default_rng(seed).normal(size=(batch, length, features)),
                                 dtype=torch.float32),)

        return ExportSpec(Deployable(model, np.zeros(features), np.ones(features)).eval(), ["x"],
                          [(b, n) for b in (1, 3, 8) for n in (window, 2 * window)], series, False)
    normalizer = run.normalizer
    steps, features = int(run.extras["steps"]), int(run.extras["features"])
    entry = get_model_entry(run.checkpoint["model"]["name"])
    tokens = entry.tokens
    fixed = entry.reads_fixed_length(run.checkpoint["model"]["options"])
    shortest = max(2, getattr(model, "min_steps", 2))  # strided convolutions need a minimum length
    lengths = [steps] if fixed else sorted({steps, max(shortest, steps // 2 + 1), steps * 2})
    # Packed batches export as ONNX sequence_lens; a projected LSTM's rewrite cannot carry them.
    projected = any(getattr(m, "proj_size", 0) for m in model.modules() if isinstance(m, torch.nn.LSTM))
    variable = not fixed and not projected and not fixed_length

    def inputs(batch, length, seed, full_row=True):
        rng = np.random.default_rng(seed)
        sizes = np.full(batch, length)
        if variable:
            low = max(shortest, length // 2)
            sizes = rng.integers(low, length + 1, size=batch)
            sizes[0] = length if full_row else min(low, length - 1)  # the longest sequence fills the batch
            if batch > 1:  # and another is shorter, always: a batch of full lengths skips the packing branch,
                sizes[-1] = min(low, length - 1)  # which tracing would freeze out of the graph
        if tokens:  # ids 1..V-1 within each length, the padding id 0 after it
            vocab = run.checkpoint["model"]["input_size"]
            ids = rng.integers(1, vocab, size=(batch, length)) * (np.arange(length) < sizes[:, None])
            x = torch.from_numpy(ids.astype(np.int64))  # (B, T)
        else:
            z = rng.normal(size=(batch, length, features))
            x = torch.tensor(z * normalizer.scale + normalizer.shift, dtype=torch.float32)  # (B, T, F)
        return (x, torch.from_numpy(sizes.astype(np.int64))) if variable else (x,)

    if tokens:
        module = TokenClassifier(model)
    elif run.task == "regression":
        targets = run.extras["targets"]
        module = Deployable(model, normalizer.shift, normalizer.scale, targets["shift"], targets["scale"])
    else:
        module = Deployable(model, normalizer.shift, normalizer.scale)
    return ExportSpec(module.eval(), ["x", "lengths"] if variable else ["x"],
                      [(b, n) for b in (1, 3, 8) for n in lengths], inputs, variable, not fixed)


# ----------------------------------------------------------------------------
# Whole-sequence exports


def export_run(run_dir: str | Path, fmt: str, out: str | Path, streaming: bool = False,
               tolerance: float = 1e-4, fixed_length: bool = False, static: tuple[int, int] | None = None,
               exporter: str = "auto", keep_intermediate: bool = False,
               quantize: str | None = None) -> ExportReport:
    """Export, then check parity; raises :class:`SeqlabError` (and removes ``out``) above ``tolerance``.

    Models that pack variable lengths take a ``lengths`` input; ``fixed_length`` leaves it out
    (a smaller, faster graph for data whose sequences all have one length). ``static`` = (batch,
    steps) fixes the ONNX graph's input shapes (checked at that shape only). ``exporter``: ONNX
    exporter, ``auto``, ``dynamo`` or ``legacy`` (see :func:`seqlab.export.torch_export.export_onnx`). ``keep_intermediate``
    keeps pnnx's files of an ncnn export in ``NAME.pnnx/`` beside ``out``. ``quantize="int8"``
    writes a dynamically quantised ONNX graph and reports its accuracy and speed against float32
    on the run's test split (:mod:`seqlab.export.quantize`).
    """
    if fmt not in FORMATS:
        raise SeqlabError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if exporter not in EXPORTERS:
        raise SeqlabError(f"--exporter: expected one of {', '.join(EXPORTERS)}, got {exporter!r}")
    for flag, given, formats in (("--static", static, ("onnx",)), ("--exporter", exporter != "auto", ("onnx",)),
                                 ("--keep-intermediate", keep_intermediate, ("ncnn",)),
                                 ("--quantize", quantize, ("onnx",))):
        if given and fmt not in formats:
            reason = {"--static": "TorchScript and ncnn files declare no input shapes",
                      "--exporter": "it chooses between torch's ONNX exporters",
                      "--keep-intermediate": "only the ncnn export goes through intermediate files (pnnx's)",
                      "--quantize": "ONNX Runtime's quantiser works on ONNX graphs"}[flag]
            raise SeqlabError(f"{flag}: applies to --format {' or '.join(formats)} ({reason}); got --format {fmt}")
    if streaming and (static or quantize):
        raise SeqlabError(f"{'--static' if static else '--quantize'}: applies to whole-sequence exports, not "
                          "--streaming (a step model's state would carry the change from frame to frame)")
    run = load_run(run_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if streaming:
        return export_step_model(run, fmt, out, tolerance, keep_intermediate)
    spec = export_spec(run, fixed_length)
    eager = spec.module
    if fmt == "ncnn":
        if run.task != "classification":
            raise SeqlabError(f"--format ncnn: covers classification runs; this one is a {run.task} run")
        return export_ncnn(run, eager, copy.deepcopy(eager), out, spec.shapes, tolerance, keep_intermediate)
    if quantize is not None:
        check_quantizable(run, quantize, static)
    exportable = copy.deepcopy(eager)
    notes = []
    if any(not getattr(m, "reset_after", True) for m in exportable.modules()):
        if fmt == "torchscript":
            raise SeqlabError("--format torchscript: this GRU has reset_after: false, whose time loop runs in "
                              "Python and would be traced at one length; use --format onnx")
        if exporter == "dynamo":
            raise SeqlabError("--exporter dynamo: this GRU has reset_after: false, written as ONNX GRU nodes "
                              "by the legacy exporter only; use --exporter legacy or auto")
        exporter = "legacy"
        notes.append("GRU with reset_after: false written as ONNX GRU nodes with linear_before_reset=0")
    if replace_projected_lstms(exportable):
        notes.append("LSTM proj_size rewritten as a plain LSTM with the projection folded in "
                     "(the ONNX LSTM operator has no projection)")
    if static:
        cases = static_cases(spec, *static)
        example = cases[-1]  # lengths below the fixed time axis where lengths are read
    else:
        cases = [spec.make_inputs(b, n, 100 + i) for i, (b, n) in enumerate(spec.shapes)]
        example = spec.make_inputs(2, spec.shapes[0][1], 0)  # two rows of different lengths where lengths are read
    if spec.variable_length:
        x = "x (batch, time) token ids" if example[0].dtype == torch.int64 else "x (batch, time, features)"
        notes.append(f"inputs: {x} and lengths (batch,)")
    if static:
        notes.append(f"static shapes: batch {static[0]}, time {static[1]}")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with torch_refusals(fmt, out):  # also silences torch's warnings
            if fmt == "onnx":
                used = export_onnx(exportable, example, spec.input_names, tmp, None if static else spec.axes(),
                                    exporter)
                notes.append(f"exporter: {'torch.export (dynamo)' if used == 'dynamo' else 'TorchScript-based'}")
                label_onnx(tmp, run)
            else:
                torch.jit.trace(exportable, example, check_trace=False).save(str(tmp))
        runner = onnx_runner(tmp, spec.input_names) if fmt == "onnx" else torchscript_runner(tmp)
        report = check_parity(runner, eager, cases, tolerance, out, fmt, note="; ".join(notes))
        if quantize is not None:
            report.quantization = quantize_onnx(run, tmp, out)
        os.replace(tmp, out)
        return report
    finally:
        tmp.unlink(missing_ok=True)


def run_length(run: Run) -> int:
    """The length a run was trained on: its sequences' (classification), its window (forecast) or its
    BPTT chunk (language model); ``--static`` alone fixes time there."""
    if run.task == "forecast":
        return int(run.config["forecast"]["window"])
    if run.task == "lm":
        return int(run.config["lm"]["bptt"])
    return int(run.extras["steps"])


def static_cases(spec: ExportSpec, batch: int, steps: int) -> list[tuple]:
    """Inputs at the one static shape: several draws; where lengths are read, each batch mixes lengths,
    and the last (the tracing example) holds only sequences shorter than ``steps``."""
    if batch < 1 or steps < 1:
        raise SeqlabError(f"--static: expected a batch and a length of at least 1, got {batch}x{steps}")
    if not spec.dynamic_time and steps != spec.shapes[0][1]:
        raise SeqlabError(f"--static: this model reads exactly {spec.shapes[0][1]} steps, got {steps}")
    return [spec.make_inputs(batch, steps, 100 + i, full_row=i < 2) for i in range(3)]
