"""What every inspection reads: a classification run, a batch of its data, its recurrent encoder.

Symbols: N sequences, T time steps, F features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from seqlab.data.dataset import SequenceSet, encode_labels
from seqlab.errors import SeqlabError
from seqlab.runs import Run, load_run, require_task

SPLITS = ("test", "val", "train")


def load_classifier(run_dir: str | Path, command: str) -> Run:
    """A classification run folder, or a one-line error naming what it holds instead."""
    run = load_run(run_dir)
    require_task(run, "classification", command)
    return run


def inspection_data(run: Run, input_path: str | Path | None = None, split: str = "test",
                    limit: int | None = None, labels: bool = True) -> SequenceSet:
    """Normalised sequences for an inspection: ``input_path`` if given, else the run's ``split``.

    The input must have the run's feature count; with ``labels`` its labels
    must be among the run's classes (they are mapped to the run's class
    indices). At most ``limit`` sequences are kept, the first ones.
    """
    if input_path is not None:
        data = _read_input(run, Path(input_path), labels)
    else:
        if split not in SPLITS:
            raise SeqlabError(f"--split: expected one of {', '.join(SPLITS)}, got {split!r}")
        from seqlab.config import DataConfig, from_dict
        from seqlab.data.sources import load_data

        bundle = load_data(from_dict(DataConfig, run.config["data"], "data"), seed=run.config["train"]["seed"])
        data = getattr(bundle, split)
        if not isinstance(data, SequenceSet):
            raise SeqlabError(f"run folder {run.path}: its data is read lazily; pass the sequences with --input")
    if limit is not None:
        if limit < 1:
            raise SeqlabError(f"--batch: expected an integer >= 1, got {limit}")
        data = data.subset(np.arange(min(limit, len(data))))
    return run.normalizer.transform(data)


def _read_input(run: Run, path: Path, labels: bool) -> SequenceSet:
    from seqlab.data.sources import read_inputs

    if not path.is_file():
        raise SeqlabError(f"--input {path}: file not found")
    data, raw_labels = read_inputs(path)
    features = run.extras["features"]
    if data.features != features:
        raise SeqlabError(f"--input {path}: sequences have {data.features} features; the run expects {features}")
    if raw_labels is not None:
        data.y, _ = encode_labels(raw_labels, f"--input {path}", run.class_names)
    elif labels:
        raise SeqlabError(f"--input {path}: has no labels; the loss needs one of the run's classes "
                          f"{run.class_names} per sequence")
    return data


def recurrent_encoder(model: nn.Module, run: Run, command: str):
    """The model's one :class:`RecurrentEncoder`, or a one-line refusal for models without one."""
    from seqlab.models.recurrent import RecurrentEncoder

    encoders = [module for module in model.modules() if isinstance(module, RecurrentEncoder)]
    name = run.checkpoint["model"]["name"]
    if not encoders:
        raise SeqlabError(f"run folder {run.path}: model {name} has no recurrent layers (no hidden state carried "
                          f"over time); `seqlab {command}` needs an RNN, GRU or LSTM")
    if len(encoders) > 1:
        raise SeqlabError(f"run folder {run.path}: model {name} has {len(encoders)} recurrent encoders; "
                          f"`seqlab {command}` reads models with one")
    if getattr(model, "patch", 1) > 1:
        raise SeqlabError(f"run folder {run.path}: model {name} reads {model.patch} steps as one recurrent step "
                          f"(model.patch); `seqlab {command}` follows the recurrence step by step: train with "
                          f"--set model.patch=1")
    return encoders[0]
