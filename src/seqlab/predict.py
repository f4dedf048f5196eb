"""Predictions for new sequences from a run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqlab.data.sources import read_inputs
from seqlab.errors import SeqlabError
from seqlab.io import check_output_path, write_csv
from seqlab.runs import MODEL_FILE, load_run, require_task
from seqlab.training.evaluate import predict_proba


def predict_file(run_dir: str | Path | None, input_path: str | Path, out_path: str | Path,
                 onnx: str | Path | None = None, workers: int | None = None) -> int:
    """Write one row per sequence: id, predicted class, one probability per class (a regression run: id and
    one predicted value per target).

    The model is the run folder's, or with ``onnx`` an ONNX file written by
    ``seqlab export --format onnx`` (run by :class:`seqlab.serving.OnnxModel`
    on ``workers`` cores; no run folder needed). A ``label`` column is added
    when the input carries labels. Returns the number of sequences.
    """
    model_file = Path(onnx) if onnx is not None else Path(run_dir) / MODEL_FILE
    check_output_path(Path(out_path), "--out", [Path(input_path), model_file])
    data, labels = read_inputs(input_path)
    run = load_run(run_dir) if onnx is None else None
    if run is not None and run.task == "regression":
        return _predict_targets(run, data, labels, Path(input_path), Path(out_path))
    if onnx is not None:
        probabilities, class_names = _onnx_probabilities(Path(onnx), data, Path(input_path), workers)
    else:
        require_task(run, "classification", "predict")
        features = run.extras["features"]
        if data.features != features:
            raise SeqlabError(f"{input_path}: sequences have {data.features} features; the run expects {features}")
        probabilities = predict_proba(run.model, run.normalizer.transform(data))  # (N, C)
        class_names = run.class_names
    predicted = probabilities.argmax(axis=1)
    header = ["id", "predicted"] + [f"prob_{name}" for name in class_names]
    rows = [[data.ids[i], class_names[predicted[i]]] + [f"{p:.6f}" for p in probabilities[i]] for i in range(len(data))]
    if labels is not None:
        header.append("label")
        for row, label in zip(rows, labels):
            row.append(_label_text(label))
    write_csv(Path(out_path), header, rows)
    return len(rows)


def _predict_targets(run, data, labels, input_path: Path, out_path: Path) -> int:
    """``id``, ``predicted_<target>`` per target, and ``<target>`` (the truth) when the input carries it."""
    from seqlab.tasks.regression import predict_sequences

    features = run.extras["features"]
    if data.features != features:
        raise SeqlabError(f"{input_path}: sequences have {data.features} features; the run expects {features}")
    names = list(run.extras["target_names"])
    prediction = predict_sequences(run, data)  # (N, K)
    header = ["id"] + [f"predicted_{name}" for name in names]
    rows = [[data.ids[i]] + [f"{v:.6g}" for v in prediction[i]] for i in range(len(data))]
    if labels is not None:
        truth = np.asarray(labels).reshape(len(data), -1)
        if truth.shape[1] == len(names):
            header += names
            for row, values in zip(rows, truth):
                row.extend(_label_text(v) for v in values)
    write_csv(out_path, header, rows)
    return len(rows)


def _onnx_probabilities(path: Path, data, input_path: Path, workers: int | None, batch_size: int = 256):
    """Class probabilities (N, C) from an exported classifier; raw features in (its normaliser is inside)."""
    from seqlab.serving.onnx_model import OnnxModel
    from seqlab.serving.streamer import softmax

    model = OnnxModel(path, workers)
    if model.task not in (None, "classification"):
        raise SeqlabError(f"{path}: predict takes a classifier; this export is of a {model.task} run")
    if model.features is not None and data.features != model.features:
        raise SeqlabError(f"{input_path}: sequences have {data.features} features; {path} expects {model.features}")
    chunks = []
    try:
        for start in range(0, len(data), batch_size):
            x = data.X[start:start + batch_size]  # (B, T, F)
            lengths = None
            if data.lengths is not None:
                lengths = data.lengths[start:start + batch_size]  # (B,)
                x = x[:, :int(lengths.max())]
                if not model.variable_length:
                    if lengths.min() < x.shape[1]:
                        raise SeqlabError(f"{input_path}: sequences have different lengths, but {path} was exported "
                                          "with --fixed-length; export it without --fixed-length")
                    lengths = None
            chunks.append(softmax(model(x, lengths).astype(np.float64)))  # (B, C)
    finally:
        model.close()
    probabilities = np.concatenate(chunks, axis=0)
    class_names = model.class_names or [str(i) for i in range(probabilities.shape[1])]
    return probabilities, class_names


def _label_text(label) -> str:
    if isinstance(label, (float, np.floating)) and float(label).is_integer():
        return str(int(label))
    return str(label)
