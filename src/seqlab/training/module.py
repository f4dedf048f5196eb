"""Lightning glue: training steps per task, per-epoch metrics and history, atomic checkpoints.

The models know nothing about training; these modules own the losses, the
optimiser and the epoch's metrics (torchmetrics, so DDP ranks agree); the
history callback keeps its rows in the checkpoint, so an interrupted run
resumes with its history intact.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchmetrics import MeanMetric

from seqlab.data.dataset import SequenceSet
from seqlab.io import save_torch, write_csv
from seqlab.models.language import detach_state


class SequenceTensors(Dataset):
    """(x (T, F), length, y) triples of a :class:`SequenceSet`."""

    def __init__(self, data: SequenceSet):
        self.X = torch.from_numpy(np.ascontiguousarray(data.X))  # (N, T, F)
        lengths = data.lengths if data.lengths is not None else np.full(len(data), data.steps)
        self.lengths = torch.from_numpy(np.asarray(lengths, dtype=np.int64))  # (N,)
        y = data.y if data.y is not None else np.zeros(len(data), dtype=np.int64)
        self.y = torch.from_numpy(np.asarray(y))  # (N,) or (N, ...) targets

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], self.lengths[i], self.y[i]


def make_loader(data, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of (x, lengths, y) from a :class:`SequenceSet` or a lazy dataset of such items."""
    generator = torch.Generator().manual_seed(seed)
    dataset = SequenceTensors(data) if isinstance(data, SequenceSet) else data
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def trim_batch(x: torch.Tensor, lengths: torch.Tensor, variable_length: bool):
    """Drop the all-padding tail of a batch; lengths become None for fixed-length data."""
    if not variable_length:
        return x, None
    return x[:, : int(lengths.max())], lengths  # (B, T_batch, F)


def mean_metric() -> MeanMetric:
    """A weighted mean that keeps a NaN (torchmetrics drops them by default, with a warning): a NaN or Inf
    validation loss must reach the guard that stops training on it."""
    return MeanMetric(nan_strategy=math.nan)


