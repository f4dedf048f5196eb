"""The main job: train the core recurrent models on real data and compare them.

``make demo`` runs ``seqlab demo --out runs/demo``: RNN, LSTM and GRU on
``digits`` (each 8x8 image read row by row), a bidirectional GRU on the
variable-length JapaneseVowels set when aeon is installed, then a table of
test accuracy, macro-F1, parameter count and training time, saved beside
the runs.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from seqlab.config import resolve_config  # noqa: E402
from seqlab.io import save_figure, write_text  # noqa: E402
from seqlab.reports.tables import format_table  # noqa: E402
from seqlab.training.pipeline import train  # noqa: E402

DEMO_RUNS = [
    ("rnn", {"data": {"spec": "digits"}, "model": {"name": "rnn"}}),
    ("lstm", {"data": {"spec": "digits"}, "model": {"name": "lstm"}}),
    ("gru", {"data": {"spec": "digits"}, "model": {"name": "gru"}}),
]
# Real UEA/UCR data that the aeon package ships (installed by `make`); skipped without it.
UCR_RUNS = [
    ("bigru-vowels", {"data": {"spec": "aeon:JapaneseVowels"}, "model": {"name": "bigru"}}),
]
HEADER = ["run", "model", "data", "test_accuracy", "test_macro_f1", "params", "train_seconds", "epochs"]


def run_demo(out: str | Path = "runs/demo", quiet: bool = False, epochs: int | None = None) -> list[list]:
    """Train every demo run into ``out/NAME`` and write ``out/summary.md`` and ``out/comparison.png``."""
    out = Path(out)
    rows = []
    runs = DEMO_RUNS + (UCR_RUNS if _has_aeon() else [])
    for name, tree in runs:
        if epochs is not None:
            tree = {**tree, "train": {**tree.get("train", {}), "epochs": epochs}}
        config = resolve_config(tree)
        if not quiet:
            print(f"== {name}: {config.model['name']} on {config.data.spec}", flush=True)
        metrics = train(config, out / name, overwrite=True, quiet=quiet).metrics
        rows.append([name, metrics["model"], config.data.spec, metrics["test"]["accuracy"],
                     metrics["test"]["macro_f1"], metrics["params"], metrics["train_seconds"], metrics["epochs"]])
    table = format_table(HEADER, rows)
    write_text(out / "summary.md", "# seqlab demo\n\n" + format_table(HEADER, rows, markdown=True) + "\n")
    _plot_comparison(rows, out / "comparison.png")
    print(table)
    print(f"\nResults: {out.resolve()} (summary.md, comparison.png, and one run folder per model:"
          " metrics.json, history.csv, model.pt, learning_curves.png, confusion_matrix.png)")
    return rows


def _has_aeon() -> bool:
    import importlib.util

    return importlib.util.find_spec("aeon") is not None


def _plot_comparison(rows: list[list], path: Path) -> None:
    names = [row[0] for row in rows]
    fig, (ax_acc, ax_time) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_acc.bar(names, [row[3] for row in rows], color="tab:blue")
    ax_acc.set(ylabel="test accuracy", ylim=(0, 1), title="accuracy")
    ax_time.bar(names, [row[6] for row in rows], color="tab:orange")
    ax_time.set(ylabel="seconds", title="training time")
    for ax in (ax_acc, ax_time):
        ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)
    plt.close(fig)
