"""Forecasting CSVs read with pandas: DataFrame.to_csv() files, the season from the date spacing, --input checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from seqlab.data.series import frequency_of, read_series_csv, season_of
from seqlab.errors import SeqlabError


def _frame(periods: int, freq: str, columns=("load",), seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2021-01-01", periods=periods, freq=freq)
    return pd.DataFrame({c: 10 + np.sin(np.arange(periods) / 3) + rng.normal(0, 0.1, periods) for c in columns},
                        index=index)


def test_to_csv_row_numbers_are_dropped_with_a_note(tmp_path, capsys):
    frame = _frame(20, "D").reset_index(drop=True)  # a RangeIndex: to_csv() writes 0..19 in an unnamed column
    frame.to_csv(tmp_path / "s.csv")
    series = read_series_csv(tmp_path / "s.csv")
    assert series.columns == ["load"] and series.dates is None
    np.testing.assert_allclose(series.values[:, 0], frame["load"].to_numpy(), rtol=1e-12)
    assert "dropped the unnamed first column: it holds the row numbers 0..19" in capsys.readouterr().err


def test_unnamed_date_index_becomes_the_dates(tmp_path):
    frame = _frame(30, "h")
    frame.to_csv(tmp_path / "s.csv")  # the DatetimeIndex in an unnamed first column
    series = read_series_csv(tmp_path / "s.csv")
    assert series.columns == ["load"]
    np.testing.assert_array_equal(series.dates, frame.index.to_numpy())


@pytest.mark.parametrize("freq, name, season", [("h", "hourly", 24), ("D", "daily", 7), ("W", "weekly", 52),
                                                ("MS", "monthly", 12), ("ME", "monthly", 12),
                                                ("QS", "quarterly", 4), ("YS", "yearly", 1)])
def test_season_follows_the_spacing_pandas_generated(tmp_path, freq, name, season):
    frame = _frame(12, freq)
    frame.index.name = "date"
    frame.to_csv(tmp_path / "s.csv")
    series = read_series_csv(tmp_path / "s.csv")
    assert frequency_of(series.dates) == name and season_of(series) == season


def test_bad_cells_name_the_row_and_column(tmp_path):
    (tmp_path / "a.csv").write_text("date,y\n2020-01-01,1\n2020-01-02,x\n")
    with pytest.raises(SeqlabError, match=r"a.csv: data row 2, column 'y': expected a number, got 'x'"):
        read_series_csv(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("date,y\n2020-01-01,1\nsoon,2\n")
    with pytest.raises(SeqlabError, match=r"b.csv: data row 2, column 'date': expected an ISO date"):
        read_series_csv(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("y,\n1,2\n3,4\n")
    with pytest.raises(SeqlabError, match=r"c.csv: column 2 has no name in the header"):
        read_series_csv(tmp_path / "c.csv")


@pytest.fixture(scope="module")
def daily_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("daily")
    frame = _frame(70, "D", columns=("load", "temp"))
    frame.to_csv(root / "daily.csv")
    out = root / "run"
    from seqlab.cli.main import main

    assert main(["train", "--data", f"series:{root / 'daily.csv'}", "--model", "gru", "--hidden-size", "4",
                 "--epochs", "1", "--quiet", "--out", str(out), "--set", "forecast.window=7",
                 "--set", "forecast.horizon=7", "--set", "train.baselines=false"]) == 0
    return root, out, frame


def test_daily_run_uses_season_7_in_its_seasonal_naive(daily_run):
    _, out, frame = daily_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["frequency"] == "daily" and metrics["data"]["season"] == 7
    history, truth = frame.to_numpy()[:-7], frame.to_numpy()[-7:]
    by_hand = np.abs(history[-7:] - truth).mean()  # the last week, repeated once
    assert metrics["baselines"]["seasonal_naive"]["mae"] == pytest.approx(by_hand, rel=1e-9)


def test_forecast_input_must_match_the_runs_columns_and_frequency(daily_run, capsys, tmp_path):
    root, out, frame = daily_run
    frame.rename(columns={"temp": "rain"}).to_csv(tmp_path / "other.csv")
    status, _, err = run_cli(capsys, "forecast", "--run", out, "--horizon", "3", "--input", tmp_path / "other.csv",
                             "--out", tmp_path / "f.csv")
    assert status == 2 and "has columns ['load', 'rain']; the run forecasts ['load', 'temp']" in err
    hourly = _frame(70, "h", columns=("load", "temp"))
    hourly.to_csv(tmp_path / "hourly.csv")
    status, _, err = run_cli(capsys, "forecast", "--run", out, "--horizon", "3", "--input", tmp_path / "hourly.csv",
                             "--out", tmp_path / "f.csv")
    assert status == 2 and "has hourly dates; the run was trained on daily data" in err
    frame.iloc[:40].to_csv(tmp_path / "same.csv")
    status, _, err = run_cli(capsys, "forecast", "--run", out, "--horizon", "3", "--input", tmp_path / "same.csv",
                             "--out", tmp_path / "f.csv")
    assert status == 0, err
    assert (tmp_path / "f.csv").read_text().splitlines()[1].split(",")[1] == "2021-02-10"  # the day after row 40
