"""The main job: train and compare seqlab's models on real data, offline.

``make demo`` runs ``seqlab demo --out runs/demo``:

* classification: RNN, LSTM and GRU on ``digits`` (each 8x8 image read row by
  row); a bidirectional GRU on the variable-length
  JapaneseVowels archive and the sensing models (CNN-GRU serial and parallel,
  ABLSTM, 1D-CNN + LSTM/GRU, TCN) beside a GRU on BasicMotions (motion
  sensors); every run beside the majority-class and MiniRocket baselines of
  its data (:mod:`seqlab.baselines`);
* forecasting: the airline preset (last 36 months) beside its baselines
  (naive, seasonal naive, naive in the preset's transformed space, ETS, ARIMA);
* language modelling: a character model on the shipped founding documents,
  beside the unigram and Kneser-Ney n-gram baselines;
* the seeds' sine experiment (RNN, LSTM, GRU rolled out from one value).

Each part prints a table; ``summary.md`` collects them beside the run folders.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from matplotlib.figure import Figure

from seqlab.config import read_config_file, resolve_config
from seqlab.experiments.sine import run_sine_experiment
from seqlab.io import save_figure, write_text
from seqlab.reports.tables import format_table
from seqlab.training.pipeline import train

# Every demo run has a fixed step budget below the recipe's (1,000 steps at least), so the whole demo
# stays within 3 minutes on 2 cores beside another busy process: digits 300 steps (15 epochs),
# the UEA/UCR runs 200.
DIGITS_STEPS = 300
UCR_STEPS = 200
CLASSIFICATION_RUNS = [
    (name, {"data": {"spec": "digits"}, "model": {"name": name}, "train": {"steps": DIGITS_STEPS}})
    for name in ("rnn", "lstm", "gru")
]
# Real UEA/UCR data that the aeon package ships.
# BasicMotions: accelerometer and gyroscope (6 channels, 100 steps), 4 activities - the
# sensing models' home ground.
UCR_RUNS = [
    ("bigru-vowels", {"data": {"spec": "aeon:JapaneseVowels"}, "model": {"name": "bigru"},
                      "train": {"steps": UCR_STEPS}}),
] + [
    (f"{name}-motions", {"data": {"spec": "aeon:BasicMotions"}, "model": {"name": name}, "train": {"steps": UCR_STEPS}})
    for name in ("gru", "cnn-gru", "cnn-gru-parallel", "ablstm", "cnn1d-lstm", "cnn1d-gru", "tcn")
]
LM_RUN = ("gru-lm", {"data": {"spec": "text:founding"}, "model": {"name": "gru", "hidden_size": 256},
                     "train": {"epochs": 12, "batch_size": 32}})


def _train(name: str, tree: dict, out: Path, quiet: bool, epochs: int | None, fitted_baselines: bool) -> dict:
    train_section = {**tree.get("train", {}), "baselines": fitted_baselines}
    if epochs is not None:
        train_section["epochs"] = epochs
    tree = {**tree, "train": train_section}
    config = resolve_config(tree)
    if not quiet:
        print(f"== {name}: {config.model['name']} on {config.data.spec} ({config.task})", flush=True)
    return train(config, out / name, overwrite=True, quiet=quiet).metrics


def run_demo(out: str | Path = "runs/demo", quiet: bool = False, epochs: int | None = None,
             fitted_baselines: bool = True) -> dict[str, list]:
    """Run every part into ``out`` and write ``out/summary.md`` and ``out/comparison.png``.

    ``fitted_baselines=False`` runs with ``train.baselines: false`` (no MiniRocket, ETS, ARIMA, n-gram).
    """
    out = Path(out)
    sections: dict[str, tuple[list[str], list[list]]] = {}

    header = ["run", "model", "data", "test_accuracy", "test_macro_f1", "params", "train_seconds", "epochs",
              "majority_accuracy", "minirocket_accuracy"]
    rows = []
    for name, tree in CLASSIFICATION_RUNS + UCR_RUNS:
        m = _train(name, tree, out, quiet, epochs, fitted_baselines)
        baselines = m.get("baselines", {})
        rows.append([name, m["model"], m["data"]["spec"], m["test"]["accuracy"], m["test"]["macro_f1"],
                     m["params"], m["train_seconds"], m["epochs"]]
                    + [baselines.get(b, {}).get("accuracy", "-") for b in ("majority", "minirocket")])
    sections["Classification"] = (header, rows)

    m = _train("airline", read_config_file("airline"), out, quiet, epochs, fitted_baselines)
    sections["Forecasting: airline, last 36 months (1958-01 .. 1960-12)"] = (
        ["run", "model", "MAPE %", "sMAPE %", "RMSE", "MAE", "params", "train_seconds"],
        [["airline", m["model"], m["test"]["mape"], m["test"]["smape"], m["test"]["rmse"], m["test"]["mae"],
          m["params"], m["train_seconds"]]]
        + [[name, "baseline", b["mape"], b["smape"], b["rmse"], b["mae"], 0, 0.0] for name, b in m["baselines"].items()],
    )

    name, tree = LM_RUN
    m = _train(name, tree, out, quiet, epochs, fitted_baselines)
    sections["Character language model: founding documents (validation tail)"] = (
        ["run", "model", "val_perplexity", "bits_per_char", "params", "train_seconds"],
        [[name, m["model"], m["val"]["perplexity"], m["val"]["bits_per_char"], m["params"], m["train_seconds"]]]
        + [[baseline if "order" not in b else f"{baseline} (order {b['order']})", "baseline", b["perplexity"],
            b["bits_per_char"], 0, 0.0] for baseline, b in m["baselines"].items()],
    )

    with contextlib.redirect_stdout(io.StringIO()):
        sine = run_sine_experiment(out / "sine", quiet=True)
    sections["Sine: 100 steps generated from sin(0) with carried state (300 iterations)"] = (
        ["model", "train_mse", "rollout_rmse"],
        [[cell, r["train_mse"], r["rollout_rmse"]] for cell, r in sine["models"].items()],
    )

    markdown = ["# seqlab demo", ""]
    for title, (head, body) in sections.items():
        print(f"\n{title}\n" + format_table(head, body))
        markdown += [f"## {title}", "", format_table(head, body, markdown=True), ""]
    write_text(out / "summary.md", "\n".join(markdown))
    _plot_comparison(sections["Classification"][1], out / "comparison.png")
    print(f"\nResults: {out.resolve()}\n  summary.md and comparison.png; one folder per run (metrics.json, history.csv,"
          " model.pt, plots: learning_curves.png, confusion_matrix.png, forecast.png); sine/sine_rollout.png;"
          " gru-lm/samples.txt")
    return {title: body for title, (_, body) in sections.items()}


def _plot_comparison(rows: list[list], path: Path) -> None:
    names = [row[0] for row in rows]
    fig = Figure(figsize=(9, 3.5))
    (ax_acc, ax_time) = fig.subplots(1, 2)
    ax_acc.bar(names, [row[3] for row in rows], color="tab:blue")
    ax_acc.set(ylabel="test accuracy", ylim=(0, 1), title="accuracy")
    ax_time.bar(names, [row[6] for row in rows], color="tab:orange")
    ax_time.set(ylabel="seconds", title="training time")
    for ax in (ax_acc, ax_time):
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(axis="x", labelrotation=20)
    save_figure(fig, path)
