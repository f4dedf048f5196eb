"""scikit-learn estimators over seqlab runs: inputs, fit/predict/score, clone, cross_val_score, Pipeline, save/load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import seqlab
from conftest import make_waves, run_cli
from seqlab.errors import SeqlabError
from seqlab.runs import load_run

TINY = {"hidden_size": 4, "epochs": 2, "baselines": False}


@pytest.fixture(scope="module")
def waves():
    cases, labels = make_waves(24, 10, 2, classes=2, seed=0)  # 24 sequences of (10, 2), labels 0 and 1
    X = np.stack(cases).astype(np.float32)
    y = np.array(["calm" if label == 0 else "busy" for label in labels])
    return X, y


@pytest.fixture(scope="module")
def fitted(waves, tmp_path_factory):
    X, y = waves
    return seqlab.SequenceClassifier(**TINY, random_state=0).fit(X, y)


def test_parameters_are_the_config_keys_and_clone_keeps_them():
    clf = seqlab.SequenceClassifier(model="lstm", hidden_size=8, epochs=3, lr=0.01, val_fraction=0.25,
                                    random_state=7)
    params = clf.get_params()
    assert {"model", "hidden_size", "num_layers", "epochs", "steps", "batch_size", "lr", "val_fraction",
            "normalize", "random_state", "id_column", "channels_first"} <= set(params)
    copy = clone(clf)
    assert copy.get_params() == params and copy is not clf
    tree = copy.set_params(hidden_size=16).config_tree()
    assert tree == {"task": "classification", "model": {"name": "lstm", "hidden_size": 16},
                    "train": {"epochs": 3, "lr": 0.01, "seed": 7}, "data": {"val_fraction": 0.25}}
    assert "window" in seqlab.SequenceForecaster().get_params() and "val_fraction" not in \
        seqlab.SequenceForecaster().get_params()
    with pytest.raises(TypeError, match="unknown argument 'hidden'"):
        seqlab.SequenceRegressor(hidden=3)


def test_classifier_predicts_the_runs_probabilities_in_classes_order(fitted, waves):
    X, y = waves
    assert list(fitted.classes_) == ["busy", "calm"] and fitted.n_features_in_ == 2
    run = fitted.run_
    from seqlab.data.dataset import SequenceSet
    from seqlab.training.evaluate import predict_proba

    direct = predict_proba(run.model, run.normalizer.transform(SequenceSet(X)))  # the run's class order
    order = [run.class_names.index(name) for name in fitted.classes_]
    np.testing.assert_allclose(fitted.predict_proba(X), direct[:, order], rtol=1e-6)
    assert set(fitted.predict(X)) <= {"busy", "calm"}
    assert fitted.score(X, y) == pytest.approx(np.mean(fitted.predict(X) == y))
    assert fitted.metrics_["task"] == "classification"


def test_the_input_layouts_give_the_same_predictions(fitted, waves):
    X, _ = waves
    expected = fitted.predict_proba(X[:4])
    np.testing.assert_allclose(fitted.predict_proba(list(X[:4])), expected, rtol=1e-6)
    aeon = clone(fitted).set_params(channels_first=True)
    aeon.run_, aeon.classes_, aeon._order = fitted.run_, fitted.classes_, fitted._order
    np.testing.assert_allclose(aeon.predict_proba(X[:4].transpose(0, 2, 1)), expected, rtol=1e-6)  # (N, C, T)
    rows = [{"sid": f"s{n}", "t": t, "a": X[n, t, 0], "b": X[n, t, 1]} for n in range(4) for t in range(10)]
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # rows in any order: the time column sorts them
    long = clone(fitted).set_params(id_column="sid", time_column="t")
    long.run_, long.classes_, long._order = fitted.run_, fitted.classes_, fitted._order
    order = [int(i[1:]) for i in pd.unique(frame["sid"])]  # sequences in the order they first appear
    np.testing.assert_allclose(long.predict_proba(frame), expected[order], rtol=1e-5)


def test_save_writes_a_run_folder_the_cli_reads_and_load_reads_any(fitted, waves, tmp_path, capsys):
    X, _ = waves
    folder = fitted.save(tmp_path / "saved")
    np.savez(tmp_path / "new.npz", X=X[:5])
    status, _, err = run_cli(capsys, "predict", "--run", folder, "--input", tmp_path / "new.npz",
                             "--out", tmp_path / "p.csv")
    assert status == 0, err
    loaded = seqlab.load(folder)
    assert isinstance(loaded, seqlab.SequenceClassifier) and loaded.get_params()["hidden_size"] == 4
    predicted = [line.split(",")[1] for line in (tmp_path / "p.csv").read_text().splitlines()[1:]]
    assert predicted == list(loaded.predict(X[:5])) == list(fitted.predict(X[:5]))
    with pytest.raises(SeqlabError, match="holds a classification run; SequenceRegressor cannot load it"):
        seqlab.SequenceRegressor.load(folder)


def test_regressor_on_a_long_dataframe_with_a_target_column(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for n in range(20):
        level = rng.normal()
        for t in range(int(rng.integers(4, 8))):  # ragged lengths
            rows.append({"id": n, "step": t, "x": level + rng.normal(0, 0.1), "rating": 10 * level + 50})
    frame = pd.DataFrame(rows)
    reg = seqlab.SequenceRegressor(**TINY, time_column="step", target_column="rating", run_dir=tmp_path / "run")
    reg.fit(frame)
    assert (tmp_path / "run" / "metrics.json").is_file() and reg.metrics_["task"] == "regression"
    truth = frame.groupby("id")["rating"].first().to_numpy()
    prediction = reg.predict(frame)
    assert prediction.shape == (20,)
    assert reg.score(frame, truth) == pytest.approx(1 - ((prediction - truth) ** 2).sum() /
                                                   ((truth - truth.mean()) ** 2).sum())


def test_bad_inputs_name_what_is_wrong(fitted):
    frame = pd.DataFrame({"id": [0, 0, 1], "a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]})
    with pytest.raises(SeqlabError, match="id_column: the DataFrame has no column 'sid'"):
        clone(fitted).set_params(id_column="sid").fit(frame, [0, 1])
    with pytest.raises(SeqlabError, match="feature column 'b': expected numbers, got dtype"):
        clone(fitted).fit(frame, [0, 1])
    with pytest.raises(SeqlabError, match="feature_columns: the DataFrame has no column 'c'"):
        clone(fitted).set_params(feature_columns=["a", "c"]).fit(frame, [0, 1])
    with pytest.raises(SeqlabError, match=r"X: sequences have different feature counts \[2, 3\]; expected one"):
        clone(fitted).fit([np.zeros((5, 2)), np.zeros((4, 3))], [0, 1])
    with pytest.raises(SeqlabError, match=r"X: sequences have 3 features; the run was trained on 2"):
        fitted.predict(np.zeros((2, 10, 3)))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        seqlab.SequenceClassifier().predict(np.zeros((2, 10, 2)))


@pytest.mark.slow
def test_cross_val_score_and_pipeline(waves):
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = waves
    scores = cross_val_score(seqlab.SequenceClassifier(**TINY, random_state=0), X, y, cv=2)
    assert scores.shape == (2,) and np.all((0 <= scores) & (scores <= 1))
    pipeline = make_pipeline(FunctionTransformer(lambda a: a * 2.0), seqlab.SequenceClassifier(**TINY))
    pipeline.fit(X, y)
    assert pipeline.score(X, y) == pytest.approx(np.mean(pipeline.predict(X) == y))


@pytest.mark.slow
def test_forecaster_on_a_dated_series(tmp_path):
    index = pd.date_range("2022-01-01", periods=80, freq="D")
    series = pd.Series(10 + np.sin(np.arange(80) * 2 * np.pi / 7), index=index, name="load")
    forecaster = seqlab.SequenceForecaster(hidden_size=4, epochs=2, window=14, horizon=7, baselines=False)
    forecaster.fit(series.iloc[:70])
    assert forecaster.metrics_["data"]["season"] == 7
    forecast = forecaster.predict(10)
    assert isinstance(forecast, pd.Series) and len(forecast) == 10
    assert forecast.index[0] == pd.Timestamp("2022-03-12")
    assert forecaster.score(series.iloc[70:]) == pytest.approx(
        1 - ((forecast.to_numpy() - series.iloc[70:].to_numpy()) ** 2).sum()
        / ((series.iloc[70:] - series.iloc[70:].mean()) ** 2).sum())
    loaded = seqlab.load(forecaster.save(tmp_path / "f"))
    np.testing.assert_allclose(loaded.predict(10), forecast.to_numpy(), rtol=1e-6)
