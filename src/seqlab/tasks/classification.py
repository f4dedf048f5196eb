"""Sequence classification: one label per sequence, cross-entropy, accuracy and macro-F1."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqlab.baselines.classification import classification_report
from seqlab.config import DataConfig, RunConfig, from_dict
from seqlab.data.dataset import DataBundle, SequenceSet
from seqlab.data.scaling import Normalizer
from seqlab.data.sources import load_data
from seqlab.errors import SeqlabError
from seqlab.io import write_json
from seqlab.models.registry import build_model, get_model_entry
from seqlab.reports.plots import plot_attention, plot_confusion_matrix, plot_learning_curves
from seqlab.runs import MODEL_FILE, Run, save_run_checkpoint
from seqlab.tasks.base import TaskRecipe, TrainingSetup, fingerprint, model_options
from seqlab.training.evaluate import classification_metrics, predict_proba
from seqlab.training.module import ClassificationModule, make_loader, quiet_lightning
from seqlab.training.recipe import (balanced_class_weights, check_classification_data, diverged_message, find_lr,
                                    plot_lr_find, resolve_recipe)


def prepare_bundle(config: RunConfig, tokens: bool = False) -> tuple[DataBundle, Normalizer]:
    """Load, split and normalise the data (statistics from the training split only).

    Token ids (``tokens``) and data that scales itself (DEAP windows) are not normalised here.
    """
    bundle = load_data(config.data, seed=config.train.seed)
    return normalize_bundle(bundle, "none" if tokens else config.data.normalize)


def normalize_bundle(bundle: DataBundle, kind: str) -> tuple[DataBundle, Normalizer]:
    """Fit ``kind`` on the training split and apply it to every split; lazy data (DEAP windows) scales itself."""
    if not isinstance(bundle.train, SequenceSet):
        return bundle, Normalizer.identity(bundle.input_size)
    normalizer = Normalizer.fit(bundle.train, kind)
    if kind == "none":
        return bundle, normalizer
    bundle.train = normalizer.transform(bundle.train)
    bundle.val = normalizer.transform(bundle.val)
    bundle.test = normalizer.transform(bundle.test)
    return bundle, normalizer


@dataclass
class ClassificationData:
    """The prepared data of a classification run: normalised splits and how the model reads them."""

    bundle: DataBundle
    normalizer: Normalizer
    input_size: int  # F, or the vocabulary size V of a token model
    variable_length: bool


def part_digest(part) -> list[Any]:
    if isinstance(part, SequenceSet):
        return [part.X, part.lengths, part.y]
    # a lazy dataset (DEAP windows): its index arrays and scaling describe what it reads
    return [type(part).__name__, len(part)] + [v for v in vars(part).values()
                                               if isinstance(v, (np.ndarray, int, float, str))]


class ClassificationTask(TaskRecipe):
    """One label per sequence: cross-entropy, accuracy, macro-F1, confusion matrix, attention plot."""

    name = "classification"

    def prepare(self, config: RunConfig) -> ClassificationData:
        if config.model.get("head") == "step":
            raise SeqlabError("model.head: 'step' gives one output per time step; classification needs last, "
                              "mean or attention")
        entry = get_model_entry(config.model["name"])
        bundle, normalizer = prepare_bundle(config, tokens=entry.tokens)
        variable_length = any(part.lengths is not None for part in (bundle.train, bundle.val, bundle.test))
        input_size = vocabulary_size(bundle) if entry.tokens else bundle.input_size
        check_classification_data(bundle.train.y, bundle.num_classes, bundle.class_names, config.data.spec)
        return ClassificationData(bundle, normalizer, input_size, variable_length)

    def fingerprint(self, config: RunConfig, data: ClassificationData) -> str:
        bundle = data.bundle
        return fingerprint(config, bundle.class_names, data.normalizer.state_dict(),
                           *(x for part in (bundle.train, bundle.val, bundle.test) for x in part_digest(part)))

    def build(self, config: RunConfig, data: ClassificationData) -> TrainingSetup:
        bundle = data.bundle
        recipe = resolve_recipe(config.train, "classification", len(bundle.train), len(bundle.val),
                                bundle.num_classes, bundle.train.steps, config.model.get("patch"))
        options = model_options(config)
        if recipe.patch is not None:
            options["patch"] = recipe.patch
        model = build_model(config.model["name"], data.input_size, bundle.num_classes, steps=bundle.train.steps,
                            **options)
        weights = balanced_class_weights(bundle.train.y, bundle.num_classes) \
            if recipe.class_weights == "balanced" else None
        module = ClassificationModule(model, recipe.lr, config.train.weight_decay, data.variable_length, weights)
        train_loader = make_loader(bundle.train, recipe.batch_size, shuffle=True, seed=config.train.seed)
        val_loader = make_loader(bundle.val, 512, shuffle=False)
        return TrainingSetup(model, module, train_loader, val_loader, train_loader.generator, recipe)

    def evaluate(self, config: RunConfig, data: ClassificationData, model: nn.Module) -> dict[str, Any]:
        bundle = data.bundle
        names = bundle.class_names
        val = classification_metrics(predict_proba(model, bundle.val), bundle.val.y, bundle.num_classes, names)
        test = classification_metrics(predict_proba(model, bundle.test), bundle.test.y, bundle.num_classes, names)
        val.pop("confusion_matrix")
        val.pop("report")
        metrics = {
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
            **classification_report(bundle.train, bundle.val, bundle.test, bundle.num_classes, test,
                                    config.train.seed, config.train.baselines),
        }
        if hasattr(model, "receptive_field"):
            metrics["receptive_field"] = model.receptive_field
        return metrics

    def save(self, config: RunConfig, data: ClassificationData, model: nn.Module, metrics: dict[str, Any],
             history: list[dict[str, float]], out: Path) -> None:
        bundle = data.bundle
        options = model_options(config)
        if "patch" in options:  # as the recipe resolved it, so the checkpoint rebuilds the same model
            options["patch"] = model.patch
        save_run_checkpoint(
            out / MODEL_FILE,
            model,
            {"name": config.model["name"], "builder": "zoo", "input_size": data.input_size,
             "output_size": bundle.num_classes, "steps": bundle.train.steps, "options": options},
            config.to_dict(),
            "classification",
            {"normalizer": data.normalizer.state_dict(), "class_names": bundle.class_names,
             "feature_names": bundle.feature_names, "features": bundle.input_size, "steps": bundle.train.steps,
             "variable_length": data.variable_length},
        )
        title = f"{config.model['name']} on {config.data.spec}"
        plot_learning_curves(history, out / "learning_curves.png", title)
        plot_confusion_matrix(metrics["test"]["confusion_matrix"], bundle.class_names, out / "confusion_matrix.png",
                              f"{title}: test confusion matrix")
        if getattr(model, "attention", None) is not None and isinstance(bundle.test, SequenceSet):
            weights = attention_weights(model, bundle.test)  # (N, T'); T' = T unless attending over other steps
            lengths = bundle.test.lengths if weights.shape[1] == bundle.test.steps else None
            plot_attention(weights, bundle.test.y, bundle.class_names, out / "attention.png",
                           f"{title}: attention over time (test)", lengths)

    def evaluate_run(self, run: Run, data_spec: str | None, split: str) -> dict[str, Any]:
        return evaluate_classification(run, data_spec, split)


def lr_find_classification(config: RunConfig, out: Path, min_lr: float, max_lr: float, num_steps: int):
    """``seqlab lr-find``: the finder's sweep on the run ``config`` describes; writes
    ``out/lr_find.png`` and ``out/lr_find.json`` and returns the :class:`~seqlab.training.recipe.LRFind`."""
    import lightning.pytorch as pl

    if config.task != "classification":
        raise SeqlabError(f"lr-find: supports classification runs; {config.data.spec!r} is a {config.task} task")
    if not 0 < min_lr < max_lr:
        raise SeqlabError(f"--min-lr/--max-lr: expected 0 < min < max, got {min_lr:g} and {max_lr:g}")
    if num_steps < 20:
        raise SeqlabError(f"--num-steps: expected at least 20 steps to find a slope, got {num_steps}")
    quiet_lightning()
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    pl.seed_everything(config.train.seed, workers=True, verbose=False)
    task = ClassificationTask()
    setup = task.build(config, task.prepare(config))
    setup.module.lr = min_lr  # no recipe: a constant rate, which the finder raises step by step
    result = find_lr(setup.module, setup.train_loader, config.train, min_lr, max_lr, num_steps)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot_lr_find(result, out / "lr_find.png", f"learning-rate finder: {config.model['name']} on {config.data.spec}")
    write_json(out / "lr_find.json", {"model": config.model["name"], "data": config.data.spec,
                                      "batch_size": setup.recipe.batch_size, "suggestion": result.suggestion,
                                      "diverged": result.diverged, "lr": result.lrs, "loss": result.losses})
    if result.diverged:
        raise SeqlabError(f"{diverged_message(result, config.model['name'])} (curve: {result.plot})")
    return result


@torch.no_grad()
def attention_weights(model, data: SequenceSet, batch_size: int = 256) -> np.ndarray:
    """(N, T) attention weights of an attention-head model on every sequence (zero on padding)."""
    model.eval()
    chunks = []
    for start in range(0, len(data), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(data.X[start : start + batch_size]))
        lengths = None if data.lengths is None else torch.from_numpy(data.lengths[start : start + batch_size])
        model(x, lengths)
        chunks.append(model.attention.last_weights.numpy())
    return np.concatenate(chunks)


def vocabulary_size(bundle: DataBundle) -> int:
    """Token models: ids must be integers >= 0 in a single feature; V = largest id + 1."""
    largest = 0
    for part in (bundle.train, bundle.val, bundle.test):
        ids = part.X
        if ids.shape[2] != 1 or np.any(ids < 0) or np.any(ids != np.round(ids)):
            raise SeqlabError(f"data {bundle.name!r}: a token model expects X of integer ids >= 0, shape (N, T) "
                              f"or (N, T, 1); got shape {ids.shape} with values {ids.min():g}..{ids.max():g}")
        largest = max(largest, int(ids.max()))
    return largest + 1


def evaluate_classification(run: Run, data_spec: str | None, split: str) -> dict[str, Any]:
    data_config = from_dict(DataConfig, run.config["data"], "data")
    if data_spec is not None:
        data_config.spec = data_spec
    bundle = load_data(data_config, seed=run.config["train"]["seed"])
    check_compatible(bundle, run.class_names, run.extras["features"], data_config.spec)
    parts = {"test": [bundle.test], "val": [bundle.val], "train": [bundle.train],
             "all": [bundle.train, bundle.val, bundle.test]}[split]
    normalizer = run.normalizer
    probabilities = np.concatenate([predict_proba(run.model, normalizer.transform(p)) for p in parts])
    y = np.concatenate([p.y for p in parts])
    metrics = classification_metrics(probabilities, y, len(run.class_names), run.class_names)
    return {"task": run.task, "model": run.checkpoint["model"]["name"], "data": data_config.spec,
            "split": split, split: metrics}


def check_compatible(bundle: DataBundle, class_names: list[str], features: int, spec: str) -> None:
    if bundle.input_size != features:
        raise SeqlabError(f"data {spec!r}: has {bundle.input_size} features; the run was trained on {features}")
    if bundle.class_names != class_names:
        raise SeqlabError(f"data {spec!r}: classes {bundle.class_names} differ from the run's {class_names}")
