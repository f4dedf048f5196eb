"""The training recipe: its rules on their boundaries, schedules, class weights, the lr finder, small data."""

from __future__ import annotations

import json
import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from conftest import make_waves, run_cli
from seqlab.config import TrainConfig, resolve_config
from seqlab.errors import SeqlabError
from seqlab.runs import load_run
from seqlab.training.pipeline import train
from seqlab.training.module import ClassificationModule
from seqlab.training.recipe import (
    MAX_STEPS,
    MIN_STEPS,
    MIN_WORK_STEPS,
    PATCH_ABOVE,
    PATCH_STEPS,
    WORK_BUDGET,
    auto_batch_size,
    auto_patch,
    auto_select,
    auto_steps,
    balanced_class_weights,
    check_classification_data,
    resolve_recipe,
)


@pytest.mark.parametrize("n, expected", [
    (1, 1), (15, 15),  # never more than the training split
    (16, 16), (127, 16),  # N/4 < 32: the floor of 16
    (128, 32), (255, 32), (256, 64),  # powers of two of N/4
    (100_000, 64),  # the cap
])
def test_batch_size_follows_the_training_set(n, expected):
    assert auto_batch_size(n) == expected


def test_step_budget_boundaries():
    assert auto_steps(34, 16, 100) == MIN_STEPS  # 3 steps per epoch: the floor, not 90 steps
    assert auto_steps(1221, 64, 8) == MIN_STEPS  # digits: 20 steps per epoch, 600 steps raised to the floor
    assert auto_steps(4000, 64, 8) == 30 * 63  # 63 steps per epoch, 30 epochs
    assert auto_steps(100_000, 64, 100) == MAX_STEPS  # 46,890 capped; long data sets are not cut
    assert auto_steps(40, 16, 1460) == WORK_BUDGET // (16 * 1460)  # long series lower the floor (to 171) ...
    assert auto_steps(85, 16, 1460) == 30 * 6  # ... never below 30 epochs
    assert auto_steps(40, 16, 100_000) == MIN_WORK_STEPS  # ... nor below its own floor


def test_long_series_are_read_in_patches_of_steps():
    assert auto_patch(PATCH_ABOVE) == 1 and auto_patch(8) == 1
    assert auto_patch(PATCH_ABOVE + 1) == math.ceil((PATCH_ABOVE + 1) / PATCH_STEPS)
    assert math.ceil(1460 / auto_patch(1460)) <= PATCH_STEPS < math.ceil(1460 / (auto_patch(1460) - 1))  # ACSF1
    recipe = resolve_recipe(TrainConfig(), "classification", 85, 15, 10, 1460, patch="auto")
    assert recipe.patch == 23 and "64 recurrent steps of 23" in recipe.reasons["patch"]
    assert recipe.steps == auto_steps(85, 16, 64)  # the budget counts the steps the recurrence runs
    assert resolve_recipe(TrainConfig(), "classification", 85, 15, 10, 1460, patch=1).patch == 1  # switched off
    assert resolve_recipe(TrainConfig(), "classification", 85, 15, 10, 1460).patch is None  # a model without it
    assert resolve_recipe(TrainConfig(), "forecast", patch="auto").patch == 1


def test_selection_needs_a_validation_split_large_enough():
    assert auto_select(99, 2) == "train"
    assert auto_select(100, 2) == "val"
    assert auto_select(100, 10) == "val"
    assert auto_select(100, 11) == "train"  # fewer than 10 per class
    assert auto_select(216, 10) == "val"  # digits


def test_steps_and_epochs_interact_as_documented():
    auto = resolve_recipe(TrainConfig(), "classification", n_train=34, n_val=6, num_classes=4, length=100)
    assert (auto.batch_size, auto.steps, auto.epochs, auto.schedule, auto.select, auto.patience) == \
        (16, MIN_STEPS, -1, "onecycle", "train", 0)
    rounded = auto.for_loader(3)  # 3 steps per epoch: rounded up to whole epochs
    assert (rounded.epochs, rounded.steps) == (334, 1002)
    assert auto.for_loader(20).epochs == 50
    epochs_only = resolve_recipe(TrainConfig(epochs=5), "classification", 34, 6, 4, 100).for_loader(3)
    assert (epochs_only.epochs, epochs_only.steps) == (5, 15)
    both = resolve_recipe(TrainConfig(epochs=5, steps=7), "classification", 34, 6, 4, 100)
    assert both.for_loader(3).epochs == 3  # whichever limit comes first
    assert both.for_loader(1).epochs == 5
    fixed = resolve_recipe(TrainConfig(), "forecast")
    assert (fixed.batch_size, fixed.epochs, fixed.steps, fixed.schedule, fixed.select, fixed.patience) == \
        (64, 40, -1, "plateau", "val", 10)
    explicit = resolve_recipe(TrainConfig(batch_size=8, select="val", schedule="cosine", patience=3),
                              "classification", 34, 6, 4, 100)
    assert (explicit.batch_size, explicit.select, explicit.schedule, explicit.patience) == (8, "val", "cosine", 3)


