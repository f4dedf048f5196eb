"""Predictions for new sequences from a run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqlab.data.sources import read_inputs
from seqlab.errors import SeqlabError
from seqlab.io import write_csv
from seqlab.runs import load_run, require_task
from seqlab.training.evaluate import predict_proba


def predict_file(run_dir: str | Path, input_path: str | Path, out_path: str | Path) -> int:
    """Write one row per sequence: id, predicted class, one probability per class.

    A ``label`` column is added when the input carries labels. Returns the
    number of sequences.
    """
    run = load_run(run_dir)
    require_task(run, "classification", "predict")
    data, labels = read_inputs(input_path)
    features = run.extras["features"]
    if data.features != features:
        raise SeqlabError(f"{input_path}: sequences have {data.features} features; the run expects {features}")
    probabilities = predict_proba(run.model, run.normalizer.transform(data))  # (N, C)
    predicted = probabilities.argmax(axis=1)
    header = ["id", "predicted"] + [f"prob_{name}" for name in run.class_names]
    rows = [[data.ids[i], run.class_names[predicted[i]]] + [f"{p:.6f}" for p in probabilities[i]] for i in range(len(data))]
    if labels is not None:
        header.append("label")
        for row, label in zip(rows, labels):
            row.append(_label_text(label))
    write_csv(Path(out_path), header, rows)
    return len(rows)


def _label_text(label) -> str:
    if isinstance(label, (float, np.floating)) and float(label).is_integer():
        return str(int(label))
    return str(label)