class SeqlabModule(pl.LightningModule):
    """AdamW with the recipe's schedule; per-epoch metrics from torchmetrics, synced across DDP ranks.

    Subclasses implement :meth:`batch_loss`, returning the mean loss, the
    number of items it averages over and their extra metrics as a sum and a
    count (``{"accuracy": (correct.sum(), len(y))}``), and may add metrics in
    :meth:`stage_metrics` and derived values in :meth:`derived`. The steps
    only add to plain tensor sums; after each validation pass the epoch's
    sums go into the torchmetrics means (one update each), whose
    ``compute()`` gathers every rank's, the epoch's ``train_*`` and ``val_*``
    values are logged (so the callbacks at the epoch's end see them all) and
    everything is reset.
    ``recipe`` (the run's :class:`~seqlab.training.recipe.Recipe`, set before
    fitting) chooses the schedule; without one the rate stays constant.
    """

    def __init__(self, model: nn.Module, lr: float, weight_decay: float):
        super().__init__()
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self.recipe = None
        self.gradient_norms: list[float] = []  # this epoch's, one per optimizer step (see configure_gradient_clipping)
        self.train_metrics = self.stage_metrics()
        self.val_metrics = self.stage_metrics()
        self.sums: dict[str, dict[str, list[torch.Tensor]]] = {"train": {}, "val": {}}  # stage -> name -> [sum, count]

    def stage_metrics(self) -> nn.ModuleDict:
        return nn.ModuleDict({"loss": mean_metric()})

    def batch_loss(self, batch, stage: str) -> tuple[torch.Tensor, int, dict[str, tuple]]:
        raise NotImplementedError

    def derived(self, stage: str, values: dict[str, float]) -> dict[str, float]:
        """Values computed from the epoch's metrics (a perplexity from the mean loss)."""
        return {}

    def _step(self, batch, stage: str) -> torch.Tensor:
        loss, n, updates = self.batch_loss(batch, stage)
        sums = self.sums[stage]
        for name, (total, count) in {"loss": (loss.detach() * n, n), **updates}.items():
            if name in sums:
                sums[name][0] += total
                sums[name][1] += count
            else:  # the first step of the epoch: the sums start as copies
                sums[name] = [total.detach().clone(), torch.as_tensor(count, dtype=total.dtype, device=total.device)]
        return loss

    def on_fit_start(self):
        # what an earlier fit of this module left (the learning-rate finder's steps) is not this fit's
        self.sums = {"train": {}, "val": {}}
        for metric in (*self.train_metrics.values(), *self.val_metrics.values()):
            metric.reset()

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            return
        logged = {}
        for stage, metrics in (("train", self.train_metrics), ("val", self.val_metrics)):
            for name, (total, count) in self.sums[stage].items():
                metrics[name].update(total / count, count)  # the epoch's mean, weighted by its count
            self.sums[stage] = {}
            values = {name: float(metric.compute()) for name, metric in metrics.items()
                      if metric.update_count}  # compute() gathers every rank's counts
            if values:
                values.update(self.derived(stage, values))
            logged.update({f"{stage}_{name}": value for name, value in values.items()})
            for metric in metrics.values():
                metric.reset()
        if "train_loss" in logged:  # a validation pass with no training before it logs nothing
            logged["epoch"] = float(self.current_epoch + 1)  # the loggers' epoch column counts from 1 too
            # the same values on every process (compute() gathered them); sync_dist only tells Lightning so
            self.log_dict(logged, prog_bar=False, logger=self.trainer.logger is not None, sync_dist=True)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        """Clip to ``gradient_clip_val`` (``train.clip``; None: no clipping) by the total 2-norm of the gradients,
        computed once per step and appended to ``gradient_norms`` before clipping (the history's ``grad_norm``
        columns read it): the same arithmetic as ``torch.nn.utils.clip_grad_norm_``, with one norm per step."""
        parameters = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not parameters:
            return
        norm = torch.nn.utils.get_total_norm([p.grad for p in parameters], 2.0)
        self.gradient_norms.append(float(norm))
        if gradient_clip_val:
            torch.nn.utils.clip_grads_with_norm_(parameters, gradient_clip_val, norm)

    def configure_optimizers(self):
        from seqlab.training.recipe import build_scheduler

        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.recipe is None:
            return optimizer
        # the steps this process takes (a DDP process sees 1/N of each epoch's batches)
        total = int(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": build_scheduler(optimizer, self.recipe, total)}


class ClassificationModule(SeqlabModule):
    """Cross-entropy training of any zoo model that maps (B, T, F) -> (B, C).

    ``class_weights`` (C,), when given, weight each sequence's loss by its
    class (``train.class_weights: balanced``); accuracy stays unweighted.
    """

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, variable_length: bool,
                 class_weights: torch.Tensor | None = None):
        super().__init__(model, lr, weight_decay)
        self.variable_length = variable_length
        self.register_buffer("class_weights", class_weights, persistent=False)

    def stage_metrics(self) -> nn.ModuleDict:
        # micro-averaged over items: the share of correct predictions, whatever the number of classes
        return nn.ModuleDict({"loss": mean_metric(), "accuracy": mean_metric()})

    def batch_loss(self, batch, stage):
        x, lengths, y = batch
        x, lengths = trim_batch(x, lengths, self.variable_length)
        logits = self.model(x, lengths)  # (B, C)
        correct = (logits.detach().argmax(dim=1) == y).sum().float()
        loss = nn.functional.cross_entropy(logits, y, weight=self.class_weights)
        return loss, len(y), {"accuracy": (correct, len(y))}


class RegressionModule(SeqlabModule):
    """Mean squared error of any zoo model that maps (B, T, F) -> (B, K) targets (standardised by the task)."""

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, variable_length: bool):
        super().__init__(model, lr, weight_decay)
        self.variable_length = variable_length

    def batch_loss(self, batch, stage):
        x, lengths, y = batch
        x, lengths = trim_batch(x, lengths, self.variable_length)
        prediction = self.model(x, lengths)  # (B, K)
        return nn.functional.mse_loss(prediction, y), y.numel(), {}