class LearningRates(pl.Callback):
    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def _fit_lrs(tmp_path, schedule, steps=40, lr=0.01, warmup=0.25):
    cases, labels = make_waves(40, 12, 2)
    np.savez(tmp_path / "waves.npz", X=np.stack(cases).astype(np.float32), y=labels)
    config = resolve_config({"data": {"spec": str(tmp_path / "waves.npz")}, "model": {"name": "gru", "hidden_size": 4},
                             "train": {"steps": steps, "batch_size": 8, "lr": lr, "schedule": schedule,
                                       "warmup": warmup}})
    seen = LearningRates()
    metrics = train(config, tmp_path / schedule, quiet=True, callbacks=[seen]).metrics
    return seen.lrs, metrics


def test_cosine_schedule_is_linear_warmup_then_cosine(tmp_path):
    lrs, metrics = _fit_lrs(tmp_path, "cosine")
    total = metrics["recipe"]["steps"]  # 40 steps, 5 batches per epoch: 8 whole epochs
    assert total == 40 and len(lrs) == total
    warm = 10
    expected = [0.01 * (k + 1) / warm if k < warm else 0.01 * 0.5 * (1 + math.cos(math.pi * (k - warm) / (total - warm)))
                for k in range(total)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-9)


def test_onecycle_schedule_matches_torch(tmp_path):
    lrs, metrics = _fit_lrs(tmp_path, "onecycle")
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=0.01)
    oracle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=40, pct_start=0.25)
    expected = []
    for _ in range(40):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        oracle.step()
    np.testing.assert_allclose(lrs, expected, rtol=1e-9)
    peak = int(np.argmax(lrs))
    assert np.all(np.diff(lrs[: peak + 1]) > 0) and np.all(np.diff(lrs[peak:]) < 0)  # warm-up, then decay
    assert metrics["recipe"]["schedule"] == "onecycle"


def test_balanced_class_weights_change_the_loss_as_weighted_cross_entropy():
    y_train = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])
    weights = balanced_class_weights(y_train, 3)
    np.testing.assert_allclose(weights.numpy(), compute_class_weight("balanced", classes=np.arange(3), y=y_train))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 3))

    class Head(torch.nn.Module):
        def forward(self, x, lengths=None):
            return model(x)

    x, y = torch.randn(9, 5, 2), torch.from_numpy(y_train)
    weighted = ClassificationModule(Head(), 0.01, 0.0, False, weights)
    plain = ClassificationModule(Head(), 0.01, 0.0, False)
    loss_weighted = weighted.batch_loss((x, torch.full((9,), 5), y), "train")[0]
    loss_plain = plain.batch_loss((x, torch.full((9,), 5), y), "train")[0]
    log_p = torch.log_softmax(model(x), dim=1)[torch.arange(9), y]  # oracle: sum w_y * -log p_y / sum w_y
    w = weights[y]
    assert loss_weighted.item() == pytest.approx((-(w * log_p).sum() / w.sum()).item(), rel=1e-6)
    assert loss_plain.item() == pytest.approx(-log_p.mean().item(), rel=1e-6)
    assert loss_weighted.item() != pytest.approx(loss_plain.item(), rel=1e-3)


@pytest.fixture
def waves_file(tmp_path):
    cases, labels = make_waves(60, 16, 2)
    path = tmp_path / "waves.npz"
    np.savez(path, X=np.stack(cases).astype(np.float32), y=labels)
    return path


def test_lr_find_writes_a_plot_and_a_suggestion_that_lr_auto_uses(tmp_path, capsys, waves_file):
    base = ["--data", waves_file, "--model", "gru", "--hidden-size", "8"]
    status, out, err = run_cli(capsys, "lr-find", *base, "--num-steps", "40", "--out", tmp_path / "find")
    assert status == 0, err
    found = json.loads((tmp_path / "find" / "lr_find.json").read_text())
    assert (tmp_path / "find" / "lr_find.png").stat().st_size > 1000
    assert len(found["lr"]) == len(found["loss"]) == 40 and not found["diverged"]
    assert found["lr"][0] == pytest.approx(1e-6) and 1e-6 < found["suggestion"] < 1.0
    assert f"suggested learning rate: {found['suggestion']:.3g}" in out
    # train.lr=auto runs the same sweep (same seed, same data) and trains with its suggestion
    status, _, err = run_cli(capsys, "train", *base, "--lr", "auto", "--steps", "20", "--quiet",
                             "--set", "train.select=train", "--out", tmp_path / "run")
    assert status == 0, err
    recipe = json.loads((tmp_path / "run" / "metrics.json").read_text())["recipe"]
    assert "lr" in recipe["reasons"]
    found_100 = run_cli(capsys, "lr-find", *base, "--out", tmp_path / "find100")
    assert found_100[0] == 0
    assert recipe["lr"] == json.loads((tmp_path / "find100" / "lr_find.json").read_text())["suggestion"]


