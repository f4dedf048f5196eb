"""A Lightning callback that stops training at the first NaN or Inf loss.

A non-finite loss never recovers: the optimiser spreads it through every
weight in one step, and the run would otherwise go on to write a model and
metrics computed from NaN. Training stops instead with the step where it
happened and what usually causes it.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch

from seqlab.errors import SeqlabError

ADVICE = ("check the inputs' scale (data.normalize), or lower train.lr (--lr), or clip gradients "
          "(train.clip, --clip)")


class StopOnNonFiniteLoss(pl.Callback):
    """Raise :class:`SeqlabError` when a training batch's or the validation loss is NaN or Inf."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        value = float(loss.detach().sum())  # one scalar read per step: NaN or Inf in any element shows in the sum
        if not math.isfinite(value):
            raise SeqlabError(f"training stopped: the training loss is {value} at "
                              f"epoch {trainer.current_epoch + 1}, batch {batch_idx + 1}; {ADVICE}")

    def on_validation_end(self, trainer, pl_module):
        # after the module's on_validation_epoch_end, which logs this epoch's val_loss
        loss = trainer.callback_metrics.get("val_loss")
        if trainer.sanity_checking or loss is None:
            return
        if not math.isfinite(float(loss)):
            raise SeqlabError(f"training stopped: the validation loss is {float(loss)} after epoch "
                              f"{trainer.current_epoch + 1}; {ADVICE}")
