"""Baselines against independent computations, in metrics.json, and the warning when the model loses."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import make_waves, run_cli
from seqlab.baselines import losing_warnings
from seqlab.baselines.classification import classification_baselines, majority_class, minirocket_predict
from seqlab.baselines.forecast import arima, ets, naive, seasonal_naive, transformed_naive
from seqlab.baselines.lm import KneserNeyNgram, choose_order, lm_baselines
from seqlab.data.dataset import SequenceSet
from seqlab.data.series import load_series
from seqlab.data.transforms import SeriesTransform


def _waves(n, steps, features, seed, variable=False):
    cases, labels = make_waves(n, steps, features, seed=seed, variable=variable)
    lengths = np.array([len(c) for c in cases])
    X = np.zeros((n, steps, features), np.float32)
    for i, case in enumerate(cases):
        X[i, : len(case)] = case
    return SequenceSet(X, labels.astype(np.int64), lengths if variable else None)


# ----------------------------------------------------------------------------
# Classification


def test_majority_is_the_most_frequent_training_class_and_scores_its_test_frequency():
    y_train = np.array([2, 0, 2, 1, 2, 0])
    assert majority_class(y_train, 3) == 2
    train = SequenceSet(np.zeros((6, 4, 1), np.float32), y_train)
    test = SequenceSet(np.zeros((5, 4, 1), np.float32), np.array([2, 2, 0, 1, 1]))
    majority = classification_baselines(train, train, test, 3, fitted=False)["majority"]
    assert majority["accuracy"] == pytest.approx(np.mean(test.y == 2))
    # macro-F1 of always predicting 2: F1 = 2 * precision * recall / (precision + recall) for class 2, 0 for the rest
    precision, recall = 2 / 5, 1.0
    assert majority["macro_f1"] == pytest.approx(2 * precision * recall / (precision + recall) / 3)


def test_minirocket_separates_variable_length_multivariate_waves():
    train, test = _waves(40, 30, 3, seed=0, variable=True), _waves(40, 30, 3, seed=1, variable=True)
    predicted = minirocket_predict([train], test, seed=0, n_kernels=500)
    assert np.mean(predicted == test.y) >= 0.9  # chance is 0.5


def test_minirocket_pads_sequences_shorter_than_its_kernels():
    train, test = _waves(20, 5, 1, seed=0), _waves(10, 7, 1, seed=1)  # 5 and 7 steps, kernels span 9
    assert minirocket_predict([train], test, n_kernels=84).shape == (10,)


# ----------------------------------------------------------------------------
# Forecasting


def test_naive_and_seasonal_naive_repeat_the_last_value_and_season():
    history = np.arange(10.0)[:, None] ** 2  # (10, 1)
    np.testing.assert_array_equal(naive(history, 3), [[81.0]] * 3)
    np.testing.assert_array_equal(seasonal_naive(history, 5, season=4)[:, 0], [36, 49, 64, 81, 36])


def test_transformed_naive_is_no_change_in_log_diff_seasonal_diff_space():
    values = load_series("airline").values[:108]  # (108, 1)
    transform = SeriesTransform(["log", "diff", "seasonal_diff"], season=12, scale="standard").fit(values[:96])
    forecast = transformed_naive(values, 30, transform)
    logs = list(np.log(values[:, 0]))
    for _ in range(30):
        logs.append(logs[-1] + logs[-12] - logs[-13])  # x_t = x_{t-1} + x_{t-12} - x_{t-13} on log values
    np.testing.assert_allclose(forecast[:, 0], np.exp(logs[108:]), rtol=1e-10)
    assert transformed_naive(values, 3, SeriesTransform(["log"]).fit(values)) is None  # nothing to hold still


def test_ets_and_arima_continue_a_noiseless_seasonal_trend():
    t = np.arange(60)
    pattern = np.array([0.0, 3.0, -1.0, 2.0])
    noise = np.random.default_rng(0).normal(scale=0.05, size=60)  # a noiseless series defeats the unit-root tests
    history = (10 + 0.5 * t + pattern[t % 4] + noise)[:, None]  # (60, 1): trend plus a season of 4
    future = 10 + 0.5 * np.arange(60, 68) + pattern[np.arange(60, 68) % 4]
    np.testing.assert_allclose(ets(history, 8, season=4)[:, 0], future, rtol=0.03)
    np.testing.assert_allclose(arima(history, 8, season=4)[:, 0], future, rtol=0.03)


# ----------------------------------------------------------------------------
# Language models


def _markov_text(n, seed=0):
    """Ids 1..4 where each character follows from the two before it, with 5% noise (an order-3 process)."""
    rng = np.random.default_rng(seed)
    table = rng.integers(1, 5, size=(5, 5))
    ids = [1, 2]
    for _ in range(n - 2):
        ids.append(int(rng.integers(1, 5)) if rng.random() < 0.05 else int(table[ids[-2], ids[-1]]))
    return np.array(ids)


def test_ngram_probabilities_sum_to_one_over_the_vocabulary_in_every_context():
    ids = _markov_text(400)
    model = KneserNeyNgram(ids, order=4, vocab_size=6)  # id 0 (unknown) and 5 never occur
    contexts = {tuple(ids[i - k : i]) for k in range(4) for i in range(k, len(ids))}
    contexts |= {(0, 5, 5), (5,), (3, 3, 3, 3, 3)}  # unseen contexts and one longer than the order
    for context in contexts:
        p = model.distribution(np.array(context, dtype=np.int64))
        assert p.sum() == pytest.approx(1.0, abs=1e-12) and np.all(p > 0), context


def test_ngram_loss_is_the_mean_log_probability_of_each_next_character():
    ids, val = _markov_text(400), _markov_text(60, seed=1)
    model = KneserNeyNgram(ids, order=3, vocab_size=6)
    by_hand = -np.mean([np.log(model.distribution(val[max(0, i - 2) : i])[val[i]]) for i in range(1, len(val))])
    assert model.log_losses(val)[-1] == pytest.approx(by_hand, rel=1e-12)


def test_ngram_order_is_chosen_on_the_training_tail():
    ids = _markov_text(4000)
    assert choose_order(ids, 6) == 3  # the process's own order: two characters of context
    baselines = lm_baselines(ids[:3600], ids[3600:], 6)
    counts = np.bincount(ids[:3600], minlength=6) + 1.0  # add-one unigram, computed here
    assert baselines["unigram"]["perplexity"] == pytest.approx(math.exp(-np.log(counts / counts.sum())[ids[3601:]].mean()), rel=0.05)
    assert baselines["ngram"]["order"] == 3 and baselines["ngram"]["perplexity"] < 1.6 < baselines["unigram"]["perplexity"]


# ----------------------------------------------------------------------------
# Reports


def test_warning_only_when_the_best_baseline_is_at_least_as_good():
    baselines = {"naive": {"mape": 5.0}, "ets": {"mape": 4.0}}
    assert losing_warnings(3.9, baselines, "mape", "MAPE %", higher_is_better=False) == []
    (warning,) = losing_warnings(4.0, baselines, "mape", "MAPE %", higher_is_better=False)
    assert "ets" in warning and "4" in warning
    assert losing_warnings(0.8, {"majority": {"accuracy": 0.9}}, "accuracy", "test accuracy", True)


def test_classification_run_that_loses_to_the_majority_warns(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.1).astype(int)  # 90% class 0, features carry nothing
    np.savez(tmp_path / "skewed.npz", X=rng.normal(size=(200, 12, 2)).astype(np.float32), y=y)
    out = tmp_path / "run"
    status, text, err = run_cli(capsys, "train", "--data", tmp_path / "skewed.npz", "--epochs", "1", "--lr", "1e-6",
                                "--hidden-size", "8", "--quiet", "--out", out)
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["baselines"]) == {"majority", "minirocket"}
    majority = metrics["baselines"]["majority"]["accuracy"]
    matrix = np.array(metrics["test"]["confusion_matrix"])  # rows: true class
    assert majority == pytest.approx(matrix[0].sum() / matrix.sum())  # class 0 is the training majority
    assert metrics["test"]["accuracy"] <= majority
    assert any("majority" in w or "minirocket" in w for w in metrics["warnings"])
    assert "warning: the model's test accuracy" in text
