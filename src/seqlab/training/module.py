"""Lightning glue: training steps per task, per-epoch history, atomic checkpoints.

The models know nothing about training; these modules own the losses, the
optimiser and the history (stored in Lightning checkpoints, so an
interrupted run resumes with its history intact).
"""

from __future__ import annotations

import math
import time
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


class SeqlabModule(pl.LightningModule):
    """AdamW with a plateau schedule, and one history row per epoch.

    Subclasses implement :meth:`batch_loss`, returning the mean loss, the
    number of items it averages over and extra sums (``{"correct": k}``);
    :meth:`summarise` turns a stage's sums into history columns.
    """

    def __init__(self, model: nn.Module, lr: float, weight_decay: float):
        super().__init__()
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self.history: list[dict[str, float]] = []
        self._sums: dict[str, dict[str, float]] = {}
        self._epoch_start = time.perf_counter()

    def batch_loss(self, batch, stage: str) -> tuple[torch.Tensor, int, dict[str, float]]:
        raise NotImplementedError

    def summarise(self, stage: str, sums: dict[str, float]) -> dict[str, float]:
        return {f"{stage}_loss": sums["loss"] / sums["n"]}

    def _step(self, batch, stage: str) -> torch.Tensor:
        loss, n, extra = self.batch_loss(batch, stage)
        sums = self._sums.setdefault(stage, {"loss": 0.0, "n": 0})
        sums["loss"] += loss.item() * n
        sums["n"] += n
        for key, value in extra.items():
            sums[key] = sums.get(key, 0.0) + value
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def _all_processes(self, sums: dict[str, float]) -> dict[str, float]:
        """A stage's sums over every DDP process (each one sees its own share of the batches)."""
        if self.trainer.world_size == 1:
            return sums
        keys = sorted(sums)
        values = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=self.device)
        return dict(zip(keys, self.trainer.strategy.reduce(values, reduce_op="sum").tolist()))

    def on_train_epoch_start(self):
        self._sums.pop("train", None)
        self._epoch_start = time.perf_counter()

    def on_validation_epoch_start(self):
        self._sums.pop("val", None)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking or "train" not in self._sums or "val" not in self._sums:
            return
        row = {"epoch": self.current_epoch + 1}
        row.update(self.summarise("train", self._all_processes(self._sums["train"])))
        row.update(self.summarise("val", self._all_processes(self._sums["val"])))
        # the same value on every process; sync_dist only says so to Lightning
        self.log("val_loss", row["val_loss"], prog_bar=True, sync_dist=True)
        row["lr"] = self.trainer.optimizers[0].param_groups[0]["lr"]
        row["seconds"] = time.perf_counter() - self._epoch_start
        self.history.append(row)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=4)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["seqlab_history"] = [dict(row) for row in self.history]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = [dict(row) for row in checkpoint.get("seqlab_history", [])]


class ClassificationModule(SeqlabModule):
    """Cross-entropy training of any zoo model that maps (B, T, F) -> (B, C)."""

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, variable_length: bool):
        super().__init__(model, lr, weight_decay)
        self.variable_length = variable_length

    def batch_loss(self, batch, stage):
        x, lengths, y = batch
        x, lengths = trim_batch(x, lengths, self.variable_length)
        logits = self.model(x, lengths)  # (B, C)
        correct = (logits.argmax(dim=1) == y).sum().item()
        return nn.functional.cross_entropy(logits, y), len(y), {"correct": correct}

    def summarise(self, stage, sums):
        return {f"{stage}_loss": sums["loss"] / sums["n"], f"{stage}_accuracy": sums["correct"] / sums["n"]}


class RegressionModule(SeqlabModule):
    """Mean squared error between the model's output and the target, any shape."""

    def batch_loss(self, batch, stage):
        x, _, y = batch
        prediction = self.model(x)  # (B, T, C) per step or (B, H*C) direct
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
        super().on_train_epoch_start()
        self.state.pop("train", None)

    def on_validation_epoch_start(self):
        super().on_validation_epoch_start()
        self.state.pop("val", None)

    def summarise(self, stage, sums):
        loss = sums["loss"] / sums["n"]
        return {f"{stage}_loss": loss, f"{stage}_perplexity": math.exp(min(loss, 50.0))}


class HistoryWriter(pl.Callback):
    """Rewrites ``history.csv`` (one row per epoch) atomically after each epoch."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_epoch_end(self, trainer, pl_module):
        if pl_module.history and trainer.is_global_zero:
            columns = list(pl_module.history[0])
            write_csv(self.path, columns, [[row[c] for c in columns] for row in pl_module.history])


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written to a temporary file, then renamed."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        save_torch(Path(path), checkpoint)


class EpochProgressBar(TQDMProgressBar):
    """One bar per training epoch with the validation metrics beside it; no validation bar."""

    def init_validation_tqdm(self):
        return Tqdm(disable=True)


class EpochPrinter(pl.Callback):
    """One line per epoch, for logs and pipes where a progress bar would be noise."""

    def on_train_epoch_end(self, trainer, pl_module):
        if pl_module.history:
            row = pl_module.history[-1]
            values = " ".join(f"{k}={v:.4f}" for k, v in row.items() if k not in ("epoch", "lr", "seconds"))
            print(f"epoch {row['epoch']}/{trainer.max_epochs} {values} ({row['seconds']:.1f}s)", flush=True)