class LanguageModule(SeqlabModule):
    """Next-character cross-entropy with the state carried across consecutive chunks.

    Chunks arrive in text order (no shuffling); after each one the state is
    detached, so gradients stop at the chunk boundary while the values flow
    on (truncated back-propagation through time). The state restarts at the
    beginning of each epoch and of each validation pass.
    """

    def __init__(self, model: nn.Module, lr: float, weight_decay: float):
        super().__init__(model, lr, weight_decay)
        self.state: dict[str, Any] = {}

    def batch_loss(self, batch, stage):
        x, y = batch  # (B, T) ids
        logits, state = self.model(x, self.state.get(stage))  # (B, T, V)
        self.state[stage] = detach_state(state)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        return loss, y.numel(), {}

    def on_train_epoch_start(self):
        self.state.pop("train", None)

    def on_validation_epoch_start(self):
        self.state.pop("val", None)

    def derived(self, stage, values):
        return {"perplexity": math.exp(min(values["loss"], 50.0))}


class HistoryWriter(pl.Callback):
    """``history.csv``: one row per epoch of the logged ``train_*``/``val_*`` values, the learning rate, the
    seconds the epoch took, anything else logged, and the columns of callbacks with a ``history_values(trainer)``
    method (gradient norms), rewritten atomically after each epoch.

    The rows are part of the callback's state, so they travel in ``last.ckpt``
    and a resumed run continues the very same table.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []
        self._started = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module):
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k != "epoch" and v.numel() == 1}
        if "val_loss" not in logged:
            return
        row = {"epoch": trainer.current_epoch + 1}
        row.update({k: v for k, v in logged.items() if k.startswith("train_")})
        row.update({k: v for k, v in logged.items() if k.startswith("val_")})
        row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        row["seconds"] = time.perf_counter() - self._started
        row.update({k: v for k, v in logged.items() if k not in row})  # anything else logged
        for callback in trainer.callbacks:  # columns other callbacks keep (gradient norms)
            if hasattr(callback, "history_values"):
                row.update(callback.history_values(trainer))
        self.rows.append(row)  # on every rank (each holds the same rows); rank zero writes them
        if not trainer.is_global_zero:
            return
        columns = list(self.rows[0])
        write_csv(self.path, columns, [[r.get(c, "") for c in columns] for r in self.rows], durable=False)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(row) for row in self.rows]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(row) for row in state["rows"]]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written to a temporary file, then renamed.

    Not flushed to disk first: ``last.ckpt`` is rewritten every epoch, and a
    rename is what keeps it whole when the process is killed.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        save_torch(Path(path), checkpoint, durable=False)


class EpochProgressBar(TQDMProgressBar):
    """One bar per training epoch, numbered from 1, with the validation metrics beside it; no validation bar."""

    def init_validation_tqdm(self):
        return Tqdm(disable=True)

    def on_train_epoch_start(self, trainer, *_):
        super().on_train_epoch_start(trainer)
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")


class EpochPrinter(pl.Callback):
    """One line per epoch, for logs and pipes where a progress bar would be noise."""

    def __init__(self, history: HistoryWriter):
        self.history = history

    def on_train_epoch_end(self, trainer, pl_module):
        if self.history.rows and trainer.is_global_zero:
            row = self.history.rows[-1]
            values = " ".join(f"{k}={v:.4f}" for k, v in row.items() if k not in ("epoch", "lr", "seconds"))
            print(f"epoch {row['epoch']}/{trainer.max_epochs} {values} ({row['seconds']:.1f}s)", flush=True)


def quiet_lightning() -> None:
    """Keep Lightning's banner lines and advice out of the user's terminal."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*number of training batches.*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")  # resuming reuses checkpoints/
