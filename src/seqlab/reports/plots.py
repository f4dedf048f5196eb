"""PNG plots of a run: learning curves and the confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
from matplotlib.figure import Figure
import numpy as np

from seqlab.io import save_figure


def plot_learning_curves(history: Sequence[dict], path: Path, title: str = "") -> None:
    """Loss per epoch, training against validation, plus accuracy or perplexity when recorded."""
    epochs = [row["epoch"] for row in history]
    second = next((m for m in ("accuracy", "perplexity") if history and f"val_{m}" in history[0]), None)
    fig = Figure(figsize=(10 if second else 5.5, 3.8))
    axes = fig.subplots(1, 2 if second else 1, squeeze=False)
    ax_loss = axes[0, 0]
    for split, style in (("train", "-"), ("val", "--")):
        ax_loss.plot(epochs, [row[f"{split}_loss"] for row in history], style, label=split)
        if second:
            axes[0, 1].plot(epochs, [row[f"{split}_{second}"] for row in history], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    if second == "accuracy":
        axes[0, 1].set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    elif second:
        axes[0, 1].set(xlabel="epoch", ylabel=second, title=second, yscale="log")
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: Path, title: str = "") -> None:
    """Counts with rows = true class, columns = predicted class."""
    counts = np.asarray(matrix)
    size = max(4.0, 0.45 * len(class_names) + 2)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45 if max(map(len, class_names)) > 3 else 0, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix (test)")
    if len(class_names) <= 20:
        threshold = counts.max() / 2 if counts.size else 0
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if counts[i, j] > threshold else "black")
    save_figure(fig, path)


def plot_forecast(series, origin: int, prediction: np.ndarray, truth: np.ndarray | None, path: Path,
                  title: str = "", context: int = 120) -> None:
    """History (the last ``context`` points before the origin), truth where known, and forecast."""
    steps = len(prediction)
    start = max(0, origin - context)
    x_hist = np.arange(start, origin)
    x_future = np.arange(origin, origin + steps)
    fig = Figure(figsize=(10, 3.8))
    ax = fig.subplots()
    for c, name in enumerate(series.columns):
        line = ax.plot(x_hist, series.values[start:origin, c], label=f"{name} history")[0]
        if truth is not None and len(truth):
            ax.plot(x_future[: len(truth)], truth[:, c], color=line.get_color(), alpha=0.45, label=f"{name} truth")
        ax.plot(x_future, prediction[:, c], "--", color=line.get_color(), label=f"{name} forecast")
    ax.axvline(origin - 0.5, color="grey", lw=0.8)
    if series.dates is not None:
        dates = np.concatenate([series.dates, series.future_dates(max(0, origin + steps - len(series)))])
        ticks = np.linspace(start, origin + steps - 1, 7).astype(int)
        ax.set_xticks(ticks, [str(dates[t]) for t in ticks])
    ax.set(title=title, xlabel="time" if series.dates is None else "date")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=3)
    save_figure(fig, path)


def mean_attention_by_class(weights: np.ndarray, labels: np.ndarray, classes: int,
                            lengths: np.ndarray | None = None) -> np.ndarray:
    """(N, T) weights -> (C, T) mean per true class over the sequences that reach each step; NaN where none does."""
    steps = weights.shape[1]
    valid = np.ones(weights.shape, bool) if lengths is None else np.arange(steps)[None, :] < lengths[:, None]
    rows = np.full((classes, steps), np.nan)
    for c in range(classes):
        members = labels == c
        counts = valid[members].sum(axis=0)  # (T,)
        totals = (weights[members] * valid[members]).sum(axis=0)
        rows[c] = np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)
    return rows


def plot_attention(weights: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: Path,
                   title: str = "", lengths: np.ndarray | None = None) -> None:
    """Mean attention weight per time step for each true class (rows), over the test sequences.

    With ``lengths``, each step's mean is over the sequences that reach it: padding (weight 0 by
    construction) is left out rather than averaged in, and a step no sequence of a class reaches is
    greyed out, not painted as zero weight.
    """
    rows = mean_attention_by_class(weights, labels, len(class_names), lengths)  # (C, T)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    fig = Figure(figsize=(10, 0.4 * len(class_names) + 1.8))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(rows), aspect="auto", cmap=cmap, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.03, label="mean weight")
    ax.set_yticks(np.arange(len(class_names)), class_names)
    note = "\ngrey: steps no sequence of the class reaches" if np.isnan(rows).any() else ""
    ax.set(xlabel="time step", ylabel="true class", title=(title or "attention over time (test)") + note)
    save_figure(fig, path)
