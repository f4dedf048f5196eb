"""task: regression: .ts targets, .npz float y, DEAP ratings; RMSE/MAE/R², baselines, eval, predict, export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from conftest import run_cli
from seqlab.config import DataConfig
from seqlab.data.deap import DEAPOptions
from seqlab.data.sources import aeon_data_dir, load_data, load_regression_data
from seqlab.data.synthetic import write_deap
from seqlab.data.ts_format import read_ts
from seqlab.errors import SeqlabError
from seqlab.runs import load_run
from seqlab.training.evaluate import regression_metrics

TINY = ["--model", "gru", "--hidden-size", "4", "--epochs", "2", "--quiet", "--set", "task=regression"]


def test_regression_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    truth, prediction = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    metrics = regression_metrics(prediction, truth)
    assert metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(truth, prediction)))
    assert metrics["mae"] == pytest.approx(mean_absolute_error(truth, prediction))
    assert metrics["r2"] == pytest.approx(r2_score(truth, prediction))
    assert regression_metrics(prediction, np.ones((30, 2)))["r2"] is None  # constant truth: R² undefined


def test_aeon_regression_ts_reads_as_aeon_reads_it():
    from aeon.datasets import load_from_ts_file

    path = aeon_data_dir() / "Covid3Month" / "Covid3Month_TEST.ts"
    content = read_ts(path)
    X, y = load_from_ts_file(str(path))  # aeon's own reader: X (N, C, T), y float targets
    assert content.targets and content.class_names is None
    np.testing.assert_allclose(np.stack(content.series), X.transpose(0, 2, 1))
    np.testing.assert_allclose(np.array(content.labels, dtype=float), y)
    with pytest.raises(SeqlabError, match=r"holds regression targets \(@targetLabel true\); expected class labels "
                                          r"for classification, or set task: regression"):
        load_data(DataConfig(spec="aeon:Covid3Month"))


@pytest.fixture(scope="module")
def npz_run(tmp_path_factory):
    """A run on an .npz of float targets y (N, 2); y follows the sequences' means, so it is learnable."""
    root = tmp_path_factory.mktemp("reg")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6, 3)).astype(np.float32)
    y = np.stack([X.mean(axis=(1, 2)) * 10 + 100, X[:, -1, 0] - 5], axis=1)  # (40, 2): other scales and means
    np.savez(root / "data.npz", X=X, y=y)
    out = root / "run"
    from seqlab.cli.main import main

    assert main(["train", "--data", str(root / "data.npz"), "--out", str(out), *TINY,
                 "--set", "train.baselines=false"]) == 0
    return root, out


def test_npz_run_metrics_and_the_mean_baseline(npz_run):
    root, out = npz_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "regression" and metrics["data"]["targets"] == ["target0", "target1"]
    assert set(metrics["test"]) == {"rmse", "mae", "r2", "n"} and set(metrics["baselines"]) == {"mean"}
    bundle = load_regression_data(DataConfig(spec=str(root / "data.npz")))  # the run's own split
    assert metrics["data"]["train"] == len(bundle.train) and metrics["data"]["test"] == len(bundle.test)
    mean = np.broadcast_to(bundle.train.y.mean(axis=0), bundle.test.y.shape)
    assert metrics["baselines"]["mean"]["rmse"] == pytest.approx(np.sqrt(mean_squared_error(bundle.test.y, mean)),
                                                                 rel=1e-5)


def test_eval_and_predict_reproduce_the_test_split_in_target_units(npz_run, capsys):
    root, out = npz_run
    metrics = json.loads((out / "metrics.json").read_text())
    status, _, err = run_cli(capsys, "eval", "--run", out)
    assert status == 0, err
    assert json.loads((out / "eval.json").read_text())["test"] == pytest.approx(metrics["test"])
    bundle = load_regression_data(DataConfig(spec=str(root / "data.npz")))
    np.savez(root / "test.npz", X=bundle.test.X, y=bundle.test.y)
    status, _, err = run_cli(capsys, "predict", "--run", out, "--input", root / "test.npz", "--out", root / "p.csv")
    assert status == 0, err
    rows = list(csv.DictReader(open(root / "p.csv")))
    predicted = np.array([[float(r["predicted_target0"]), float(r["predicted_target1"])] for r in rows])
    assert np.sqrt(np.mean((predicted - bundle.test.y) ** 2)) == pytest.approx(metrics["test"]["rmse"], rel=1e-4)
    assert float(rows[0]["target0"]) == pytest.approx(bundle.test.y[0, 0], rel=1e-5)


