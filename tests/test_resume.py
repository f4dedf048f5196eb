"""Exact resume: a run interrupted anywhere and re-run ends with the uninterrupted run's history and metrics."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import InterruptAfter, run_cli
from seqlab.config import resolve_config
from seqlab.training.pipeline import TrainingInterrupted, train

# dropout draws from torch's RNG, shuffling from the loader's generator, early stopping and the plateau
# schedule keep counters: a resume that lost any of them would drift
ARGS = ["--data", "digits", "--model", "gru", "--hidden-size", "12", "--num-layers", "2", "--dropout", "0.3",
        "--epochs", "7", "--lr", "0.01", "--set", "train.patience=3", "--set", "train.threads=1", "--quiet"]
TIMING = {"seconds", "train_seconds"}


@pytest.fixture(autouse=True)
def _keep_threads():
    """One thread in every run here (the same sums in the same order in and out of process), then restored."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _config():
    return resolve_config({"model": {"name": "gru", "hidden_size": 12, "num_layers": 2, "dropout": 0.3},
                           "train": {"epochs": 7, "lr": 0.01, "patience": 3, "threads": 1}})


def _results(out: Path) -> tuple[dict, list[dict]]:
    metrics = {k: v for k, v in json.loads((out / "metrics.json").read_text()).items() if k not in TIMING}
    with open(out / "history.csv") as handle:
        history = [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]
    return metrics, history


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "whole"
    train(_config(), out, quiet=True)
    return _results(out)


def test_interrupted_twice_and_resumed_equals_the_uninterrupted_run(tmp_path, uninterrupted):
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(_config(), out, quiet=True, callbacks=[InterruptAfter(2)])
    with pytest.raises(TrainingInterrupted):
        train(_config(), out, quiet=True, callbacks=[InterruptAfter(4)])
    assert not (out / "metrics.json").exists()
    result = train(_config(), out, quiet=True)
    metrics, history = _results(out)
    assert history == uninterrupted[1]
    assert metrics == uninterrupted[0]
    assert [int(row["epoch"]) for row in history] == list(range(1, result.metrics["epochs"] + 1))
    assert not list(out.rglob("*.tmp"))


def test_sigkill_at_a_random_instant_then_resume_equals_the_uninterrupted_run(tmp_path, capsys, uninterrupted):
    out = tmp_path / "run"
    exe = Path(sys.executable).parent / "seqlab"
    process = subprocess.Popen([str(exe), "train", *ARGS, "--out", str(out)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    history = out / "history.csv"
    # kill once at least two epochs are done, whatever the process is doing at that instant
    while time.monotonic() < deadline and process.poll() is None:
        if history.is_file() and len(history.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    assert process.poll() is None, process.stderr.read()
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (out / "checkpoints" / "last.ckpt").is_file() and not (out / "metrics.json").exists()
    status, _, err = run_cli(capsys, "train", *ARGS, "--out", out)
    assert status == 0, err
    metrics, history_rows = _results(out)
    assert history_rows == uninterrupted[1]
    assert metrics == uninterrupted[0]
    assert not list(out.rglob("*.tmp"))
