"""PNG plots of the inspections: gradient flow over time, gate activity, attributions."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from seqlab.io import save_figure  # noqa: E402

LAYER_STYLES = ("-", "--", ":", "-.")


def plot_gradient_flow(flows: Sequence, path: Path, title: str = "") -> None:
    """Left: mean ||dL/dh_t|| per step, one colour per run, one line style per layer. Right: ||dL/dx_t||."""
    fig, (ax_hidden, ax_input) = plt.subplots(1, 2, figsize=(11, 4))
    for k, flow in enumerate(flows):
        colour = f"C{k}"
        for layer, norms in enumerate(flow.hidden):
            label = flow.label + (f" layer {layer}" if len(flow.hidden) > 1 else "")
            ax_hidden.plot(np.arange(len(norms)), np.maximum(norms, 1e-30), LAYER_STYLES[layer % 4],
                           color=colour, label=label)
        ax_input.plot(np.arange(len(flow.input)), np.maximum(flow.input, 1e-30), color=colour, label=flow.label)
    ax_hidden.set(yscale="log", xlabel="time step t", ylabel="mean ||dL/dh_t||", title="hidden state")
    ax_input.set(yscale="log", xlabel="time step t", ylabel="mean ||dL/dx_t||", title="input")
    for ax in (ax_hidden, ax_input):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    plt.close(fig)