def test_lr_find_on_a_diverging_model_says_so(tmp_path, capsys, waves_file):
    status, out, err = run_cli(capsys, "lr-find", "--data", waves_file, "--model", "gru", "--hidden-size", "8",
                               "--min-lr", "100", "--max-lr", "1e6", "--num-steps", "30", "--out", tmp_path)
    assert status == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "the model diverges" in err
    assert json.loads((tmp_path / "lr_find.json").read_text())["diverged"] is True


def test_a_training_split_smaller_than_the_classes_is_refused_in_one_line(tmp_path, capsys):
    y = np.repeat(np.arange(10), 2)  # 10 classes of 2: the loaders accept it
    X = np.random.default_rng(0).normal(size=(len(y), 10, 2)).astype(np.float32)
    np.savez(tmp_path / "small.npz", X=X, y=y)
    status, _, err = run_cli(capsys, "train", "--data", tmp_path / "small.npz", "--model", "gru", "--quiet",
                             "--set", "data.test_fraction=0.5", "--set", "data.val_fraction=0.5",
                             "--out", tmp_path / "run")
    assert status == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "small.npz" in err and "the training split holds 5 sequences for 10 classes" in err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_class_missing_from_or_alone_in_the_training_split(capsys):
    names = ["a", "b", "c"]
    with pytest.raises(SeqlabError, match=r"class 'c' has no sequence in the training split \(4 sequences, 3"):
        check_classification_data(np.array([0, 0, 1, 1]), 3, names, "data.npz")
    check_classification_data(np.array([0, 0, 1, 1, 2]), 3, names, "data.npz")
    err = capsys.readouterr().err
    assert err.startswith("seqlab: warning: ") and "class 'c' has a single training sequence" in err
    check_classification_data(np.array([0, 0, 1, 1, 2, 2]), 3, names, "data.npz")
    assert capsys.readouterr().err == ""


def _italy_power(tmp_path, **train_options):
    tree = {"data": {"spec": "aeon:ItalyPowerDemand"}, "model": {"name": "lstm", "hidden_size": 32},
            "train": train_options}
    return train(resolve_config(tree), tmp_path / "run", quiet=True).metrics


def test_recipe_on_a_small_real_set_reaches_well_above_chance(tmp_path):
    """ItalyPowerDemand: 67 training series of 24 steps, 2 classes (the old defaults took one step per
    epoch); the recipe's batch, schedule and selection with a shortened budget."""
    metrics = _italy_power(tmp_path, steps=300)
    recipe = metrics["recipe"]
    assert (recipe["batch_size"], recipe["select"], recipe["schedule"]) == (16, "train", "onecycle")
    assert metrics["test"]["accuracy"] >= 0.85  # chance: 0.5


@pytest.mark.slow
def test_defaults_on_a_small_real_set_reach_well_above_chance(tmp_path):
    metrics = _italy_power(tmp_path)
    assert metrics["recipe"]["steps"] >= 1000
    assert metrics["test"]["accuracy"] >= 0.9


def test_a_long_series_run_records_its_patch_and_reloads_the_same_model(tmp_path, capsys):
    cases, labels = make_waves(24, 600, 1)
    np.savez(tmp_path / "long.npz", X=np.stack(cases).astype(np.float32), y=labels)
    status, _, err = run_cli(capsys, "train", "--data", tmp_path / "long.npz", "--model", "gru", "--hidden-size", "4",
                             "--steps", "3", "--quiet", "--set", "train.baselines=false", "--out", tmp_path / "run")
    assert status == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["recipe"]["patch"] == auto_patch(600) == 10 and "600 steps > 512" in metrics["recipe"]["reasons"]["patch"]
    assert load_run(tmp_path / "run").model.patch == 10  # the checkpoint holds the resolved value, not auto
    status, _, err = run_cli(capsys, "eval", "--run", tmp_path / "run")
    assert status == 0, err
    evaluated = json.loads((tmp_path / "run" / "eval.json").read_text())["test"]
    assert (evaluated["accuracy"], evaluated["macro_f1"]) == (metrics["test"]["accuracy"], metrics["test"]["macro_f1"])


@pytest.mark.parametrize("total", [10, 20, 2, 3])
def test_onecycle_survives_a_warmup_of_exactly_one_step(total):
    # 10 steps at warmup 0.1 (20 at 0.05) end torch's warm-up phase at step 0, which divided by zero
    from seqlab.training.recipe import Recipe, build_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    recipe = Recipe(16, total, -1, 0.01, "onecycle", 0.1 if total != 20 else 0.05, "train", 0, "none", {})
    scheduler = build_scheduler(optimizer, recipe, total)["scheduler"]
    rates = []
    for _ in range(total):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert all(math.isfinite(rate) for rate in rates) and rates[-1] < 0.01
