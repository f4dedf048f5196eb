"""What a task is to the training engine: a recipe of data, model, Lightning module, evaluation and extras.

:func:`seqlab.training.pipeline.train` runs every task through one fixed
sequence: ``prepare`` (open and preprocess the data, before anything is
written), ``build`` (model, Lightning module, loaders), fit, reload the best
weights, ``evaluate`` (the task's sections of ``metrics.json``), ``save``
(``model.pt``, plots, the task's own files), then ``metrics.json`` last. A
recipe knows nothing of run folders, checkpoints or Lightning's Trainer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from seqlab.config import RunConfig
from seqlab.runs import Run


@dataclass
class TrainingSetup:
    """What ``build`` hands to the engine: the model, its Lightning module and the loaders.

    ``generator`` drives the training loader's shuffling (None when the
    batches come in a fixed order); its state goes into ``last.ckpt``.
    """

    model: nn.Module
    module: Any  # a seqlab.training.module.SeqlabModule
    train_loader: DataLoader
    val_loader: DataLoader
    generator: torch.Generator | None = None
    recipe: Any = None  # a seqlab.training.recipe.Recipe; None: config.train resolved for the task


def fingerprint(config: RunConfig, *parts: Any) -> str:
    """SHA-256 of the data section of ``config`` and of the prepared data (arrays, strings, numbers)."""
    digest = hashlib.sha256()
    tree = config.to_dict()
    digest.update(repr({k: tree[k] for k in ("task", "data", "forecast", "lm") if k in tree}).encode())
    for part in parts:
        if isinstance(part, torch.Tensor):
            part = part.detach().cpu().numpy()
        if isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()


def model_options(config: RunConfig) -> dict[str, Any]:
    """The model section without its name: the builder's keyword arguments."""
    return {k: v for k, v in config.model.items() if k != "name"}


class TaskRecipe:
    """One task's part of a run; subclasses fill in every method."""

    name: ClassVar[str]

    def prepare(self, config: RunConfig) -> Any:
        """Open and preprocess the data; raise SeqlabError for data or options the task cannot use."""
        raise NotImplementedError

    def fingerprint(self, config: RunConfig, data: Any) -> str:
        """A digest of the prepared data and its preprocessing: a resumed run must see the same."""
        raise NotImplementedError

    def build(self, config: RunConfig, data: Any) -> TrainingSetup:
        raise NotImplementedError

    def evaluate(self, config: RunConfig, data: Any, model: nn.Module) -> dict[str, Any]:
        """The task's sections of ``metrics.json`` (``data``, ``val``, ``test``, ``baselines``...)."""
        raise NotImplementedError

    def save(self, config: RunConfig, data: Any, model: nn.Module, metrics: dict[str, Any],
             history: list[dict[str, float]], out: Path) -> None:
        """``model.pt``, the plots and the task's own files (everything but ``metrics.json``)."""
        raise NotImplementedError

    def evaluate_run(self, run: Run, data_spec: str | None, split: str) -> dict[str, Any]:
        """Metrics of a saved run on its own held-out data or on ``data_spec``."""
        raise NotImplementedError
