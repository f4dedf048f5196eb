"""``train(config, out)``: data -> model -> Lightning fit -> metrics, plots, checkpoint.

The CLI's ``seqlab train`` is a thin wrapper around :func:`train`.
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

import numpy as np
import torch

from seqlab.config import RunConfig, config_to_yaml
from seqlab.data.dataset import DataBundle
from seqlab.data.scaling import Normalizer
from seqlab.data.sources import load_data
from seqlab.errors import SeqlabError
from seqlab.io import write_json, write_text
from seqlab.models.registry import build_model, count_parameters
from seqlab.reports.plots import plot_confusion_matrix, plot_learning_curves
from seqlab.runs import CONFIG_FILE, METRICS_FILE, MODEL_FILE, prepare_out_dir, save_run_checkpoint
from seqlab.training.evaluate import classification_metrics, predict_proba


@dataclass
class TrainResult:
    """What :func:`train` returns: the run folder and its metrics."""

    out: Path
    metrics: dict[str, Any]


def quiet_lightning() -> None:
    """Keep Lightning's banner lines and advice out of the user's terminal."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*number of training batches.*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")  # resuming reuses checkpoints/


def prepare_bundle(config: RunConfig) -> tuple[DataBundle, Normalizer]:
    """Load, split and normalise the data (statistics from the training split only)."""
    bundle = load_data(config.data, seed=config.train.seed)
    normalizer = Normalizer.fit(bundle.train, config.data.normalize)
    bundle.train = normalizer.transform(bundle.train)
    bundle.val = normalizer.transform(bundle.val)
    bundle.test = normalizer.transform(bundle.test)
    return bundle, normalizer


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl+C; ``checkpoints/last.ckpt`` holds the last finished epoch."""


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
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from seqlab.training.module import (
        AtomicCheckpointIO,
        ClassificationModule,
        EpochPrinter,
        EpochProgressBar,
        HistoryWriter,
        make_loader,
    )

    out = Path(out)
    config_yaml = config_to_yaml(config)
    resume = prepare_out_dir(out, config_yaml, overwrite)
    write_text(out / CONFIG_FILE, config_yaml)
    quiet_lightning()
    if config.train.threads:
        torch.set_num_threads(config.train.threads)

    model_options = {k: v for k, v in config.model.items() if k != "name"}
    if model_options.get("head") == "step":
        raise SeqlabError("model.head: 'step' gives one output per time step; classification needs last, mean or attention")
    pl.seed_everything(config.train.seed, workers=True, verbose=False)
    bundle, normalizer = prepare_bundle(config)
    variable_length = any(part.lengths is not None for part in (bundle.train, bundle.val, bundle.test))
    model = build_model(config.model["name"], bundle.input_size, bundle.num_classes, **model_options)
    module = ClassificationModule(model, config.train.lr, config.train.weight_decay, variable_length)

    checkpoint_dir = out / "checkpoints"
    checkpoint = ModelCheckpoint(dirpath=checkpoint_dir, filename="best-{epoch:03d}", monitor="val_loss",
                                 mode="min", save_top_k=1, save_last=True)
    callbacks = [checkpoint, HistoryWriter(out / "history.csv"), *(callbacks or [])]
    interactive = sys.stdout.isatty()
    if not quiet:
        callbacks.append(EpochProgressBar() if interactive else EpochPrinter())
    if config.train.patience:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=config.train.patience))
    trainer = pl.Trainer(
        max_epochs=config.train.epochs,
        accelerator=config.train.accelerator,
        devices=int(config.train.devices) if config.train.devices.isdigit() else config.train.devices,
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
    train_loader = make_loader(bundle.train, config.train.batch_size, shuffle=True, seed=config.train.seed)
    val_loader = make_loader(bundle.val, 512, shuffle=False)
    started = time.perf_counter()
    if resume and not quiet:
        print(f"Resuming the interrupted run in {out} from {checkpoint_dir / 'last.ckpt'}", flush=True)
    try:
        trainer.fit(module, train_loader, val_loader,
                    ckpt_path=str(checkpoint_dir / "last.ckpt") if resume else None, weights_only=True)
    except SystemExit:
        # Lightning turns Ctrl+C into a graceful shutdown plus sys.exit(1); keep it an interruption.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if trainer.interrupted:
            raise TrainingInterrupted(f"training interrupted after {len(module.history)} epochs") from None
        raise
    train_seconds = time.perf_counter() - started

    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    module.load_state_dict(best["state_dict"])
    model.eval()
    val = classification_metrics(predict_proba(model, bundle.val), bundle.val.y, bundle.num_classes)
    test = classification_metrics(predict_proba(model, bundle.test), bundle.test.y, bundle.num_classes)
    val.pop("confusion_matrix")
    metrics = {
        "task": "classification",
        "model": config.model["name"],
        "params": count_parameters(model),
        "train_seconds": round(train_seconds, 3),
        "epochs": len(module.history),
        "best_epoch": int(best["epoch"]) + 1,
        "data": {
            "spec": config.data.spec,
            "train": len(bundle.train),
            "val": len(bundle.val),
            "test": len(bundle.test),
            "steps": bundle.train.steps,
            "features": bundle.input_size,
            "classes": bundle.num_classes,
        },
        "val": val,
        "test": test,
    }
    save_run_checkpoint(
        out / MODEL_FILE,
        model,
        config.model["name"],
        {"input_size": bundle.input_size, "output_size": bundle.num_classes, "options": model_options},
        config.to_dict(),
        normalizer,
        {"spec": config.data.spec, "class_names": bundle.class_names, "feature_names": bundle.feature_names,
         "features": bundle.input_size, "steps": bundle.train.steps, "variable_length": variable_length},
    )
    title = f"{config.model['name']} on {config.data.spec}"
    plot_learning_curves(module.history, out / "learning_curves.png", title)
    plot_confusion_matrix(test["confusion_matrix"], bundle.class_names, out / "confusion_matrix.png",
                          f"{title}: test confusion matrix")
    write_json(out / METRICS_FILE, metrics)  # last: its presence marks the run complete
    return TrainResult(out, metrics)


def evaluate_run(run_dir: str | Path, data_spec: str | None = None, split: str = "test") -> dict[str, Any]:
    """Metrics of a saved run on its own test split, or on another data spec."""
    from seqlab.config import from_dict, DataConfig
    from seqlab.runs import load_run

    run = load_run(run_dir)
    data_config = from_dict(DataConfig, run.config["data"], "data")
    if data_spec is not None:
        data_config.spec = data_spec
    bundle = load_data(data_config, seed=run.config["train"]["seed"])
    check_compatible(bundle, run.class_names, run.checkpoint["data"]["features"], data_config.spec)
    parts = {"test": [bundle.test], "val": [bundle.val], "train": [bundle.train],
             "all": [bundle.train, bundle.val, bundle.test]}[split]
    probabilities = np.concatenate([predict_proba(run.model, run.normalizer.transform(p)) for p in parts])
    y = np.concatenate([p.y for p in parts])
    metrics = classification_metrics(probabilities, y, len(run.class_names))
    return {"task": run.task, "model": run.checkpoint["model"]["name"], "data": data_config.spec,
            "split": split, split: metrics}


def check_compatible(bundle: DataBundle, class_names: list[str], features: int, spec: str) -> None:
    if bundle.input_size != features:
        raise SeqlabError(f"data {spec!r}: has {bundle.input_size} features; the run was trained on {features}")
    if bundle.class_names != class_names:
        raise SeqlabError(f"data {spec!r}: classes {bundle.class_names} differ from the run's {class_names}")
