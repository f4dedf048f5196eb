"""The real CLI end to end: train, eval, predict, demo, and every bad input."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import InterruptAfter, make_waves, run_cli, write_ts
from seqlab.config import resolve_config
from seqlab.data.sources import aeon_data_dir
from seqlab.errors import SeqlabError
from seqlab.runs import load_run
from seqlab.training.pipeline import TrainingInterrupted, train

QUICK = ["--epochs", "3", "--hidden-size", "16", "--quiet"]


@pytest.fixture(scope="module")
def gru_run(tmp_path_factory):
    """The issue's reference run: default GRU on digits, through the CLI."""
    out = tmp_path_factory.mktemp("runs") / "gru"
    from seqlab.cli.main import main

    assert main(["train", "--data", "digits", "--model", "gru", "--quiet", "--out", str(out)]) == 0
    return out


def test_default_gru_on_digits_reaches_095_and_eval_reproduces(gru_run, capsys):
    metrics = json.loads((gru_run / "metrics.json").read_text())
    assert metrics["task"] == "classification" and metrics["model"] == "gru"
    assert metrics["test"]["accuracy"] >= 0.95
    assert set(metrics) >= {"params", "train_seconds", "epochs", "val", "test"}
    assert isinstance(metrics["params"], int) and isinstance(metrics["train_seconds"], float)
    matrix = np.array(metrics["test"]["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == metrics["data"]["test"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(metrics["test"]["accuracy"])
    per_class = metrics["test"]["per_class"]  # precision and recall from the confusion matrix (rows: true)
    assert len(per_class) == 10 and [c["support"] for c in per_class.values()] == matrix.sum(axis=1).tolist()
    np.testing.assert_allclose([c["recall"] for c in per_class.values()], np.diag(matrix) / matrix.sum(axis=1))
    np.testing.assert_allclose([c["precision"] for c in per_class.values()],
                               np.diag(matrix) / np.maximum(matrix.sum(axis=0), 1))
    for name in ("config.yaml", "history.csv", "model.pt", "learning_curves.png", "confusion_matrix.png"):
        assert (gru_run / name).is_file(), name
    with open(gru_run / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == metrics["epochs"] and [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1))

    status, out, _ = run_cli(capsys, "eval", "--run", gru_run)
    assert status == 0
    evaluated = json.loads((gru_run / "eval.json").read_text())["test"]
    assert evaluated["accuracy"] == metrics["test"]["accuracy"]
    assert evaluated["macro_f1"] == metrics["test"]["macro_f1"]
    assert evaluated["confusion_matrix"] == metrics["test"]["confusion_matrix"]
    assert evaluated["per_class"] == per_class
    assert f"accuracy={metrics['test']['accuracy']:.4f}" in out
    assert "precision    recall  f1-score   support" in out and evaluated["report"].splitlines()[2].split()[0] in out


def test_predict_writes_probabilities_that_match_the_model(gru_run, tmp_path, capsys):
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "new.npz", X=digits.images[:20], y=digits.target[:20])
    status, _, err = run_cli(capsys, "predict", "--run", gru_run, "--input", tmp_path / "new.npz", "--out", tmp_path / "p.csv")
    assert status == 0, err
    with open(tmp_path / "p.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20
    probs = np.array([[float(r[f"prob_{c}"]) for c in range(10)] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    # Oracle: normalise by hand with the statistics stored in the checkpoint, run the bare model.
    run = load_run(gru_run)
    norm = run.extras["normalizer"]
    x = (digits.images[:20] - np.array(norm["shift"])) / np.array(norm["scale"])
    with torch.no_grad():
        expected = torch.softmax(run.model(torch.tensor(x, dtype=torch.float32)), dim=1).numpy()
    np.testing.assert_allclose(probs, expected, atol=2e-6)
    assert [r["predicted"] for r in rows] == [str(i) for i in expected.argmax(axis=1)]
    assert np.mean([r["predicted"] == r["label"] for r in rows]) >= 0.9


def test_same_seed_same_metrics(tmp_path, capsys):
    results = []
    for name in ("a", "b"):
        status, _, err = run_cli(capsys, "train", "--data", "digits", "--model", "lstm", *QUICK, "--seed", "5", "--out", tmp_path / name)
        assert status == 0, err
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        metrics.pop("train_seconds")
        results.append(metrics)
    assert results[0] == results[1]


def test_ts_pair_variable_length_multivariate_through_cli(tmp_path, capsys):
    names = ["slow", "fast"]
    cases, labels = make_waves(40, 30, 3, variable=True)
    write_ts(tmp_path / "Waves_TRAIN.ts", cases, [names[i] for i in labels], names)
    cases, labels = make_waves(20, 30, 3, seed=1, variable=True)
    write_ts(tmp_path / "Waves_TEST.ts", cases, [names[i] for i in labels], names)
    out = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", "--data", tmp_path / "Waves_TRAIN.ts", "--model", "bigru",
                             "--epochs", "15", "--hidden-size", "16", "--batch-size", "8", "--quiet", "--out", out)
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["test"] == 20 and metrics["test"]["accuracy"] >= 0.8
    status, _, _ = run_cli(capsys, "eval", "--run", out)
    assert json.loads((out / "eval.json").read_text())["test"]["accuracy"] == metrics["test"]["accuracy"]
    status, _, err = run_cli(capsys, "predict", "--run", out, "--input", tmp_path / "Waves_TEST.ts", "--out", tmp_path / "p.csv")
    assert status == 0, err
    with open(tmp_path / "p.csv") as handle:
        rows = list(csv.DictReader(handle))
    accuracy = np.mean([r["predicted"] == r["label"] for r in rows])
    assert accuracy == pytest.approx(metrics["test"]["accuracy"])


def _has_aeon() -> bool:
    try:
        return aeon_data_dir().is_dir()
    except SeqlabError:
        return False


@pytest.mark.skipif(not _has_aeon(), reason="aeon is not installed")
def test_real_ucr_japanese_vowels_trains_and_evaluates(tmp_path, capsys):
    out = tmp_path / "jv"
    status, _, err = run_cli(capsys, "train", "--data", "aeon:JapaneseVowels", "--model", "bigru",
                             "--epochs", "6", "--hidden-size", "32", "--quiet", "--out", out)
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["test"] == 370 and metrics["data"]["classes"] == 9
    assert metrics["test"]["accuracy"] >= 0.8  # chance is 0.11
    assert run_cli(capsys, "eval", "--run", out)[0] == 0
    assert json.loads((out / "eval.json").read_text())["test"]["accuracy"] == metrics["test"]["accuracy"]


# ----------------------------------------------------------------------------
# Bad input: one line naming the file or flag, exit status 2, no traceback


@pytest.fixture
def bad_files(tmp_path):
    np.savez(tmp_path / "noX.npz", y=np.zeros(3))
    np.savez(tmp_path / "mismatch.npz", X=np.zeros((4, 3, 2)), y=np.zeros(3))
    X = np.zeros((4, 3, 2))
    X[2, 1, 0] = np.nan
    np.savez(tmp_path / "nan.npz", X=X, y=np.zeros(4))
    (tmp_path / "header.ts").write_text("@problemName X\n@classLabel true a\n1,2:a\n")
    (tmp_path / "dims.ts").write_text("@dimensions 2\n@classLabel true a\n@data\n1,2:3,4:a\n1,2:a\n")
    return tmp_path


@pytest.mark.parametrize(
    "args,message",
    [
        (["--data", "{d}/missing.npz"], r"missing.npz: file not found"),
        (["--data", "mnist"], r"data 'mnist': unknown data set; expected one of digits"),
        (["--model", "transformer"], r"model.name \(--model\): unknown model 'transformer'; valid models: rnn, gru"),
        (["--data", "{d}/noX.npz"], r"noX.npz: expected an array named 'X'"),
        (["--data", "{d}/mismatch.npz"], r"mismatch.npz: X has 4 sequences but y has 3"),
        (["--data", "{d}/nan.npz"], r"nan.npz: X contains 1 NaN or Inf values \(first at sequence 2, step 1, feature 0\)"),
        (["--data", "{d}/header.ts"], r"header.ts:3: expected a header line starting with '@'"),
        (["--data", "{d}/dims.ts"], r"dims.ts:5: inconsistent dimensions: expected 2"),
        (["--hidden-size", "0"], r"model.hidden_size \(--hidden-size\): expected a positive integer, got 0"),
        (["--lr", "-0.01"], r"train.lr \(--lr\): expected a positive learning rate, got -0.01"),
        (["--set", "train.epoch=3"], r"unknown key train.epoch; valid keys for train"),
        (["--config", "{d}/none.yaml"], r"config file .*none.yaml: not found"),
    ],
)
def test_bad_input_gives_one_line_error(bad_files, capsys, args, message):
    args = [a.replace("{d}", str(bad_files)) for a in args]
    status, out, err = run_cli(capsys, "train", *args, "--quiet", "--out", bad_files / "out")
    assert status == 2
    assert err.startswith("seqlab train: error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    import re

    assert re.search(message, err), err


def test_out_folder_with_a_different_run_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "--data", "digits", "--model", "rnn", "--epochs", "1", "--hidden-size", "8", "--quiet", "--out", out]
    assert run_cli(capsys, *base)[0] == 0
    status, _, err = run_cli(capsys, *base[:-2], "--seed", "1", "--out", out)
    assert status == 2 and "already holds a different run" in err and "--overwrite" in err
    status, _, err = run_cli(capsys, *base)
    assert status == 2 and "already holds this run, completed" in err
    assert run_cli(capsys, *base[:-2], "--seed", "1", "--out", out, "--overwrite")[0] == 0
    assert "seed: 1" in (out / "config.yaml").read_text()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    status, _, err = run_cli(capsys, *base[:-2], "--out", tmp_path / "mine", "--overwrite")
    assert status == 2 and "holds no seqlab run" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


def test_eval_and_predict_bad_input(tmp_path, capsys, gru_run):
    status, _, err = run_cli(capsys, "eval", "--run", tmp_path / "nope")
    assert status == 2 and "run folder" in err and "not found" in err
    (tmp_path / "empty").mkdir()
    status, _, err = run_cli(capsys, "eval", "--run", tmp_path / "empty")
    assert status == 2 and "no model.pt" in err
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "model.pt").write_bytes(b"\x00garbage" * 50)
    status, _, err = run_cli(capsys, "eval", "--run", tmp_path / "damaged")
    assert status == 2 and "model.pt: not a readable seqlab checkpoint (torch.load with weights_only=True" in err
    assert "weights_only` set to `False`" not in err  # torch's advice to load unsafely is not passed on
    (tmp_path / "evil").mkdir()

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"model": Exploit()}, tmp_path / "evil" / "model.pt")
    status, _, err = run_cli(capsys, "eval", "--run", tmp_path / "evil")
    assert status == 2 and "not a readable seqlab checkpoint" in err and not (tmp_path / "pwned").exists()
    np.savez(tmp_path / "wrong.npz", X=np.zeros((2, 8, 5)))
    status, _, err = run_cli(capsys, "predict", "--run", gru_run, "--input", tmp_path / "wrong.npz", "--out", tmp_path / "p.csv")
    assert status == 2 and "wrong.npz: sequences have 5 features; the run expects 8" in err
    assert not (tmp_path / "p.csv").exists()


