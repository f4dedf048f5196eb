"""``seqlab export --format onnx --quantize int8``: int8 weights, measured against float32.

ONNX Runtime's dynamic quantiser (``quantize_dynamic``) stores the weights
of the operators it has integer kernels for (LSTM, MatMul, Conv, Gather,
Attention) as int8 and quantises their inputs at run time; GRU and RNN
operators have no such kernel and stay float32. A graph whose int8 file
would not be smaller than the float32 one (a GRU or RNN classifier, whose
weights sit in those operators) is refused with the reason. Otherwise both
graphs run on the run's own test split (the same inputs, at their real
lengths, in one process, alternating), and the accuracy of each, how many
predictions agree, the largest logit change, the file sizes and the time per
pass are printed and written to ``NAME.quantization.json`` beside the model.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from seqlab.config import DataConfig
from seqlab.data.dataset import SequenceSet
from seqlab.data.sources import load_data
from seqlab.errors import SeqlabError
from seqlab.export.console import captured_console
from seqlab.io import write_json
from seqlab.options import from_dict
from seqlab.runs import Run
from seqlab.serving.onnx_model import OnnxModel

QUANTIZE = ("int8",)
INTEGER_OPERATORS = ("MatMulInteger", "DynamicQuantizeLSTM", "ConvInteger", "DynamicQuantizeMatMul")


def report_path(out: Path) -> Path:
    return out.with_suffix(".quantization.json")


def check_quantizable(run: Run, mode: str, static) -> None:
    """Refuse, before exporting anything, what ``--quantize`` cannot measure."""
    if mode not in QUANTIZE:
        raise SeqlabError(f"--quantize: expected {' or '.join(QUANTIZE)}, got {mode!r}")
    if run.task != "classification":
        raise SeqlabError(f"--quantize: the accuracy change is measured on a classification run's test split; "
                          f"this one is a {run.task} run")
    if static:
        raise SeqlabError("--quantize: reads the run's test split at its own batch and lengths; "
                          "leave out --static")


def held_out_split(run: Run) -> SequenceSet:
    """The run's own test split of a classification run, raw (as an export reads it)."""
    bundle = load_data(from_dict(DataConfig, run.config["data"], "data"), seed=run.config["train"]["seed"])
    return bundle.test


def quantize_onnx(run: Run, fp32: Path, out: Path, repeats: int = 5) -> dict:
    """Replace the float32 graph at ``fp32`` by its int8 form; returns (and writes beside ``out``) the
    comparison on the run's test split. Raises :class:`SeqlabError` where int8 gains nothing."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = fp32.with_name(f"{fp32.name}.int8")
    try:
        with captured_console():  # the quantiser logs advice on pre-processing
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        import onnx

        sizes = {"float32": os.path.getsize(fp32), "int8": os.path.getsize(int8)}
        integer = sorted({n.op_type for n in onnx.load(str(int8)).graph.node} & set(INTEGER_OPERATORS))
        if sizes["int8"] >= sizes["float32"]:
            kept = sorted({n.op_type for n in onnx.load(str(fp32)).graph.node} & {"GRU", "RNN"})
            raise SeqlabError(
                f"--quantize int8: the int8 graph would not be smaller ({sizes['int8']} against {sizes['float32']} "
                f"bytes): ONNX Runtime's dynamic quantiser has int8 kernels for LSTM, MatMul, Conv and Gather, "
                f"not for {' or '.join(kept) or 'most of this graph'}, where this model keeps its weights; "
                f"nothing was written to {out}")
        data = held_out_split(run)
        models = {"float32": OnnxModel(fp32, workers=1), "int8": OnnxModel(int8, workers=1)}
        lengths = data.lengths if models["float32"].variable_length else None
        seconds = {name: [] for name in models}
        logits = {}
        for _ in range(repeats):  # alternate, so both see the same machine load
            for name, model in models.items():
                start = time.perf_counter()
                logits[name] = model(data.X, lengths)  # (N, C)
                seconds[name].append(time.perf_counter() - start)
        y = np.asarray(data.y)
        predicted = {name: v.argmax(axis=1) for name, v in logits.items()}
        accuracy = {name: float((p == y).mean()) for name, p in predicted.items()}
        report = {
            "split": "test", "sequences": int(len(y)),
            "accuracy": accuracy, "accuracy_change": accuracy["int8"] - accuracy["float32"],
            "agreement": float((predicted["int8"] == predicted["float32"]).mean()),
            "max_abs_logit_change": float(np.abs(logits["int8"] - logits["float32"]).max()),
            "int8_operators": integer, "bytes": sizes, "seconds_per_pass": {name: min(v) for name, v in seconds.items()},
            "speedup": min(seconds["float32"]) / min(seconds["int8"]),
            "measured": f"ONNX Runtime, one session.run per pass over the test split, best of {repeats}, "
                        "float32 and int8 alternating in one process",
        }
        os.replace(int8, fp32)  # the caller moves it to ``out`` after this returns
        write_json(report_path(out), report)
        return report
    finally:
        int8.unlink(missing_ok=True)
