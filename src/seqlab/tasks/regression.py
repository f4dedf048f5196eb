"""Sequence regression: K numeric targets per sequence, mean squared error, RMSE, MAE and R².

The targets are standardised with the training split's mean and standard
deviation for training (so one learning rate suits targets of any scale);
the run stores both, and every prediction, metric and export is in the
targets' own units. Symbols: N sequences, T steps, F features, K targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from seqlab.baselines.regression import regression_report
from seqlab.config import DataConfig, RunConfig, from_dict
from seqlab.data.dataset import DataBundle, SequenceSet
from seqlab.data.scaling import Normalizer
from seqlab.data.sources import load_regression_data
from seqlab.errors import SeqlabError
from seqlab.models.registry import build_model, get_model_entry
from seqlab.reports.plots import plot_learning_curves
from seqlab.runs import MODEL_FILE, Run, save_run_checkpoint
from seqlab.tasks.base import TaskRecipe, TrainingSetup, fingerprint, model_options
from seqlab.tasks.classification import normalize_bundle, part_digest
from seqlab.training.evaluate import predict_outputs, regression_metrics
from seqlab.training.module import RegressionModule, make_loader
from seqlab.training.recipe import resolve_recipe


@dataclass
class TargetScaler:
    """y' = (y - shift) / scale per target, fitted on the training split (constant targets get scale 1)."""

    shift: np.ndarray  # (K,)
    scale: np.ndarray  # (K,)

    @classmethod
    def fit(cls, y: np.ndarray) -> TargetScaler:
        scale = y.std(axis=0)
        return cls(y.mean(axis=0).astype(np.float32), np.where(scale > 1e-12, scale, 1.0).astype(np.float32))

    def transform(self, y: np.ndarray) -> np.ndarray:
        return ((y - self.shift) / self.scale).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return z * self.scale + self.shift

    def state_dict(self) -> dict:
        return {"shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict) -> TargetScaler:
        return cls(np.asarray(state["shift"], np.float32), np.asarray(state["scale"], np.float32))


@dataclass
class RegressionData:
    """The prepared data of a regression run: normalised splits, raw targets, and their scaler."""

    bundle: DataBundle  # targets standardised
    raw: dict[str, np.ndarray]  # split -> (N, K) targets in their own units
    normalizer: Normalizer
    targets: TargetScaler
    variable_length: bool


def predict_targets(model: nn.Module, data, targets: TargetScaler) -> np.ndarray:
    """(N, K) predictions in the targets' own units for normalised sequences ``data``."""
    return targets.inverse(predict_outputs(model, data))


class RegressionTask(TaskRecipe):
    """K numeric targets per sequence: MSE on standardised targets; RMSE, MAE and R² beside their baselines."""

    name = "regression"

    def prepare(self, config: RunConfig) -> RegressionData:
        if config.model.get("head") == "step":
            raise SeqlabError("model.head: 'step' gives one output per time step; regression needs last, mean or "
                              "attention")
        if config.train.class_weights != "none":
            raise SeqlabError(f"train.class_weights: {config.train.class_weights} weights classes; regression has "
                              "none (use none)")
        if get_model_entry(config.model["name"]).tokens:
            raise SeqlabError(f"model.name (--model): {config.model['name']} reads token ids; regression takes "
                              "numeric features")
        bundle = load_regression_data(config.data, seed=config.train.seed)
        bundle, normalizer = normalize_bundle(bundle, config.data.normalize)
        raw = {split: np.asarray(getattr(bundle, split).y) for split in ("train", "val", "test")}
        targets = TargetScaler.fit(raw["train"])
        for split in ("train", "val", "test"):
            getattr(bundle, split).y = targets.transform(raw[split])
        variable_length = any(part.lengths is not None for part in (bundle.train, bundle.val, bundle.test))
        return RegressionData(bundle, raw, normalizer, targets, variable_length)

    def fingerprint(self, config: RunConfig, data: RegressionData) -> str:
        bundle = data.bundle
        return fingerprint(config, bundle.target_names, data.normalizer.state_dict(), data.targets.state_dict(),
                           *(x for part in (bundle.train, bundle.val, bundle.test) for x in part_digest(part)))

    def build(self, config: RunConfig, data: RegressionData) -> TrainingSetup:
        bundle = data.bundle
        model = build_model(config.model["name"], bundle.input_size, len(bundle.target_names),
                            steps=bundle.train.steps, **model_options(config))
        recipe = resolve_recipe(config.train, "regression", len(bundle.train), len(bundle.val), 0, bundle.train.steps)
        module = RegressionModule(model, recipe.lr, config.train.weight_decay, data.variable_length)
        train_loader = make_loader(bundle.train, recipe.batch_size, shuffle=True, seed=config.train.seed)
        val_loader = make_loader(bundle.val, 512, shuffle=False)
        return TrainingSetup(model, module, train_loader, val_loader, train_loader.generator, recipe)

    def evaluate(self, config: RunConfig, data: RegressionData, model: nn.Module) -> dict[str, Any]:
        bundle = data.bundle
        val = regression_metrics(predict_targets(model, bundle.val, data.targets), data.raw["val"])
        test = regression_metrics(predict_targets(model, bundle.test, data.targets), data.raw["test"])
        return {
            "data": {"spec": config.data.spec, "train": len(bundle.train), "val": len(bundle.val),
                     "test": len(bundle.test), "steps": bundle.train.steps, "features": bundle.input_size,
                     "targets": bundle.target_names},
            "val": val,
            "test": test,
            **regression_report(bundle.train, bundle.val, bundle.test, data.raw, test, config.train.seed,
                                config.train.baselines),
        }

    def save(self, config: RunConfig, data: RegressionData, model: nn.Module, metrics: dict[str, Any],
             history: list[dict[str, float]], out: Path) -> None:
        bundle = data.bundle
        save_run_checkpoint(
            out / MODEL_FILE,
            model,
            {"name": config.model["name"], "builder": "zoo", "input_size": bundle.input_size,
             "output_size": len(bundle.target_names), "steps": bundle.train.steps, "options": model_options(config)},
            config.to_dict(),
            "regression",
            {"normalizer": data.normalizer.state_dict(), "targets": data.targets.state_dict(),
             "target_names": bundle.target_names, "feature_names": bundle.feature_names,
             "features": bundle.input_size, "steps": bundle.train.steps, "variable_length": data.variable_length},
        )
        plot_learning_curves(history, out / "learning_curves.png", f"{config.model['name']} on {config.data.spec}")

    def evaluate_run(self, run: Run, data_spec: str | None, split: str) -> dict[str, Any]:
        data_config = from_dict(DataConfig, run.config["data"], "data")
        if data_spec is not None:
            data_config.spec = data_spec
        bundle = load_regression_data(data_config, seed=run.config["train"]["seed"])
        features, names = run.extras["features"], list(run.extras["target_names"])
        if bundle.input_size != features:
            raise SeqlabError(f"data {data_config.spec!r}: has {bundle.input_size} features; the run was trained "
                              f"on {features}")
        if len(bundle.target_names) != len(names):
            raise SeqlabError(f"data {data_config.spec!r}: has {len(bundle.target_names)} targets; the run "
                              f"predicts {len(names)} ({', '.join(names)})")
        parts = {"test": [bundle.test], "val": [bundle.val], "train": [bundle.train],
                 "all": [bundle.train, bundle.val, bundle.test]}[split]
        targets = TargetScaler.from_state_dict(run.extras["targets"])
        prediction = np.concatenate([predict_targets(run.model, run.normalizer.transform(p), targets) for p in parts])
        truth = np.concatenate([np.asarray(p.y) for p in parts])
        return {"task": run.task, "model": run.checkpoint["model"]["name"], "data": data_config.spec,
                "split": split, split: regression_metrics(prediction, truth)}


def predict_sequences(run: Run, data: SequenceSet) -> np.ndarray:
    """(N, K) predictions of a regression run for raw sequences ``data``."""
    return predict_targets(run.model, run.normalizer.transform(data), TargetScaler.from_state_dict(run.extras["targets"]))
