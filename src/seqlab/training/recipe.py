"""The training recipe: batch size, step budget, schedule and model selection from the data.

``auto`` values of :class:`seqlab.config.TrainConfig` are resolved here,
once per run, from the training split's size N, its sequence length T, the
validation split's size and the class count C (symbols used throughout):

* batch size B = the largest power of two <= N / 4, kept within
  [16, 64] (and <= N), so a small set still gets several optimizer steps
  per epoch and a large one the batch that was tuned on ``digits``;
* steps: ``EPOCHS_PER_BUDGET`` passes over the data, at least ``MIN_STEPS``
  and at most ``MAX_STEPS`` optimizer steps; for long sequences the floor
  drops so that it spends at most ``WORK_BUDGET`` sequence time steps
  (B * T per step), which keeps small sets of long series affordable;
* patch p (recurrent models, ``model.patch: auto``): 1 for T <=
  ``PATCH_ABOVE``; longer series are read ``p`` consecutive steps at a
  time, p = ceil(T / ``PATCH_STEPS``), so the recurrence runs at most
  ``PATCH_STEPS`` steps (the step budget then counts those steps);
* schedule ``onecycle`` (warm-up, then cosine annealing);
* selection on validation loss only when the validation split holds at
  least ``MIN_VAL_SEQUENCES`` and ``MIN_VAL_PER_CLASS`` * C sequences;
  otherwise on the mean training loss of each epoch (Fawaz et al. 2019,
  Karim et al. 2017), so no decision hangs on a handful of series.

Forecast and language-model runs have no such sizes; their ``auto`` values
resolve to the fixed settings they were tuned with (batch 64, 40 epochs,
plateau schedule, validation selection, patience 10).

The learning-rate finder (:func:`find_lr`) wraps Lightning's
``Tuner.lr_find``; ``seqlab lr-find`` and ``train.lr: auto`` use it.
"""

from __future__ import annotations

import contextlib
import io
import math
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqlab.config import TrainConfig
from seqlab.errors import SeqlabError

MIN_BATCH, MAX_BATCH = 16, 64
EPOCHS_PER_BUDGET = 30
MIN_STEPS, MAX_STEPS = 1000, 20000
WORK_BUDGET = 4_000_000  # sequence time steps (B * T summed over steps) the step floor may spend
MIN_WORK_STEPS = 100  # the work budget never lowers the floor below this many steps
MIN_VAL_SEQUENCES, MIN_VAL_PER_CLASS = 100, 10
PATCH_ABOVE = 512  # longer series: the recurrence reads patches of consecutive steps
PATCH_STEPS = 64  # ... at most this many of them
FIXED = {"batch_size": 64, "epochs": 40, "schedule": "plateau", "select": "val", "patience": 10}


