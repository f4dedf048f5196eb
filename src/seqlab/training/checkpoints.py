"""``checkpoints/last.ckpt``: everything an interrupted run needs to continue as if it had never stopped.

One file, replaced atomically once per finished epoch, holds Lightning's
state (weights, optimiser, schedulers, loop counters, early stopping), the
history, the best weights so far with their epoch and score, and the random
state: torch's, NumPy's, Python's and the generator that shuffles the
training batches. Since the best weights live inside it, there is no second
file whose deletion or renaming a kill could interrupt: at any instant the
folder holds either the previous ``last.ckpt`` or the next one.

The file is written when the next epoch starts, not when an epoch ends:
Lightning steps epoch-wise learning-rate schedulers after the epoch-end
hooks, and a checkpoint taken earlier would miss that step. The random state
is taken at the epoch's end, before anything of the next epoch draws from it.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint


def random_state(generator: torch.Generator | None) -> dict[str, Any]:
    """The state of every random number generator training draws from, as tensors and plain values."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss]}
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def restore_random_state(state: dict[str, Any], generator: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    if generator is not None and "loader" in state:
        generator.set_state(state["loader"])


class RunCheckpoint(Checkpoint):
    """Keeps the best weights on ``monitor`` and writes ``last.ckpt`` after every finished epoch.

    ``best_epoch`` counts from 1; ``best_state`` is the model's state_dict
    (without the ``model.`` prefix of the Lightning module) at that epoch.
    """

    def __init__(self, path: Path, generator: torch.Generator | None = None, monitor: str = "val_loss"):
        self.path = Path(path)
        self.generator = generator
        self.monitor = monitor
        self.best_score = math.inf
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self._random: dict[str, Any] | None = None
        self._saving = False

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        score = trainer.callback_metrics.get(self.monitor)
        if score is not None and float(score) < self.best_score:
            self.best_score = float(score)
            self.best_epoch = trainer.current_epoch + 1
            self.best_state = {k: v.detach().cpu().clone() for k, v in pl_module.model.state_dict().items()}
        self._random = random_state(self.generator)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._random is not None and trainer.current_epoch > 0:
            self._saving = True
            try:
                trainer.save_checkpoint(self.path, weights_only=False)
            finally:
                self._saving = False

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if not self._saving:
            return
        # Describe the loop as Lightning's own end-of-epoch checkpoints do (the epoch processed, not yet
        # completed, the next one not yet ready), so that a resume starts the next epoch afresh.
        progress = checkpoint["loops"]["fit_loop"]["epoch_progress"]
        for counts in (progress["total"], progress["current"]):
            counts["ready"] = counts["started"]
            counts["completed"] = counts["processed"] - 1

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "best_state": self.best_state,
                "random": self._random}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score = state["best_score"]
        self.best_epoch = state["best_epoch"]
        self.best_state = state["best_state"]
        self._random = state["random"]
        if self._random is not None:
            restore_random_state(self._random, self.generator)
