"""Time series for forecasting: built-in ``sine`` and ``airline``, and CSV series files.

Symbols: N time points, C series (columns), K covariates.
"""

from __future__ import annotations

import csv
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


def read_series_csv(path: str | Path, name: str | None = None) -> Series:
    """CSV with a header; an optional date column (date, month, time, timestamp or ds)
    in ISO form (1949-01 or 1949-01-31); every other column a numeric series.
    Empty cells and NaN are missing values."""
    path = Path(path)
    if not path.is_file():
        raise SeqlabError(f"{path}: file not found")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError as error:
        raise SeqlabError(f"{path}: not UTF-8 text (found byte {error.object[error.start]:#04x}); "
                          "save it as UTF-8") from None
    except csv.Error as error:
        raise SeqlabError(f"{path}: not a readable CSV file ({error})") from None
    if not rows:
        raise SeqlabError(f"{path}: empty file; expected a header row")
    header = [h.strip() for h in rows[0]]
    date_col = next((i for i, h in enumerate(header) if h.lower() in DATE_COLUMNS), None)
    value_cols = [i for i in range(len(header)) if i != date_col]
    if not value_cols:
        raise SeqlabError(f"{path}: expected at least one numeric column besides the dates")
    values, dates = [], []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise SeqlabError(f"{path}:{line_no}: expected {len(header)} fields, got {len(row)}")
        try:
            values.append([float(row[i]) if row[i].strip() not in ("", "NA", "nan", "NaN") else np.nan
                           for i in value_cols])
        except ValueError:
            raise SeqlabError(f"{path}:{line_no}: expected numbers in columns {[header[i] for i in value_cols]}") from None
        if date_col is not None:
            try:
                dates.append(np.datetime64(row[date_col].strip()))
            except ValueError:
                raise SeqlabError(f"{path}:{line_no}: expected an ISO date such as 1949-01 or 1949-01-31, "
                                  f"got {row[date_col]!r}") from None
    if not values:
        raise SeqlabError(f"{path}: no data rows")
    array = np.array(values, dtype=np.float64)
    bad = np.isinf(array) | (np.abs(array) > MAX_ABS_VALUE)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise SeqlabError(f"{path}: data row {row + 1}, column {header[value_cols[column]]!r} holds {array[row, column]:g}; "
                          f"expected finite values within +-{MAX_ABS_VALUE:g} (empty cells or NaN mark missing ones)")
    date_array = np.array(dates) if date_col is not None else None
    if date_array is not None and np.any(np.diff(date_array) <= np.timedelta64(0)):
        raise SeqlabError(f"{path}: dates must increase from row to row")
    return Series(name or str(path), array, [header[i] for i in value_cols], date_array)


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
