"""``train(config, out)``: the one sequence every task runs through.

Seed, let the task (:mod:`seqlab.tasks`) open its data, then open the run
folder (locked; refusing to clobber another run; resuming an interrupted
one), write the resolved config, build, fit with Lightning
(:func:`fit_module`), reload the best weights, evaluate, save, and write
``metrics.json`` last. The CLI's ``seqlab train`` is a thin wrapper around
:func:`train`.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping

from seqlab.config import RunConfig, config_to_yaml
from seqlab.inspect.gradients import GradientNormMonitor
from seqlab.io import write_json, write_text
from seqlab.models.registry import count_parameters
from seqlab.runs import CONFIG_FILE, LAST_CHECKPOINT, METRICS_FILE, load_run, open_run_folder
from seqlab.tasks import TASKS
from seqlab.tasks.base import TrainingSetup
from seqlab.training.recipe import Recipe, prepare_module, resolve_recipe
from seqlab.training.checkpoints import RunCheckpoint
from seqlab.training.guards import StopOnNonFiniteLoss
from seqlab.training.hardware import is_rank_zero, trainer_arguments, training_threads
from seqlab.training.loggers import check_logger, make_logger
from seqlab.training.module import AtomicCheckpointIO, EpochPrinter, EpochProgressBar, HistoryWriter, quiet_lightning


@dataclass
class TrainResult:
    """What :func:`train` returns: the run folder and its metrics (empty on DDP ranks other than 0)."""

    out: Path
    metrics: dict[str, Any]
    rank_zero: bool = True


class NotRankZero(Exception):
    """Raised on the DDP ranks other than 0 when fitting ends: evaluating and writing the run are rank 0's."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl+C; ``checkpoints/last.ckpt`` holds the last finished epoch."""


@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_state: dict[str, torch.Tensor]
    best_epoch: int  # from 1
    stopped_epoch: int | None  # the epoch (from 1) after which early stopping ended training, if it did
    seconds: float
    recipe: Recipe
    world_size: int = 1

    def summary(self, config: RunConfig, model: torch.nn.Module) -> dict[str, Any]:
        """The head of every metrics.json: task, model, params, train_seconds, epochs, best_epoch, early stop,
        threads, recipe."""
        return {"task": config.task, "model": config.model["name"], "params": count_parameters(model),
                "train_seconds": round(self.seconds, 3), "epochs": len(self.history), "best_epoch": self.best_epoch,
                "stopped_early": self.stopped_epoch is not None, "stopped_epoch": self.stopped_epoch,
                "threads": torch.get_num_threads(), "world_size": self.world_size, "recipe": self.recipe.summary()}


def fit_module(setup: TrainingSetup, config: RunConfig, out: Path, resume: bool, quiet: bool,
               callbacks: list[Any] | None = None) -> FitResult:
    """Run Lightning with the run's recipe (budget, schedule, the loss that selects the best weights and
    drives early stopping), clipping, history, ``last.ckpt``.

    Returns the history, the best weights of ``setup.model``, when training stopped, the time spent
    and the recipe (``setup.recipe``, or ``config.train`` resolved for the task).
    """
    module = setup.module
    recipe = prepare_module(module, setup.train_loader, setup.recipe or resolve_recipe(config.train, config.task),
                            config, quiet)
    last = out / LAST_CHECKPOINT
    checkpoint = RunCheckpoint(last, setup.generator, monitor=recipe.monitor)
    history = HistoryWriter(out / "history.csv")
    logger, monitors = make_logger(config.train.logger, out)
    callbacks = [checkpoint, GradientNormMonitor(), history, *monitors, *(callbacks or [])]
    callbacks.append(StopOnNonFiniteLoss())
    interactive = sys.stdout.isatty()
    quiet = quiet or not is_rank_zero()
    if not quiet:
        callbacks.append(EpochProgressBar() if interactive else EpochPrinter(history))
    early = EarlyStopping(monitor=recipe.monitor, mode="min", patience=recipe.patience) if recipe.patience else None
    if early is not None:
        callbacks.append(early)
    trainer = pl.Trainer(
        max_epochs=recipe.epochs,
        **trainer_arguments(config.train),
        gradient_clip_val=config.train.clip or None,
        deterministic=True,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=logger or False,
        enable_progress_bar=not quiet and interactive,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=out,
    )
    if resume and not quiet:
        print(f"Resuming the interrupted run in {out} from {last}", flush=True)
    started = time.perf_counter()
    try:
        trainer.fit(module, setup.train_loader, setup.val_loader, ckpt_path=str(last) if resume else None,
                    weights_only=True)
    except SystemExit:
        # Lightning turns Ctrl+C into a graceful shutdown plus sys.exit(1); keep it an interruption.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if trainer.interrupted:
            raise TrainingInterrupted(f"training interrupted after {len(history.rows)} epochs") from None
        raise
    seconds = time.perf_counter() - started
    if not trainer.is_global_zero:
        raise NotRankZero
    stopped = early.stopped_epoch + 1 if early is not None and early.stopped_epoch > 0 else None
    if stopped is not None and not quiet:
        print(f"Stopped early at epoch {stopped} (best {checkpoint.best_epoch})", flush=True)
    return FitResult(history.rows, checkpoint.best_state, checkpoint.best_epoch, stopped, seconds, recipe,
                     trainer.world_size)


def train(
    config: RunConfig,
    out: str | Path,
    overwrite: bool = False,
    quiet: bool = False,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train ``config`` into run folder ``out`` and return its metrics.

    The data is opened and checked before anything is written. An
    interrupted run (same config and data, no ``metrics.json`` yet) resumes
    from ``out/checkpoints/last.ckpt``; a folder with a different run is
    refused unless ``overwrite``. ``callbacks`` are extra Lightning callbacks.
    """
    out = Path(out)
    recipe = TASKS[config.task]
    trainer_arguments(config.train)  # refuses what this machine cannot run, before anything is written
    check_logger(config.train.logger)
    config_yaml = config_to_yaml(config)
    quiet_lightning()
    pl.seed_everything(config.train.seed, workers=True, verbose=False)
    data = recipe.prepare(config)
    if not is_rank_zero():  # DDP: rank 0 opened the folder before the other processes started
        with training_threads(config.train), contextlib.suppress(NotRankZero):
            fit_module(recipe.build(config, data), config, out, (out / LAST_CHECKPOINT).is_file(), quiet, callbacks)
        return TrainResult(out, {}, rank_zero=False)
    with open_run_folder(out, config_yaml, recipe.fingerprint(config, data), overwrite) as folder, \
            training_threads(config.train):
        write_text(out / CONFIG_FILE, config_yaml)
        setup = recipe.build(config, data)
        fit = fit_module(setup, config, out, folder.resume, quiet, callbacks)
        setup.model.load_state_dict(fit.best_state)
        setup.model.eval()
        metrics = {**fit.summary(config, setup.model), **recipe.evaluate(config, data, setup.model)}
        recipe.save(config, data, setup.model, metrics, fit.history, out)
        write_json(out / METRICS_FILE, metrics)  # last: its presence marks the run complete
    return TrainResult(out, metrics)


def evaluate_run(run_dir: str | Path, data_spec: str | None = None, split: str = "test") -> dict[str, Any]:
    """Metrics of a saved run on its own held-out data, or on another data spec."""
    run = load_run(run_dir)
    return TASKS[run.task].evaluate_run(run, data_spec, split)