def test_onnx_export_carries_the_target_scaling(npz_run, capsys):
    from seqlab.serving import OnnxModel
    from seqlab.tasks.regression import predict_sequences

    root, out = npz_run
    status, _, err = run_cli(capsys, "export", "--run", out, "--format", "onnx", "--out", root / "reg.onnx")
    assert status == 0, err
    x = np.random.default_rng(1).normal(size=(3, 6, 3)).astype(np.float32)
    from seqlab.data.dataset import SequenceSet

    eager = predict_sequences(load_run(out), SequenceSet(x))  # (3, 2) in the targets' units
    model = OnnxModel(root / "reg.onnx", workers=1)
    try:
        np.testing.assert_allclose(model(x), eager, rtol=1e-4, atol=1e-4)
        assert model.task == "regression" and model.target_names == ["target0", "target1"]
    finally:
        model.close()
    np.savez(root / "x.npz", X=x)
    status, _, err = run_cli(capsys, "predict", "--onnx", root / "reg.onnx", "--input", root / "x.npz",
                             "--out", root / "onnx.csv")
    assert status == 0, err
    rows = list(csv.DictReader(open(root / "onnx.csv")))
    np.testing.assert_allclose([[float(r["predicted_target0"]), float(r["predicted_target1"])] for r in rows], eager,
                               rtol=1e-4, atol=1e-4)


def test_deap_continuous_ratings_are_the_targets(tmp_path):
    folder = write_deap(tmp_path / "deap", subjects=1, samples=128 * 6)
    options = DEAPOptions(labels="valence", window=1.0, stride=1.0, band=[], cache=str(tmp_path / "cache"))
    bundle = load_regression_data(DataConfig(spec=f"deap:{folder}", options={
        "labels": "valence", "window": 1.0, "stride": 1.0, "band": [], "cache": str(tmp_path / "cache")}))
    import pickle

    ratings = pickle.loads((folder / "s01.dat").read_bytes())["labels"]
    assert bundle.target_names == ["valence"] and options.labels == "valence"
    for part in (bundle.train, bundle.test):
        x, _, target = part[0]
        trial = int(part.index[0][1])
        assert target.shape == (1,) and float(target[0]) == pytest.approx(ratings[trial, 0], rel=1e-6)
    both = load_regression_data(DataConfig(spec=f"deap:{folder}", options={
        "window": 1.0, "stride": 1.0, "band": [], "cache": str(tmp_path / "cache")}))
    assert both.target_names == ["valence", "arousal"] and both.train[0][2].shape == (2,)


def test_bad_regression_input(tmp_path, capsys):
    np.savez(tmp_path / "text.npz", X=np.zeros((6, 3, 1)), y=np.array(["a", "b", "c", "a", "b", "c"]))
    status, _, err = run_cli(capsys, "train", "--data", tmp_path / "text.npz", "--out", tmp_path / "o", *TINY)
    assert status == 2 and "target 'a' is not a number; regression needs numeric targets" in err
    np.savez(tmp_path / "nan.npz", X=np.zeros((6, 3, 1)), y=np.array([1.0, np.nan, 2, 3, 4, 5]))
    status, _, err = run_cli(capsys, "train", "--data", tmp_path / "nan.npz", "--out", tmp_path / "o", *TINY)
    assert status == 2 and "target of sequence 1 (column 0) is nan; expected finite values" in err
    np.savez(tmp_path / "float.npz", X=np.zeros((6, 3, 1)), y=np.linspace(0, 1, 6))
    status, _, err = run_cli(capsys, "train", "--data", tmp_path / "float.npz", "--out", tmp_path / "o",
                             "--quiet")  # classification of fractional targets
    assert status == 2 and "holds regression targets (fractional values in y)" in err


@pytest.mark.slow
def test_covid3month_minirocket_beats_the_mean(tmp_path, capsys):
    status, _, err = run_cli(capsys, "train", "--data", "aeon:Covid3Month", "--out", tmp_path / "covid", *TINY)
    assert status == 0, err
    metrics = json.loads((tmp_path / "covid" / "metrics.json").read_text())
    assert metrics["data"]["test"] == 61  # the archive's own test split
    assert metrics["baselines"]["minirocket"]["rmse"] < metrics["baselines"]["mean"]["rmse"]


@pytest.mark.slow
def test_deap_valence_regression_trains_through_the_cli(tmp_path, capsys):
    folder = write_deap(tmp_path / "deap", subjects=1, samples=128 * 8)
    status, _, err = run_cli(capsys, "train", "--data", f"deap:{folder}", "--out", tmp_path / "run", *TINY,
                             "--set", "data.options.labels=valence", "--set", "data.options.band=[]",
                             "--set", "data.options.window=1.0")
    assert status == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"]["targets"] == ["valence"] and set(metrics["baselines"]) == {"mean"}
    status, _, err = run_cli(capsys, "eval", "--run", tmp_path / "run")
    assert status == 0, err
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["test"] == pytest.approx(metrics["test"])


def test_a_cli_run_loads_as_a_fitted_regressor(npz_run):
    import seqlab
    from seqlab.data.dataset import SequenceSet
    from seqlab.tasks.regression import predict_sequences

    root, out = npz_run
    regressor = seqlab.load(out)
    assert isinstance(regressor, seqlab.SequenceRegressor)
    assert regressor.get_params()["hidden_size"] == 4 and regressor.get_params()["epochs"] == 2
    x = np.random.default_rng(2).normal(size=(3, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(regressor.predict(x), predict_sequences(load_run(out), SequenceSet(x)), rtol=1e-6)
