"""Time series for forecasting: built-in ``sine`` and ``airline``, and CSV series files.

Symbols: N time points, C series (columns), K covariates.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqlab.data.dataset import MAX_ABS_VALUE
from seqlab.errors import SeqlabError

FILES = Path(__file__).parent / "files"
DATE_COLUMNS = ("date", "month", "time", "timestamp", "ds")


@dataclass
class Series:
    """A series with optional dates.

    Attributes:
        name: the spec it came from.
        values: (N, C) float64; NaN marks a missing value until imputed.
        columns: the name of each of the C series.
        dates: (N,) numpy datetime64 (month or day resolution), or None.
    """

    name: str
    values: np.ndarray
    columns: list[str]
    dates: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)

    def future_dates(self, steps: int) -> np.ndarray | None:
        """Dates of the ``steps`` points after the last one, at the series' usual spacing."""
        if self.dates is None or len(self.dates) < 2:
            return None
        spacing = np.diff(self.dates)
        values, counts = np.unique(spacing, return_counts=True)
        step = values[np.argmax(counts)]
        return self.dates[-1] + step * np.arange(1, steps + 1)


def months_of(dates: np.ndarray) -> np.ndarray:
    """Calendar month 1..12 of each date."""
    return dates.astype("datetime64[M]").astype(np.int64) % 12 + 1


def sine_series() -> Series:
    """``sine``: x_k = sin(0.1 k) for k = 0..999 (period 2*pi/0.1 = 62.8 steps), no noise."""
    k = np.arange(1000)
    return Series("sine", np.sin(0.1 * k)[:, None], ["sine"])


def airline_series() -> Series:
    """``airline``: monthly international airline passengers (thousands), 1949-01 to 1960-12."""
    return read_series_csv(FILES / "airline.csv", name="airline")


# Spacing of the dates -> (frequency, season): the season is one day of hours, one week of days, one year
# of weeks, months or quarters. Spacings are in seconds, months for month-resolution dates.
HOUR, DAY = 3600, 86400
FREQUENCIES = (("hourly", 24), ("daily", 7), ("weekly", 52), ("monthly", 12), ("quarterly", 4), ("yearly", 1))
UNDATED_SEASON = 12  # the season of a series without dates, unless forecast.season is set


def frequency_of(dates: np.ndarray | None) -> str | None:
    """``hourly``, ``daily``, ``weekly``, ``monthly``, ``quarterly``, ``yearly`` from the usual spacing of
    ``dates``, or None (no dates, a single date, or another spacing)."""
    if dates is None or len(dates) < 2:
        return None
    unit = np.datetime_data(dates.dtype)[0]
    if unit in ("Y", "M"):
        months = np.diff(dates.astype("datetime64[M]").astype(np.int64))
        usual = int(np.median(months))
        return {1: "monthly", 3: "quarterly", 12: "yearly"}.get(usual)
    seconds = float(np.median(np.diff(dates) / np.timedelta64(1, "s")))
    for name, low, high in (("hourly", HOUR, HOUR), ("daily", DAY, DAY), ("weekly", 7 * DAY, 7 * DAY),
                            ("monthly", 28 * DAY, 31 * DAY), ("quarterly", 89 * DAY, 92 * DAY),
                            ("yearly", 365 * DAY, 366 * DAY)):
        if low <= seconds <= high:
            return name
    return None


def season_of(series: Series) -> int:
    """The season that the spacing of the series' dates implies (UNDATED_SEASON without a known spacing)."""
    return dict(FREQUENCIES).get(frequency_of(series.dates), UNDATED_SEASON)


def _is_row_numbers(column) -> bool:
    """``0, 1, ..., N-1``: the index ``DataFrame.to_csv()`` writes."""
    return all(text.strip() == str(k) for k, text in enumerate(column))


