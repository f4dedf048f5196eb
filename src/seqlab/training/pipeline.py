"""``train(config, out)``: the shared run around every task.

Prepares the run folder (refusing to clobber another run, resuming an
interrupted one), writes the resolved config, seeds everything, then hands
over to the task (:mod:`seqlab.tasks`), which builds its data and model and
calls :func:`fit_module` to run Lightning. The CLI's ``seqlab train`` is a
thin wrapper around :func:`train`.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqlab.config import RunConfig, config_to_yaml
from seqlab.io import write_text
from seqlab.runs import CONFIG_FILE, prepare_out_dir


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
    best_epoch: int
    seconds: float
    world_size: int = 1

    def summary(self, task: str, config: RunConfig, model: torch.nn.Module) -> dict[str, Any]:
        """The head of every metrics.json: task, model, params, train_seconds, epochs, best_epoch, threads."""
        from seqlab.models.registry import count_parameters

        return {"task": task, "model": config.model["name"], "params": count_parameters(model),
                "train_seconds": round(self.seconds, 3), "epochs": len(self.history), "best_epoch": self.best_epoch,
                "threads": torch.get_num_threads(), "world_size": self.world_size}


def quiet_lightning() -> None:
    """Keep Lightning's banner lines and advice out of the user's terminal."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*number of training batches.*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")  # resuming reuses checkpoints/


def fit_module(module, train_loader, val_loader, config: RunConfig, out: Path, resume: bool, quiet: bool,
               callbacks: list[Any] | None = None) -> FitResult:
    """Run Lightning: best checkpoint on validation loss, early stopping, clipping, history.

    Returns the history, the best weights of ``module.model`` and the time spent.
    """
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from seqlab.inspect.gradients import GradientNormMonitor
    from seqlab.training.guards import StopOnNonFiniteLoss
    from seqlab.training.hardware import is_rank_zero, trainer_arguments
    from seqlab.training.module import AtomicCheckpointIO, EpochPrinter, EpochProgressBar, HistoryWriter

    checkpoint_dir = out / "checkpoints"
    checkpoint = ModelCheckpoint(dirpath=checkpoint_dir, filename="best-{epoch:03d}", monitor="val_loss",
                                 mode="min", save_top_k=1, save_last=True)
    callbacks = [checkpoint, GradientNormMonitor(), HistoryWriter(out / "history.csv"), *(callbacks or [])]
    callbacks.append(StopOnNonFiniteLoss())
    interactive = sys.stdout.isatty()
    quiet = quiet or not is_rank_zero()
    if not quiet:
        callbacks.append(EpochProgressBar() if interactive else EpochPrinter())
    if config.train.patience:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=config.train.patience))
    trainer = pl.Trainer(
        max_epochs=config.train.epochs,
        **trainer_arguments(config.train),
        gradient_clip_val=config.train.clip or None,
        deterministic=True,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=False,
        enable_progress_bar=not quiet and interactive,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=out,
    )
    if resume and not quiet:
        print(f"Resuming the interrupted run in {out} from {checkpoint_dir / 'last.ckpt'}", flush=True)
    started = time.perf_counter()
    try:
        trainer.fit(module, train_loader, val_loader,
                    ckpt_path=str(checkpoint_dir / "last.ckpt") if resume else None, weights_only=True)
    except SystemExit:
        # Lightning turns Ctrl+C into a graceful shutdown plus sys.exit(1); keep it an interruption.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if trainer.interrupted:
            raise TrainingInterrupted(f"training interrupted after {len(module.history)} epochs") from None
        raise
    seconds = time.perf_counter() - started
    if not trainer.is_global_zero:
        raise NotRankZero
    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    prefix = "model."
    state = {k[len(prefix):]: v for k, v in best["state_dict"].items() if k.startswith(prefix)}
    return FitResult(module.history, state, int(best["epoch"]) + 1, seconds, trainer.world_size)


def train(
    config: RunConfig,
    out: str | Path,
    overwrite: bool = False,
    quiet: bool = False,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train ``config`` into run folder ``out`` and return its metrics.

    An interrupted run (same config, no ``metrics.json`` yet) resumes from
    ``out/checkpoints/last.ckpt``; a folder with a different run is refused
    unless ``overwrite``. ``callbacks`` are extra Lightning callbacks.
    """
    import lightning.pytorch as pl

    from seqlab.tasks import TASK_TRAINERS
    from seqlab.training.hardware import is_rank_zero, trainer_arguments, training_threads

    trainer_arguments(config.train)  # refuses what this machine cannot run, before anything is written
    out = Path(out)
    config_yaml = config_to_yaml(config)
    if is_rank_zero():
        resume = prepare_out_dir(out, config_yaml, overwrite)
        write_text(out / CONFIG_FILE, config_yaml)
    else:  # DDP: rank 0 prepared the folder before the other processes started
        resume = (out / "checkpoints" / "last.ckpt").is_file()
    quiet_lightning()
    pl.seed_everything(config.train.seed, workers=True, verbose=False)
    try:
        with training_threads(config.train):
            metrics = TASK_TRAINERS[config.task](config, out, resume=resume, quiet=quiet, callbacks=callbacks)
    except NotRankZero:
        return TrainResult(out, {}, rank_zero=False)
    return TrainResult(out, metrics)


def evaluate_run(run_dir: str | Path, data_spec: str | None = None, split: str = "test") -> dict[str, Any]:
    """Metrics of a saved run on its own held-out data, or on another data spec."""
    from seqlab.runs import load_run
    from seqlab.tasks import TASK_EVALUATORS

    run = load_run(run_dir)
    return TASK_EVALUATORS[run.task](run, data_spec, split)