def warn(message: str) -> None:
    """A one-line warning on stderr, in the CLI's voice."""
    print(f"seqlab: warning: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# The rules, as pure functions


def auto_batch_size(n_train: int) -> int:
    """B = largest power of two <= N / 4, within [16, 64], and never more than N."""
    power = 2 ** int(math.floor(math.log2(max(n_train / 4, 1))))
    return max(1, min(n_train, max(MIN_BATCH, min(MAX_BATCH, power))))


def auto_steps(n_train: int, batch_size: int, length: int) -> int:
    """Optimizer steps: EPOCHS_PER_BUDGET epochs, raised to a floor, capped at MAX_STEPS.

    The floor is MIN_STEPS, lowered for long sequences so that the floor's
    steps process at most WORK_BUDGET sequence time steps (B * T per step;
    never below MIN_WORK_STEPS): a small set of 1,460-step series costs
    about what a small set of 100-step series does. Large sets are never cut
    below their EPOCHS_PER_BUDGET epochs except by MAX_STEPS.
    """
    per_epoch = math.ceil(n_train / batch_size)
    floor = min(MIN_STEPS, max(MIN_WORK_STEPS, WORK_BUDGET // (batch_size * max(length, 1))))
    return min(MAX_STEPS, max(floor, EPOCHS_PER_BUDGET * per_epoch))


def auto_patch(length: int) -> int:
    """p = 1 for T <= PATCH_ABOVE, else the smallest p with ceil(T / p) <= PATCH_STEPS."""
    return 1 if length <= PATCH_ABOVE else math.ceil(length / PATCH_STEPS)


def auto_select(n_val: int, num_classes: int) -> str:
    """``val`` when the validation split can be trusted to rank checkpoints, else ``train``."""
    enough = n_val >= MIN_VAL_SEQUENCES and n_val >= MIN_VAL_PER_CLASS * num_classes
    return "val" if enough else "train"


def balanced_class_weights(y: np.ndarray, num_classes: int) -> torch.Tensor:
    """w_c = N / (C * N_c) over the training labels (scikit-learn's ``balanced``); absent classes get 0."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def lr_factor(step: int, total: int, warmup: float, schedule: str) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` of ``total`` (``cosine``).

    Linear warm-up over the first ``warmup * total`` steps, from 1/W to 1,
    then cosine decay to 0 at ``total``; ``constant`` is 1 throughout.
    """
    if schedule == "constant":
        return 1.0
    warm = int(round(warmup * total))
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# ----------------------------------------------------------------------------
# A resolved recipe


@dataclass
class Recipe:
    """What a run trains with, every ``auto`` resolved.

    Attributes:
        batch_size: sequences per optimizer step.
        steps: optimizer-step limit (-1: none, the epochs decide).
        epochs: epoch limit (-1: none, the steps decide).
        lr: peak learning rate, or None until the finder has run (``lr: auto``).
        schedule: ``onecycle``, ``cosine``, ``plateau`` or ``constant``.
        warmup: share of the steps spent warming up.
        select: ``val`` or ``train``: the loss that picks the checkpoint.
        patience: epochs without improvement before stopping (0: never).
        class_weights: ``none`` or ``balanced``.
        reasons: why each ``auto`` value came out as it did.
        patch: steps a recurrent model reads as one (``model.patch``); None
            for models without the option.
    """

    batch_size: int
    steps: int
    epochs: int
    lr: float | None
    schedule: str
    warmup: float
    select: str
    patience: int
    class_weights: str
    reasons: dict[str, str]
    patch: int | None = None

    @property
    def monitor(self) -> str:
        return f"{self.select}_loss"

    def for_loader(self, steps_per_epoch: int) -> Recipe:
        """Whole epochs only: the step limit rounds up to a whole epoch, so every run ends on a
        validated epoch (the last, annealed steps of a schedule are never cut off unseen).

        Returns a copy with both limits concrete: ``epochs`` and
        ``steps = epochs * steps_per_epoch``.
        """
        limits = [self.epochs] if self.epochs > 0 else []
        if self.steps > 0:
            limits.append(math.ceil(self.steps / steps_per_epoch))
        epochs = min(limits)
        return replace(self, epochs=epochs, steps=epochs * steps_per_epoch)

    def summary(self) -> dict[str, Any]:
        """The ``recipe`` entry of ``metrics.json``."""
        return asdict(self)


def resolve_recipe(train: TrainConfig, task: str, n_train: int = 0, n_val: int = 0, num_classes: int = 0,
                   length: int = 1, patch: int | str | None = None) -> Recipe:
    """Resolve the ``auto`` values of ``train`` (and ``model.patch``, given as ``patch``) for a run (see the
    module docstring for the rules)."""
    reasons: dict[str, str] = {}
    adaptive = task in ("classification", "regression")
    if patch == "auto":
        patch = auto_patch(length) if adaptive else 1
        reasons["patch"] = (f"{length} steps {'>' if patch > 1 else '<='} {PATCH_ABOVE}"
                            + (f": {math.ceil(length / patch)} recurrent steps of {patch}" if patch > 1 else "")
                            if adaptive else f"fixed for task {task}")
    length = math.ceil(length / (patch or 1))  # the steps the model runs through
    batch_size = train.batch_size
    if batch_size == "auto":
        batch_size = auto_batch_size(n_train) if adaptive else FIXED["batch_size"]
        reasons["batch_size"] = (f"{n_train} training sequences" if adaptive else f"fixed for task {task}")
    steps, epochs = train.steps, train.epochs
    if steps == "auto" and epochs == "auto":
        if adaptive:
            steps, epochs = auto_steps(n_train, batch_size, length), -1
            reasons["steps"] = (f"{n_train} training sequences of length {length}, batch {batch_size}: "
                                f"{math.ceil(n_train / batch_size)} steps per epoch")
        else:
            steps, epochs = -1, FIXED["epochs"]
            reasons["epochs"] = f"fixed for task {task}"
    elif steps == "auto":
        steps = -1
    elif epochs == "auto":
        epochs = -1
    schedule = train.schedule
    if schedule == "auto":
        schedule = "onecycle" if adaptive else FIXED["schedule"]
    select = train.select
    if select == "auto":
        select = auto_select(n_val, num_classes) if adaptive else FIXED["select"]
        reasons["select"] = (f"{n_val} validation sequences, {num_classes} classes (validation selection needs "
                             f">= {max(MIN_VAL_SEQUENCES, MIN_VAL_PER_CLASS * num_classes)})"
                             if adaptive else f"fixed for task {task}")
    patience = train.patience
    if patience == "auto":
        patience = 0 if adaptive else FIXED["patience"]
    lr = None if train.lr == "auto" else float(train.lr)
    return Recipe(int(batch_size), int(steps), int(epochs), lr, schedule, train.warmup, select, int(patience),
                  train.class_weights, reasons, None if patch is None else int(patch))


def check_classification_data(train_y: np.ndarray, num_classes: int, class_names: list[str], source: str) -> None:
    """Refuse a training split that no recipe can learn from; warn about one that is nearly so.

    The loaders already refuse data with a single class or a class of one
    sequence (:func:`seqlab.data.dataset.check_classes`); this checks what
    the split left for training. Errors: fewer training sequences than
    classes, a class with no training sequence. Warning: a class with a
    single training sequence (its accuracy rests on one example).
    """
    counts = np.bincount(np.asarray(train_y, dtype=np.int64), minlength=num_classes)
    n = int(counts.sum())
    if n < num_classes:
        raise SeqlabError(f"data {source!r}: the training split holds {n} sequences for {num_classes} classes; "
                          f"expected at least one per class (add data, or lower data.val_fraction or "
                          f"data.test_fraction)")
    missing = [class_names[c] for c in range(num_classes) if counts[c] == 0]
    if missing:
        raise SeqlabError(f"data {source!r}: class {missing[0]!r} has no sequence in the training split "
                          f"({n} sequences, {num_classes} classes); expected at least one per class "
                          f"(add data, or lower data.val_fraction or data.test_fraction)")
    single = [class_names[c] for c in range(num_classes) if counts[c] == 1]
    if single:
        warn(f"data {source!r}: class {single[0]!r} has a single training sequence"
             + (f" ({len(single)} such classes)" if len(single) > 1 else "")
             + "; its test accuracy will be close to chance")


# ----------------------------------------------------------------------------
# Optimizer schedules (SeqlabModule.configure_optimizers calls this)


def build_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, total_steps: int) -> dict[str, Any]:
    """Lightning's ``lr_scheduler`` entry for the recipe's schedule over ``total_steps`` optimizer steps.

    ``onecycle`` and ``cosine`` step per optimizer step; ``plateau`` steps
    at each epoch's end on the validation loss.
    """
    if recipe.schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=4)
        return {"scheduler": scheduler, "monitor": "val_loss"}
    if recipe.schedule == "onecycle":
        steps = max(total_steps, 2)
        warmup = max(recipe.warmup, 1e-3)
        if math.isclose(warmup * steps, 1.0):  # torch's warm-up phase would end at step 0: a phase of length 0
            warmup = 1.5 / steps
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=steps,
                                                        pct_start=warmup, anneal_strategy="cos")
        return {"scheduler": scheduler, "interval": "step"}
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, recipe.warmup, recipe.schedule))
    return {"scheduler": scheduler, "interval": "step"}