def read_series_csv(path: str | Path, name: str | None = None) -> Series:
    """CSV read with pandas: a header; an optional date column (date, month, time, timestamp or ds, or an
    unnamed first column of dates) in ISO form (1949-01, 1949-01-31 or 2020-01-01 13:00); every other column
    a numeric series. Empty cells, NA and NaN are missing values. An unnamed first column holding 0..N-1
    (the index ``DataFrame.to_csv()`` writes) is dropped, with a note."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise SeqlabError(f"{path}: file not found")
    try:  # every cell as text: the numbers and dates are checked below, naming the row and column
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8", encoding_errors="strict")
    except UnicodeDecodeError as error:
        raise SeqlabError(f"{path}: not UTF-8 text (found byte {error.object[error.start]:#04x}); "
                          "save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise SeqlabError(f"{path}: empty file; expected a header row") from None
    except (pd.errors.ParserError, ValueError) as error:
        raise SeqlabError(f"{path}: not a readable CSV file ({' '.join(str(error).split())})") from None
    header = [str(h).strip() for h in table.columns]
    unnamed = [h.startswith("Unnamed: ") for h in header]
    columns = [table[c].tolist() for c in table.columns]
    date_col = next((i for i, h in enumerate(header) if h.lower() in DATE_COLUMNS), None)
    if unnamed and unnamed[0] and columns[0] and _is_row_numbers(columns[0]):
        print(f"seqlab: {path}: dropped the unnamed first column: it holds the row numbers 0..{len(columns[0]) - 1} "
              "that DataFrame.to_csv() writes as the index, not a series", file=sys.stderr)
        header, unnamed, columns = header[1:], unnamed[1:], columns[1:]
        date_col = None if date_col is None else date_col - 1
    if date_col is None and unnamed and unnamed[0]:
        date_col = 0  # a DataFrame's unnamed date index
    for i, nameless in enumerate(unnamed):
        if nameless and i != date_col:
            raise SeqlabError(f"{path}: column {i + 1} has no name in the header; expected a name for every "
                              "series column")
    value_cols = [i for i in range(len(header)) if i != date_col]
    if not value_cols:
        raise SeqlabError(f"{path}: expected at least one numeric column besides the dates")
    if not columns or not columns[0]:
        raise SeqlabError(f"{path}: no data rows")
    values = np.empty((len(columns[0]), len(value_cols)))
    for j, i in enumerate(value_cols):
        for row, text in enumerate(columns[i]):
            text = text.strip()
            try:
                values[row, j] = np.nan if text in MISSING else float(text)
            except ValueError:
                raise SeqlabError(f"{path}: data row {row + 1}, column {header[i]!r}: expected a number, got "
                                  f"{text[:40]!r}") from None
    dates = None
    if date_col is not None:
        try:
            dates = np.array([np.datetime64(text.strip()) for text in columns[date_col]])
        except ValueError:
            row = next(k for k, text in enumerate(columns[date_col]) if not _parses_as_date(text))
            raise SeqlabError(f"{path}: data row {row + 1}, column {header[date_col]!r}: expected an ISO date such "
                              f"as 1949-01, 1949-01-31 or 2020-01-01 13:00, got {columns[date_col][row]!r}") from None
    if dates is not None and np.isnat(dates).any():
        row = int(np.argmax(np.isnat(dates)))
        raise SeqlabError(f"{path}: data row {row + 1}, column {header[date_col]!r}: the date is missing; expected "
                          "a date on every row")
    bad = np.isinf(values) | (np.abs(values) > MAX_ABS_VALUE)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise SeqlabError(f"{path}: data row {row + 1}, column {header[value_cols[column]]!r} holds {values[row, column]:g}; "
                          f"expected finite values within +-{MAX_ABS_VALUE:g} (empty cells or NaN mark missing ones)")
    if dates is not None and np.any(np.diff(dates) <= np.timedelta64(0)):
        raise SeqlabError(f"{path}: dates must increase from row to row")
    if dates is not None and frequency_of(dates) in ("monthly", "quarterly"):
        dates = dates.astype("datetime64[M]")  # so the dates after the series step by calendar months
    return Series(name or str(path), values, [header[i] for i in value_cols], dates)


MISSING = ("", "NA", "nan", "NaN")


def _parses_as_date(text: str) -> bool:
    try:
        np.datetime64(text.strip())
    except ValueError:
        return False
    return True


def load_series(spec: str) -> Series:
    if spec == "sine":
        return sine_series()
    if spec == "airline":
        return airline_series()
    if spec.startswith("series:"):
        return read_series_csv(spec[len("series:"):], name=spec)
    raise SeqlabError(f"data {spec!r}: not a series; expected sine, airline or series:FILE.csv")


def handle_missing(series: Series, impute: str) -> Series:
    """Refuse missing values, or interpolate them linearly (``impute="linear"``) and say which."""
    missing = np.isnan(series.values)
    if not missing.any():
        return series
    rows = np.flatnonzero(missing.any(axis=1))
    shown = ", ".join(str(r + 1) for r in rows[:10]) + (" ..." if len(rows) > 10 else "")
    if impute == "none":
        raise SeqlabError(
            f"{series.name}: {int(missing.sum())} missing values (data rows {shown}); "
            "expected none. Set forecast.impute=linear to interpolate them"
        )
    values = series.values.copy()
    index = np.arange(len(values))
    for c in range(values.shape[1]):
        bad = missing[:, c]
        if bad.all():
            raise SeqlabError(f"{series.name}: column {series.columns[c]!r} has no values at all")
        values[bad, c] = np.interp(index[bad], index[~bad], values[~bad, c])
    print(f"seqlab: {series.name}: imputed {int(missing.sum())} missing values by linear interpolation "
          f"(data rows {shown})", file=sys.stderr)
    return Series(series.name, values, series.columns, series.dates)
