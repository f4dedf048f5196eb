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
    if onnx is not None:
        from seqlab.serving.streamer import softmax

        outputs, task, names = _onnx_outputs(Path(onnx), data, Path(input_path), workers)
        if task == "regression":
            return _write_targets(outputs, names, data, labels, Path(out_path))
        probabilities = softmax(outputs)
        class_names = names or [str(i) for i in range(probabilities.shape[1])]
    else:
        run = load_run(run_dir)
        features = run.extras.get("features")
        if run.task in ("classification", "regression") and data.features != features:
            raise SeqlabError(f"{input_path}: sequences have {data.features} features; the run expects {features}")
        if run.task == "regression":
            from seqlab.tasks.regression import predict_sequences

            return _write_targets(predict_sequences(run, data), list(run.extras["target_names"]), data, labels,
                                  Path(out_path))
        require_task(run, "classification", "predict")
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


def _write_targets(prediction: np.ndarray, names: list[str], data, labels, out_path: Path) -> int:
    """A regression's rows: ``id``, ``predicted_<target>`` per target, and ``<target>`` (the truth) when the
    input carries it."""
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


def _onnx_outputs(path: Path, data, input_path: Path, workers: int | None, batch_size: int = 256):
    """The outputs (N, C) of an exported classifier (logits) or regression (targets), its task and its class or
    target names; raw features in (the normaliser is inside)."""
    from seqlab.serving.onnx_model import OnnxModel

    model = OnnxModel(path, workers)
    if model.task not in (None, "classification", "regression"):
        raise SeqlabError(f"{path}: predict takes a classifier or a regression; this export is of a {model.task} run")
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
            chunks.append(model(x, lengths).astype(np.float64))  # (B, C)
    finally:
        model.close()
    outputs = np.concatenate(chunks, axis=0)
    if model.task == "regression":
        return outputs, "regression", model.target_names or [f"target{k}" for k in range(outputs.shape[1])]
    return outputs, "classification", model.class_names


def _label_text(label) -> str:
    if isinstance(label, (float, np.floating)) and float(label).is_integer():
        return str(int(label))
    return str(label)
