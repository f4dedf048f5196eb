"""The main job: a ``seqlab compare`` of seqlab's models on real data, plus forecasting, language
modelling and the seeds' sine experiment, all in one report, offline.

``make demo`` runs ``seqlab demo --out runs/demo``:

* classification, as a compare grid (seed 0): RNN, LSTM and GRU on
  ``digits`` (each 8x8 image read row by row), the variable-length
  JapaneseVowels archive and BasicMotions (motion sensors), so that the
  report ranks them over 3 data sets with a critical-difference diagram;
  and two sensing models (1D-CNN + GRU, TCN) beside them on BasicMotions
  (the others through ``seqlab compare``); every run beside the
  majority-class and MiniRocket baselines of its data (:mod:`seqlab.baselines`);
* forecasting: the airline preset (last 36 months) beside its baselines
  (naive, seasonal naive, naive in the preset's transformed space, ETS, ARIMA);
* language modelling: a character model on the shipped founding documents,
  beside the unigram and Kneser-Ney n-gram baselines;
* the seeds' sine experiment (RNN, LSTM, GRU rolled out from one value).

Everything lands in ``out``: one run folder per run, ``results.csv``, and
``report.md`` / ``report.html`` (the compare report with a section per
further part). A rerun reuses the runs that finished with the same settings.
"""

from __future__ import annotations

from pathlib import Path

from seqlab.config import read_config_file
from seqlab.experiments.compare import merge_trees, plan_grid, write_comparison
from seqlab.experiments.runner import Job, run_jobs
from seqlab.experiments.sine import run_sine_experiment
from seqlab.reports.document import Image, Section, Table, Text
from seqlab.reports.tables import format_table

# Every demo run has a fixed step budget below the recipe's (1,000 steps at least), so the whole demo
# stays within 3 minutes on 2 cores beside another busy process: digits 300 steps (15 epochs),
# the UEA/UCR runs 200.
DIGITS_STEPS = 300
UCR_STEPS = 200
CORE_MODELS = ["rnn", "lstm", "gru"]
# data spec -> step budget; real UEA/UCR data that the aeon package ships. BasicMotions: accelerometer
# and gyroscope (6 channels, 100 steps), 4 activities - the sensing models' home ground.
CLASSIFICATION_DATA = {"digits": DIGITS_STEPS, "aeon:JapaneseVowels": UCR_STEPS, "aeon:BasicMotions": UCR_STEPS}
SENSING_MODELS = ["cnn1d-gru", "tcn"]  # the fastest hybrid and the convolutional rival: the demo stays under 3 min
LM_TREE = {"data": {"spec": "text:founding"}, "model": {"name": "gru", "hidden_size": 256},
           "train": {"epochs": 12, "batch_size": 32}}


def run_demo(out: str | Path = "runs/demo", quiet: bool = False, epochs: int | None = None,
             fitted_baselines: bool = True) -> dict[str, list]:
    """Run every part into ``out``; write ``results.csv``, ``report.md`` and ``report.html``.

    ``quiet`` leaves out the progress lines, not the tables. ``epochs`` caps every run's epochs (a quick
    look); ``fitted_baselines=False`` runs with
    ``train.baselines: false`` (no MiniRocket, ETS, ARIMA, n-gram). Returns each report table's rows
    by title.
    """
    out = Path(out)
    common = {"train": {"baselines": fitted_baselines, **({"epochs": epochs} if epochs is not None else {})}}
    cells = []
    for spec, steps in CLASSIFICATION_DATA.items():
        models = CORE_MODELS + (SENSING_MODELS if spec == "aeon:BasicMotions" else [])
        cells += plan_grid(models, [spec], [0], out, merge_trees({"train": {"steps": steps}}, common))
    say = None if quiet else print
    metrics = run_jobs([cell.job for cell in cells], overwrite=True, report=say)
    airline, lm = run_jobs([Job("airline forecast", merge_trees(read_config_file("airline"), common), out / "airline"),
                            Job("gru character model", merge_trees(LM_TREE, common), out / "gru-lm")],
                           overwrite=True, report=say)
    sine = run_sine_experiment(out / "sine", quiet=True)
    extra = [_forecast_section(airline, out / "airline"), _lm_section(lm, out / "gru-lm"),
             _sine_section(sine, out / "sine")]
    comparison = write_comparison(cells, metrics, out, quiet=True, title="seqlab demo", extra_sections=extra)
    tables = {}
    for section in comparison.sections:
        for block in section.blocks:
            if isinstance(block, Table):
                title = block.caption or section.title
                tables[title] = [list(row) for row in block.rows]
                print(f"\n{title}\n" + format_table(block.header, block.rows))
    print(f"\nResults: {out.resolve()}\n  report.html (self-contained) and report.md, results.csv; one folder "
          "per run (metrics.json, history.csv, model.pt, plots), airline/, gru-lm/samples.txt, sine/")
    return tables


def _forecast_section(m: dict, folder: Path) -> Section:
    rows = [["lstm (airline preset)", m["test"]["mape"], m["test"]["smape"], m["test"]["rmse"], m["test"]["mae"],
             m["params"], m["train_seconds"]]]
    rows += [[f"baseline: {name}", b["mape"], b["smape"], b["rmse"], b["mae"], "-", "-"]
             for name, b in m["baselines"].items()]
    return Section("Forecasting: airline passengers, last 36 months (1958-01 .. 1960-12)", [
        Table(["run", "MAPE %", "sMAPE %", "RMSE", "MAE", "params", "train s"], rows, "airline: test"),
        Image("airline-forecast", folder / "forecast.png", "airline: the test forecast against the truth")])


def _lm_section(m: dict, folder: Path) -> Section:
    rows = [["gru (hidden 256)", m["val"]["perplexity"], m["val"]["bits_per_char"], m["params"], m["train_seconds"]]]
    rows += [[f"baseline: {name}" + (f" (order {b['order']})" if "order" in b else ""), b["perplexity"],
              b["bits_per_char"], "-", "-"] for name, b in m["baselines"].items()]
    sample = (folder / "samples.txt").read_text(encoding="utf-8").strip()[:300]
    return Section("Character language model: founding documents (validation tail)", [
        Table(["run", "val perplexity", "bits/char", "params", "train s"], rows, "language model: validation"),
        Text(f"Sampled at temperature 0.8: {sample}")])


def _sine_section(sine: dict, folder: Path) -> Section:
    rows = [[cell, r["train_mse"], r["rollout_rmse"]] for cell, r in sine["models"].items()]
    return Section(f"The seeds' sine experiment: 100 steps generated from sin(0), {sine['iterations']} iterations", [
        Table(["model", "train MSE", "rollout RMSE"], rows, "sine: RNN, LSTM and GRU"),
        Image("sine-rollout", folder / "sine_rollout.png", "each model's rollout against sin(t)")])
