"""Forecasting: transforms invert exactly, windows line up, rollouts, CLI, bad input."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import torch

from conftest import run_cli
from seqlab.config import ForecastConfig, resolve_config
from seqlab.data.series import Series, handle_missing, load_series, read_series_csv
from seqlab.data.transforms import SeriesTransform
from seqlab.errors import SeqlabError
from seqlab.models import build_model
from seqlab.tasks.forecast import forecast_metrics, prepare, rollout, training_windows
from seqlab.training.pipeline import train

STEP_SETS = [[], ["log"], ["diff"], ["seasonal_diff"], ["log", "diff"], ["log", "diff", "seasonal_diff"],
             ["seasonal_diff", "diff"]]


@pytest.mark.parametrize("scale", ["standard", "minmax", "none"])
@pytest.mark.parametrize("steps", STEP_SETS)
def test_transforms_invert_exactly(steps, scale):
    rng = np.random.default_rng(0)
    raw = np.exp(rng.normal(size=(80, 2)).cumsum(axis=0) * 0.1) * [100, 5]  # positive, 2 columns
    transform = SeriesTransform(steps, season=7, scale=scale).fit(raw[:50])
    z = transform.transform(raw)
    assert z.shape == (80 - transform.lag, 2)
    for origin in (transform.lag + 1, 50, 70):
        h = 80 - origin
        restored = transform.inverse(z[origin - transform.lag : origin - transform.lag + h], raw[:origin])
        np.testing.assert_allclose(restored, raw[origin:], rtol=1e-10)
    state = SeriesTransform.from_state_dict(json.loads(json.dumps(transform.state_dict())))
    np.testing.assert_allclose(state.transform(raw), z)


def test_scaling_is_fitted_on_the_training_part_only():
    raw = np.arange(1.0, 101.0)[:, None]
    transform = SeriesTransform([], scale="standard").fit(raw[:40])
    np.testing.assert_allclose(transform.shift, [raw[:40].mean()])
    np.testing.assert_allclose(transform.factor, [raw[:40].std()])


def test_log_of_non_positive_values_is_refused():
    with pytest.raises(SeqlabError, match=r"log needs positive values; the training part has minimum -1"):
        SeriesTransform(["log"]).fit(np.array([[1.0], [-1.0], [2.0]]))


def test_windows_read_the_past_and_target_the_present():
    series = Series("ramp", np.arange(30.0)[:, None], ["x"])
    transform = SeriesTransform([], scale="none").fit(series.values[:20])
    data = prepare(series, transform, [])
    cfg = ForecastConfig(window=4, horizon=3, strategy="recursive")
    x, y = training_windows(data, cfg, end=20)
    # window ending at t: inputs z(t-4 .. t-1), targets z(t-3 .. t)
    np.testing.assert_array_equal(x[0, :, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(y[0, :, 0], [1, 2, 3, 4])
    assert y[-1, -1, 0] == 19  # no target reaches the validation part
    cfg = ForecastConfig(window=4, horizon=3, strategy="direct")
    x, y = training_windows(data, cfg, end=20)
    np.testing.assert_array_equal(x[0, :, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(y[0], [4, 5, 6])
    assert y[-1, -1] == 19


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_stepwise_rollout_with_carried_state_equals_whole_sequence(cell):
    torch.manual_seed(0)
    model = build_model(cell, 3, 2, hidden_size=8, num_layers=2, head="step").eval()
    x = torch.randn(2, 9, 3)
    whole, state_whole = model.forward_stateful(x)
    state, pieces = None, []
    for t in range(9):
        out, state = model.forward_stateful(x[:, t : t + 1], state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(model(x), whole)
    for a, b in zip(state if isinstance(state, tuple) else [state],
                    state_whole if isinstance(state_whole, tuple) else [state_whole]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_recursive_rollout_feeds_predictions_back():
    """An identity-like model: its rollout must equal running it on its own outputs."""
    torch.manual_seed(1)
    model = build_model("gru", 1, 1, hidden_size=4, head="step").eval()
    cfg = ForecastConfig(window=3, strategy="recursive")
    history = torch.randn(3, 1)
    with torch.no_grad():
        forecast = rollout(model, cfg, history, torch.zeros(4, 0), 4, 1)
        sequence = torch.cat([history, forecast[:-1]])[None]  # inputs: history then predictions
        expected = model(sequence)[0, 2:]
    torch.testing.assert_close(forecast, expected, rtol=1e-6, atol=1e-6)


def test_forecast_metrics():
    m = forecast_metrics(np.array([[110.0], [90.0]]), np.array([[100.0], [100.0]]))
    assert m == pytest.approx({"mape": 10.0, "smape": (20 / 210 + 20 / 190) * 100 / 2, "rmse": 10.0, "mae": 10.0})
    assert forecast_metrics(np.array([[1.0]]), np.array([[0.0]]))["mape"] is None


def test_airline_ships_144_months():
    series = load_series("airline")
    assert len(series) == 144 and series.values[0, 0] == 112 and series.values[-1, 0] == 432
    assert str(series.dates[0]) == "1949-01" and str(series.future_dates(1)[0]) == "1961-01"


def test_airline_preset_beats_every_baseline_over_five_seeds(tmp_path):
    import yaml

    tree = yaml.safe_load(open("configs/airline.yaml"))
    mapes = []
    for seed in range(5):
        tree["train"]["seed"] = seed
        tree["train"]["baselines"] = seed == 0  # the baselines do not depend on the seed: fitted once
        metrics = train(resolve_config(tree), tmp_path / str(seed), quiet=True).metrics
        if seed == 0:
            baselines = {name: b["mape"] for name, b in metrics["baselines"].items()}
        mapes.append(metrics["test"]["mape"])
    assert set(baselines) == {"naive", "seasonal_naive", "transformed_naive", "ets", "arima"}
    assert np.mean(mapes) < min(baselines.values()), (mapes, baselines)


def test_forecast_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "air"
    status, text, err = run_cli(capsys, "train", "--config", "configs/airline.yaml", "--quiet", "--out", out,
                                "--set", "train.baselines=false")
    assert status == 0, err
    assert "baseline seasonal_naive: mape=13.1894" in text and "baseline naive: mape=19.8867" in text
    assert "baseline transformed_naive: mape=4.3469" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "forecast" and set(metrics["test"]) == {"mape", "smape", "rmse", "mae"}
    assert set(metrics["baselines"]) == {"seasonal_naive", "naive", "transformed_naive"}  # no ETS, ARIMA: skipped
    assert metrics["data"]["test"] == 36 and (out / "forecast.png").is_file()
    # `seqlab forecast` with the test tail held out reproduces the test metrics
    status, text, err = run_cli(capsys, "forecast", "--run", out, "--horizon", "36", "--holdout", "36",
                                "--out", tmp_path / "f.csv")
    assert status == 0, err
    rows = list(csv.DictReader(open(tmp_path / "f.csv")))
    assert rows[0]["time"] == "1958-01" and rows[-1]["time"] == "1960-12"
    predicted = np.array([float(r["passengers_forecast"]) for r in rows])
    truth = np.array([float(r["passengers_truth"]) for r in rows])
    assert np.mean(np.abs(predicted - truth) / truth) * 100 == pytest.approx(metrics["test"]["mape"], rel=1e-4)
    assert (tmp_path / "f.png").is_file()
    status, _, err = run_cli(capsys, "forecast", "--run", out, "--horizon", "12", "--out", tmp_path / "next.csv")
    rows = list(csv.DictReader(open(tmp_path / "next.csv")))
    assert status == 0 and rows[0]["time"] == "1961-01" and len(rows) == 12
    status, _, _ = run_cli(capsys, "eval", "--run", out)
    assert json.loads((out / "eval.json").read_text())["test"]["mape"] == pytest.approx(metrics["test"]["mape"])


def test_recursive_forecast_on_a_csv_series_with_months(tmp_path, capsys):
    months = np.arange(np.datetime64("2000-01"), np.datetime64("2010-01"))
    values = 10 + np.sin(2 * np.pi * np.arange(len(months)) / 12) + np.arange(len(months)) * 0.05
    path = tmp_path / "s.csv"
    path.write_text("date,load\n" + "".join(f"{d},{v:.4f}\n" for d, v in zip(months, values)))
    out = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", "--data", f"series:{path}", "--model", "gru", "--hidden-size", "16",
                             "--epochs", "20", "--set", "forecast.covariates=[month]", "--set", "forecast.window=12",
                             "--set", "train.baselines=false",  # ETS and ARIMA take minutes here and are not checked
                             "--quiet", "--out", out)
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["strategy"] == "recursive" and metrics["test"]["mape"] < 10


# ----------------------------------------------------------------------------
# Bad input


def test_horizon_longer_than_the_data_allows(capsys, tmp_path):
    status, _, err = run_cli(capsys, "train", "--data", "airline", "--set", "forecast.test_size=120",
                             "--quiet", "--out", tmp_path / "x")
    assert status == 2 and "the horizon or window is longer than the data allows" in err


def test_series_shorter_than_the_window(capsys, tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("value\n" + "\n".join(str(v) for v in range(10)) + "\n")
    status, _, err = run_cli(capsys, "train", "--data", f"series:{path}", "--quiet", "--out", tmp_path / "x")
    assert status == 2 and "short.csv has 10 points" in err and "window 24" in err


def test_missing_values_refused_or_imputed(tmp_path, capsys):
    path = tmp_path / "gaps.csv"
    path.write_text("month,y\n2000-01,1\n2000-02,\n2000-03,3\n2000-04,NaN\n2000-05,5\n")
    with pytest.raises(SeqlabError, match=r"2 missing values \(data rows 2, 4\); expected none. Set forecast.impute=linear"):
        handle_missing(read_series_csv(path), "none")
    filled = handle_missing(read_series_csv(path), "linear")
    np.testing.assert_array_equal(filled.values[:, 0], [1, 2, 3, 4, 5])
    assert "imputed 2 missing values by linear interpolation (data rows 2, 4)" in capsys.readouterr().err


def test_month_covariate_needs_dates(capsys, tmp_path):
    status, _, err = run_cli(capsys, "train", "--data", "sine", "--set", "forecast.covariates=[month]",
                             "--quiet", "--out", tmp_path / "x")
    assert status == 2 and "month needs dates; sine has no date column" in err


def test_recursive_forecast_refuses_a_bidirectional_model(capsys, tmp_path):
    status, _, err = run_cli(capsys, "train", "--data", "sine", "--model", "bigru", "--quiet", "--out", tmp_path / "x")
    assert status == 2 and "recursive needs a unidirectional model" in err


def test_forecast_command_refuses_other_runs_and_bad_holdout(tmp_path, capsys):
    out = tmp_path / "air"
    assert run_cli(capsys, "train", "--config", "configs/airline.yaml", "--quiet", "--out", out)[0] == 0
    status, _, err = run_cli(capsys, "forecast", "--run", out, "--horizon", "5", "--holdout", "140",
                             "--out", tmp_path / "f.csv")
    assert status == 2 and "--holdout 140: the series has 144 points, so 4 would remain" in err
    most = int(re.search(r"--holdout at most (\d+)", err).group(1))  # the limit it names is the real one
    assert run_cli(capsys, "forecast", "--run", out, "--horizon", "5", "--holdout", str(most),
                   "--out", tmp_path / "edge.csv")[0] == 0
    assert run_cli(capsys, "forecast", "--run", out, "--horizon", "5", "--holdout", str(most + 1),
                   "--out", tmp_path / "over.csv")[0] == 2
    short = tmp_path / "short.csv"  # fewer points than the run's window needs
    short.write_text("month,passengers\n" + "".join(f"1949-{m:02d},{100 + m}\n" for m in range(1, 7)))
    status, _, err = run_cli(capsys, "forecast", "--run", out, "--horizon", "5", "--input", short,
                             "--holdout", "2", "--out", tmp_path / "s.csv")
    assert status == 2 and "the series has 6 points" in err and "too short for the run even without a holdout" in err
    status, _, err = run_cli(capsys, "forecast", "--run", out, "--horizon", "0", "--out", tmp_path / "f.csv")
    assert status == 2 and "--horizon: expected an integer in 1..100000, got 0" in err
