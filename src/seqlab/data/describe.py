"""``seqlab datasets --describe SPEC``: what a data spec holds, before anything is trained on it.

Sequence data (classification, or regression targets): the splits a run
would use (the default fractions and seed), T and F, a histogram of the
sequence lengths, and the class balance per split (regression: each
target's mean, spread and range). Series: points, columns, dates,
frequency and season. Text: characters and vocabulary.
"""

from __future__ import annotations

import numpy as np

from seqlab.config import DataConfig, infer_task
from seqlab.errors import SeqlabError
from seqlab.reports.tables import format_table

HISTOGRAM_BINS, BAR_WIDTH = 8, 40


def _lengths(part) -> np.ndarray:
    if getattr(part, "lengths", None) is not None:
        return np.asarray(part.lengths)
    return np.full(len(part), part.steps)


def length_histogram(lengths: np.ndarray) -> list[str]:
    """Text bars of the sequence lengths: one line per bin, ``steps lo-hi | ### count``."""
    low, high = int(lengths.min()), int(lengths.max())
    if low == high:
        return [f"every sequence has {low} steps"]
    edges = np.unique(np.linspace(low, high + 1, HISTOGRAM_BINS + 1).astype(int))
    counts, _ = np.histogram(lengths, bins=edges)
    width = len(str(high))
    lines = []
    for start, stop, count in zip(edges[:-1], edges[1:], counts):
        bar = "#" * int(round(BAR_WIDTH * count / counts.max()))
        lines.append(f"{start:>{width}}-{stop - 1:<{width}} | {bar} {count}")
    return lines


def describe_sequences(spec: str) -> str:
    from seqlab.data.sources import load_data, load_regression_data

    config = DataConfig(spec=spec)
    try:
        bundle, task = load_data(config), "classification"
    except SeqlabError as error:
        if "regression targets" not in str(error):
            raise
        bundle, task = load_regression_data(config), "regression"
    parts = {"train": bundle.train, "val": bundle.val, "test": bundle.test}
    lengths = np.concatenate([_lengths(p) for p in parts.values()])
    lines = [f"{spec}: {task}, {sum(len(p) for p in parts.values())} sequences of up to {bundle.train.steps} steps "
             f"x {bundle.input_size} features",
             "splits (the default fractions and seed): " + ", ".join(f"{name} {len(p)}" for name, p in parts.items()),
             f"lengths: min {lengths.min()}, median {int(np.median(lengths))}, max {lengths.max()}",
             *("  " + line for line in length_histogram(lengths))]
    if bundle.feature_names:
        shown = ", ".join(bundle.feature_names[:8]) + (", ..." if len(bundle.feature_names) > 8 else "")
        lines.append(f"features: {shown}")
    if task == "classification":
        counts = {name: np.bincount(np.asarray(p.y), minlength=bundle.num_classes) for name, p in parts.items()}
        rows = [[c, *(int(counts[name][k]) for name in parts), int(sum(counts[name][k] for name in parts))]
                for k, c in enumerate(bundle.class_names)]
        lines += ["", f"class balance ({bundle.num_classes} classes):",
                  format_table(["class", *parts, "total"], rows)]
    else:
        y = np.concatenate([np.asarray(p.y) for p in parts.values()])  # (N, K)
        rows = [[name, float(y[:, k].mean()), float(y[:, k].std()), float(y[:, k].min()), float(y[:, k].max())]
                for k, name in enumerate(bundle.target_names)]
        lines += ["", "targets:", format_table(["target", "mean", "std", "min", "max"], rows)]
    return "\n".join(lines)


def describe_series(spec: str) -> str:
    from seqlab.data.series import frequency_of, load_series, season_of

    series = load_series(spec)
    missing = int(np.isnan(series.values).sum())
    lines = [f"{spec}: forecast, {len(series)} points of {len(series.columns)} series ({', '.join(series.columns)})"]
    if series.dates is not None:
        frequency = frequency_of(series.dates)
        lines.append(f"dates: {series.dates[0]} .. {series.dates[-1]}, {frequency or 'irregular'}; season "
                     f"{season_of(series)} (forecast.season auto)")
    else:
        lines.append(f"no dates; season {season_of(series)} (forecast.season auto)")
    rows = [[c, float(np.nanmean(v)), float(np.nanstd(v)), float(np.nanmin(v)), float(np.nanmax(v))]
            for c, v in zip(series.columns, series.values.T)]
    lines += [f"missing values: {missing}", "", format_table(["series", "mean", "std", "min", "max"], rows)]
    return "\n".join(lines)


def describe_text(spec: str) -> str:
    from seqlab.data.text import read_text

    name, text = read_text(spec)
    return f"{spec}: lm, {name}: {len(text)} characters, {len(set(text))} distinct"


def describe(spec: str) -> str:
    """The description ``seqlab datasets --describe`` prints."""
    task = infer_task(spec)
    if task == "forecast":
        return describe_series(spec)
    if task == "lm":
        return describe_text(spec)
    return describe_sequences(spec)
