"""Lightning glue: the training step for sequence classification, atomic checkpoints.

The model itself knows nothing about training; this module owns the loss,
the optimiser and the per-epoch history (stored in Lightning checkpoints so
an interrupted run resumes with its history intact).
"""

from __future__ import annotations

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

HISTORY_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"]


class SequenceTensors(Dataset):
    """(x (T, F), length, y) triples of a :class:`SequenceSet`."""

    def __init__(self, data: SequenceSet):
        self.X = torch.from_numpy(np.ascontiguousarray(data.X))  # (N, T, F)
        lengths = data.lengths if data.lengths is not None else np.full(len(data), data.steps)
        self.lengths = torch.from_numpy(np.asarray(lengths, dtype=np.int64))  # (N,)
        y = data.y if data.y is not None else np.zeros(len(data), dtype=np.int64)
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))  # (N,)

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], self.lengths[i], self.y[i]


def make_loader(data: SequenceSet, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(SequenceTensors(data), batch_size=batch_size, shuffle=shuffle, generator=generator)


def trim_batch(x: torch.Tensor, lengths: torch.Tensor, variable_length: bool):
    """Drop the all-padding tail of a batch; lengths become None for fixed-length data."""
    if not variable_length:
        return x, None
    return x[:, : int(lengths.max())], lengths  # (B, T_batch, F)


class ClassificationModule(pl.LightningModule):
    """Cross-entropy training of any zoo model that maps (B, T, F) -> (B, C)."""

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, variable_length: bool):
        super().__init__()
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self.variable_length = variable_length
        self.history: list[dict[str, float]] = []
        self._sums: dict[str, list[float]] = {}
        self._epoch_start = time.perf_counter()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x, lengths)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, lengths, y = batch
        x, lengths = trim_batch(x, lengths, self.variable_length)
        logits = self.model(x, lengths)  # (B, C)
        loss = nn.functional.cross_entropy(logits, y)
        correct = (logits.argmax(dim=1) == y).sum().item()
        sums = self._sums.setdefault(stage, [0.0, 0.0, 0.0])
        sums[0] += loss.item() * len(y)
        sums[1] += correct
        sums[2] += len(y)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        loss = self._step(batch, "val")
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch[2]))

    def on_train_epoch_start(self):
        self._sums.pop("train", None)
        self._epoch_start = time.perf_counter()

    def on_validation_epoch_start(self):
        self._sums.pop("val", None)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking or "train" not in self._sums:
            return
        train_loss, train_correct, train_n = self._sums["train"]
        val_loss, val_correct, val_n = self._sums["val"]
        row = {
            "epoch": self.current_epoch + 1,
            "train_loss": train_loss / train_n,
            "train_accuracy": train_correct / train_n,
            "val_loss": val_loss / val_n,
            "val_accuracy": val_correct / val_n,
            "lr": self.trainer.optimizers[0].param_groups[0]["lr"],
            "seconds": time.perf_counter() - self._epoch_start,
        }
        self.history.append(row)
        self.log("val_accuracy", row["val_accuracy"], prog_bar=True)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=4)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["seqlab_history"] = [dict(row) for row in self.history]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = [dict(row) for row in checkpoint.get("seqlab_history", [])]


class HistoryWriter(pl.Callback):
    """Rewrites ``history.csv`` (one row per epoch) atomically after each epoch."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_epoch_end(self, trainer, pl_module):
        rows = [[row[c] for c in HISTORY_COLUMNS] for row in pl_module.history]
        write_csv(self.path, HISTORY_COLUMNS, rows)


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
            print(f"epoch {row['epoch']}/{trainer.max_epochs} train_loss={row['train_loss']:.4f} "
                  f"val_loss={row['val_loss']:.4f} val_accuracy={row['val_accuracy']:.4f} "
                  f"({row['seconds']:.1f}s)", flush=True)