def prepare_module(module, train_loader, recipe: Recipe, config, quiet: bool) -> Recipe:
    """Fix ``recipe`` to whole epochs of ``train_loader``, run the finder for ``lr: auto``,
    and hand the learning rate and recipe to ``module``. Returns the final recipe."""
    recipe = recipe.for_loader(len(train_loader))
    if recipe.lr is None:
        module.lr, module.recipe = LR_FIND_RANGE[0], None  # the finder sets the rate step by step
        found = find_lr(module, train_loader, config.train, *LR_FIND_RANGE, quiet=quiet)
        if found.diverged:
            raise SeqlabError("train.lr=auto: the learning-rate finder found no rate: "
                              + diverged_message(found, config.model["name"]))
        reasons = {**recipe.reasons, "lr": f"learning-rate finder, {LR_FIND_RANGE[0]:g}..{LR_FIND_RANGE[1]:g}"}
        recipe = replace(recipe, lr=float(found.suggestion), reasons=reasons)
    module.lr, module.recipe = recipe.lr, recipe
    return recipe


# ----------------------------------------------------------------------------
# Learning-rate finder

LR_FIND_RANGE = (1e-6, 1.0)
SETTLE_STEPS = 10


@dataclass
class LRFind:
    """The finder's curve and its suggestion (None when the loss diverged from the start)."""

    lrs: list[float]
    losses: list[float]
    suggestion: float | None
    diverged: bool
    plot: Path | None = None


