"""PNG plots of the inspections: gradient flow over time, gate activity, attributions."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
from matplotlib.figure import Figure
import numpy as np

from seqlab.io import save_figure

LAYER_STYLES = ("-", "--", ":", "-.")


def plot_gradient_flow(flows: Sequence, path: Path, title: str = "") -> None:
    """Left: mean ||dL/dh_t|| per step, one colour per run, one line style per layer. Right: ||dL/dx_t||."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    (ax_hidden, ax_input) = fig.subplots(1, 2)
    for k, flow in enumerate(flows):
        colour = f"C{k}"
        for layer, norms in enumerate(flow.hidden):
            label = flow.label + (f" layer {layer}" if len(flow.hidden) > 1 else "")
            ax_hidden.plot(np.arange(len(norms)), np.maximum(norms, 1e-30), LAYER_STYLES[layer % 4],
                           color=colour, label=label)
        if flow.input is not None:
            ax_input.plot(np.arange(len(flow.input)), np.maximum(flow.input, 1e-30), color=colour, label=flow.label)
    ax_hidden.set(yscale="log", xlabel="time step t", ylabel="mean ||dL/dh_t||", title="hidden state")
    ax_input.set(yscale="log", xlabel="time step t", ylabel="mean ||dL/dx_t||", title="input")
    for ax in (ax_hidden, ax_input):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_gates(activity, path: Path, title: str = "") -> None:
    """One row per layer and direction: mean activation per gate (left), saturation fractions (right)."""
    rows = len(activity.layers)
    fig = Figure(figsize=(11, 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False)
    for row, entry in zip(axes, activity.layers):
        where = f"layer {entry['layer']}" + (f" {entry['direction']}" if entry["direction"] != "forward" else "")
        for k, (name, stats) in enumerate(entry["gates"].items()):
            steps = np.arange(len(stats["mean"]))
            row[0].plot(steps, stats["mean"], color=f"C{k}", label=name)
            row[1].plot(steps, stats["high"], color=f"C{k}", label=f"{name} high")
            row[1].plot(steps, stats["low"], "--", color=f"C{k}", label=f"{name} low")
        row[0].set(xlabel="time step t", ylabel="mean activation", title=f"{where}: mean gate value")
        row[1].set(xlabel="time step t", ylabel="fraction of units", ylim=(-0.02, 1.02),
                   title=f"{where}: saturated (high > {activity.threshold:g}, low dashed)")
        for ax in row:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def _padding(ax, length: int, steps: int) -> None:
    """Grey out the padded steps length..steps-1 (not part of the sequence; nothing is drawn there)."""
    if length < steps:
        ax.axvspan(length - 0.5, steps - 0.5, color="0.85", zorder=0, label="padding")
    ax.set_xlim(-0.5, steps - 0.5)


def plot_attribution(signal: np.ndarray, attribution: np.ndarray, attention: np.ndarray | None, steps: int,
                     feature_names: Sequence[str], path: Path, title: str = "", lines: int = 6) -> None:
    """One sequence: its signal with each point coloured by its attribution (the ``lines`` features with the
    largest total |attribution|), the attribution map (feature x time), and the attention weights if any.

    ``signal`` and ``attribution`` are (T_i, F) over the sequence's real steps; ``steps`` is the padded
    length T, whose extra steps are greyed out.
    """
    length, features = signal.shape
    panels = 3 if attention is not None else 2
    fig = Figure(figsize=(10, 2.6 * panels + 0.6), layout="constrained")
    axes = fig.subplots(panels, 1, sharex=True)
    limit = float(np.abs(attribution).max()) or 1.0
    norm = matplotlib.colors.TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit)
    t = np.arange(length)
    ax = axes[0]
    for f in np.argsort(-np.abs(attribution).sum(axis=0))[:lines]:
        ax.plot(t, signal[:, f], color="0.5", lw=0.8, zorder=1)
        points = ax.scatter(t, signal[:, f], c=attribution[:, f], cmap="coolwarm", norm=norm, s=14, zorder=2)
        ax.annotate(feature_names[f], (t[-1], signal[-1, f]), fontsize=7, xytext=(3, 0), textcoords="offset points")
    fig.colorbar(points, ax=ax, label="attribution")
    ax.set(ylabel="normalised value", title="signal, points coloured by attribution")
    _padding(ax, length, steps)
    ax = axes[1]
    masked = np.full((features, steps), np.nan)
    masked[:, :length] = attribution.T
    cmap = matplotlib.colormaps["coolwarm"].with_extremes(bad="0.85")  # padding: grey, not a zero attribution
    image = ax.imshow(masked, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest",
                      extent=(-0.5, steps - 0.5, features - 0.5, -0.5))
    fig.colorbar(image, ax=ax, label="attribution")
    if features <= 16:
        ax.set_yticks(np.arange(features), feature_names, fontsize=7)
    ax.set(ylabel="feature", title="attribution over (time, feature)")
    if attention is not None:
        ax = axes[2]
        ax.bar(t, attention, color="C2", width=0.9)
        ax.set(ylabel="weight", title="attention weights (sum to 1 over the real steps)")
        _padding(ax, length, steps)
    axes[-1].set_xlabel("time step")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
