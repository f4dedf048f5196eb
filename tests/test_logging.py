"""Epoch metrics from torchmetrics, Lightning's loggers, the learning-rate monitor, epochs counted from 1."""

from __future__ import annotations

import csv
import importlib.util
import json
import struct

import pytest

from conftest import run_cli

# lr 0.1 with patience 1: validation loss stops improving after the second epoch, so the run stops early
EARLY = ["--data", "digits", "--model", "gru", "--hidden-size", "16", "--epochs", "6", "--lr", "0.1",
         "--set", "train.patience=1", "--set", "train.schedule=plateau"]  # the schedule the early stop was set up with


def _rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def early_run(tmp_path_factory):
    from seqlab.cli.main import main

    out = tmp_path_factory.mktemp("logging") / "early"
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", *EARLY, "--out", str(out)]) == 0
    return out, printed.getvalue()


def test_an_early_stop_is_printed_and_recorded_with_epochs_from_1(early_run):
    out, printed = early_run
    metrics = json.loads((out / "metrics.json").read_text())
    history = _rows(out / "history.csv")
    assert metrics["stopped_early"] is True and metrics["stopped_epoch"] == len(history) < 6
    assert f"Stopped early at epoch {metrics['stopped_epoch']} (best {metrics['best_epoch']})" in printed
    assert [int(r["epoch"]) for r in history] == list(range(1, len(history) + 1))
    assert "epoch 1/6 " in printed and "epoch 0/" not in printed
    # the best epoch is the one with the lowest validation loss in the history, counted the same way
    best = min(history, key=lambda r: float(r["val_loss"]))
    assert int(best["epoch"]) == metrics["best_epoch"]


def test_epoch_validation_metrics_match_an_independent_evaluation_of_the_best_model(early_run):
    """torchmetrics' epoch values against sklearn's metrics of the reloaded best model on the same split."""
    out, _ = early_run
    metrics = json.loads((out / "metrics.json").read_text())
    best = _rows(out / "history.csv")[metrics["best_epoch"] - 1]
    assert float(best["val_accuracy"]) == pytest.approx(metrics["val"]["accuracy"], abs=1e-6)
    assert float(best["val_loss"]) == pytest.approx(metrics["val"]["loss"], rel=1e-4)


def test_the_default_csv_logger_counts_epochs_from_1_and_logs_the_learning_rate(early_run):
    out, _ = early_run
    rows = _rows(out / "logs" / "metrics.csv")
    epochs = [int(float(r["epoch"])) for r in rows if r["val_loss"]]
    assert epochs == list(range(1, len(_rows(out / "history.csv")) + 1))
    assert any(r["lr-AdamW"] and float(r["lr-AdamW"]) == pytest.approx(0.1) for r in rows)


def _tfevents_tags(path) -> set[str]:
    """The scalar tags in a TensorBoard event file (TFRecord framing, Event protos)."""
    from tensorboardX.proto import event_pb2

    tags, data = set(), path.read_bytes()
    offset = 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        record = data[offset + 12 : offset + 12 + length]
        offset += 12 + length + 4
        event = event_pb2.Event.FromString(record)
        tags.update(value.tag for value in event.summary.value)
    return tags


@pytest.mark.skipif(importlib.util.find_spec("tensorboardX") is None, reason="tensorboardX is not installed")
def test_tensorboard_logger_writes_the_epoch_metrics_and_learning_rate(tmp_path, capsys):
    out = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", "--data", "digits", "--model", "rnn", "--hidden-size", "8",
                             "--epochs", "2", "--set", "train.logger=tensorboard", "--quiet", "--out", out)
    assert status == 0, err
    (events,) = (out / "logs").glob("events.out.tfevents.*")
    assert {"train_loss", "val_loss", "val_accuracy", "lr-AdamW"} <= _tfevents_tags(events)
    assert len(_rows(out / "history.csv")) == 2


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed")
def test_a_logger_whose_package_is_missing_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", "--data", "digits", "--set", "train.logger=mlflow", "--quiet",
                             "--out", out)
    assert status == 2 and "train.logger: mlflow needs the mlflow package" in err and "pip install mlflow" in err
    assert not out.exists()
    status, _, err = run_cli(capsys, "train", "--data", "digits", "--set", "train.logger=wandb", "--out", out)
    assert status == 2 and "train.logger: expected one of csv, tensorboard, mlflow, none, got 'wandb'" in err


def test_no_logger_trains_without_warnings(tmp_path, capsys):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, _, err = run_cli(capsys, "train", "--data", "digits", "--model", "rnn", "--hidden-size", "4",
                                 "--epochs", "1", "--set", "train.logger=none", "--quiet", "--out", tmp_path / "run")
    assert status == 0, err
    assert not (tmp_path / "run" / "logs").exists()
    assert not [w for w in caught if "logger" in str(w.message)], [str(w.message) for w in caught]