def find_lr(module, train_loader, train: TrainConfig, min_lr: float = LR_FIND_RANGE[0],
            max_lr: float = LR_FIND_RANGE[1], num_training: int = 100, quiet: bool = True) -> LRFind:
    """Run Lightning's ``Tuner.lr_find`` on ``module``; its weights are restored afterwards.

    The learning rate grows exponentially from ``min_lr`` to ``max_lr`` over
    ``num_training`` steps; the suggestion is the steepest fall of the
    smoothed loss after the first ``SETTLE_STEPS`` (whose smoothing is still
    biased). The search counts as diverged when it stopped (loss above 4x its
    best) within those steps, or when the loss never fell below its value at
    step ``SETTLE_STEPS``; then no rate is suggested.
    """
    import lightning.pytorch as pl
    from lightning.pytorch.tuner import Tuner

    with tempfile.TemporaryDirectory(prefix="seqlab-lr-find-") as scratch:
        trainer = pl.Trainer(max_epochs=-1, accelerator=train.accelerator, devices=1, logger=False,
                             gradient_clip_val=train.clip or None, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                             default_root_dir=scratch)
        sink = io.StringIO()
        with contextlib.redirect_stderr(sink) if quiet else contextlib.nullcontext():
            finder = Tuner(trainer).lr_find(module, train_dataloaders=train_loader, min_lr=min_lr, max_lr=max_lr,
                                            num_training=num_training, update_attr=False)
    lrs = [float(v) for v in finder.results["lr"]]
    losses = [float(v) for v in finder.results["loss"]]
    later = [v for v in losses[SETTLE_STEPS:] if math.isfinite(v)]
    diverged = not later or not math.isfinite(losses[SETTLE_STEPS]) or min(later) >= losses[SETTLE_STEPS]
    with contextlib.redirect_stderr(io.StringIO()):  # Lightning logs "not enough points" itself
        suggestion = None if diverged else finder.suggestion(skip_begin=SETTLE_STEPS)
    return LRFind(lrs, losses, suggestion, diverged or suggestion is None)


def plot_lr_find(result: LRFind, path: Path, title: str) -> Path:
    """Loss against learning rate (log axis), the suggestion marked; written atomically."""
    from matplotlib.figure import Figure

    from seqlab.io import save_figure

    figure = Figure(figsize=(6, 4))
    axis = figure.subplots()
    axis.plot(result.lrs, result.losses)
    if result.suggestion is not None:
        index = result.lrs.index(result.suggestion)
        axis.plot([result.suggestion], [result.losses[index]], "o", color="red",
                  label=f"suggested {result.suggestion:.2g}")
        axis.legend()
    axis.set_xscale("log")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("smoothed training loss")
    axis.set_title(title)
    save_figure(figure, path)
    result.plot = Path(path)
    return result.plot


def diverged_message(result: LRFind, model: str) -> str:
    if len(result.losses) <= SETTLE_STEPS:
        what = f"the training loss of {model} blew up within {len(result.losses)} steps"
    else:
        what = (f"the training loss of {model} never fell below its value at step {SETTLE_STEPS} "
                f"({result.losses[SETTLE_STEPS]:.4g})")
    return (f"{what}, learning rates {result.lrs[0]:.2g} to {result.lrs[-1]:.2g}: the model diverges; check the "
            f"data scaling (data.normalize), lower --min-lr, or set train.lr by hand")