def test_interrupted_run_resumes_where_it_stopped(tmp_path):
    config = resolve_config({"model": {"name": "gru", "hidden_size": 8}, "train": {"epochs": 5, "patience": 0}})
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(config, out, quiet=True, callbacks=[InterruptAfter(2)])
    assert (out / "checkpoints" / "last.ckpt").is_file() and not (out / "metrics.json").exists()
    assert len((out / "history.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    result = train(config, out, quiet=True)
    with open(out / "history.csv") as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == [1, 2, 3, 4, 5]
    assert result.metrics["epochs"] == 5


def test_console_script_exits_2_without_traceback(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    exe = Path(sys.executable).parent / "seqlab"
    result = subprocess.run([str(exe), "train", "--data", str(tmp_path / "x.npz"), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "x.npz: file not found" in result.stderr
    listing = subprocess.run([str(exe), "models"], capture_output=True, text=True, env=env)
    assert listing.returncode == 0 and "bilstm" in listing.stdout and "proj_size=0" in listing.stdout


def test_demo_is_a_compare_with_the_other_parts_in_one_report(tmp_path, capsys):
    status, out, err = run_cli(capsys, "demo", "--out", tmp_path / "demo", "--epochs", "1", "--quiet",
                               "--no-fitted-baselines")
    assert status == 0, err
    from seqlab.demo import SENSING_MODELS
    demo = tmp_path / "demo"
    rows = list(csv.DictReader((demo / "results.csv").open()))
    cells = {(row["data"], row["model"]) for row in rows}
    for data in ("digits", "aeon:JapaneseVowels", "aeon:BasicMotions"):
        assert {(data, m) for m in ("rnn", "lstm", "gru")} <= cells
    assert ("aeon:BasicMotions", "tcn") in cells and len(rows) == 9 + len(SENSING_MODELS)
    gru = json.loads((demo / "digits" / "gru" / "seed0" / "metrics.json").read_text())
    assert set(gru["baselines"]) == {"majority"}  # MiniRocket skipped by --no-fitted-baselines
    assert float(next(r for r in rows if r["model"] == "gru" and r["data"] == "digits")["test_accuracy"]) \
        == gru["test"]["accuracy"]
    assert "baseline: majority" in out and "Results:" in out
    report = (demo / "report.md").read_text()
    assert "plots/critical-difference.png" in report  # three data sets: ranked with a diagram
    assert "baseline: transformed_naive" in report and "baseline: unigram" in report  # the other parts' baselines
    assert "plots/sine-rollout.png" in report and "plots/airline-forecast.png" in report
    html = (demo / "report.html").read_text()
    assert html.count("<img ") == report.count("](plots/") and 'src="plots/' not in html


def test_training_prints_no_library_warnings(tmp_path):
    """A projected LSTM makes torch warn that it runs outside oneDNN; the CLI keeps such notes out."""
    exe = Path(sys.executable).parent / "seqlab"
    done = subprocess.run([str(exe), "train", "--data", "digits", "--model", "lstm", "--set", "model.proj_size=4",
                           "--hidden-size", "8", "--epochs", "1", "--quiet", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "warn" not in done.stderr.lower(), done.stderr
