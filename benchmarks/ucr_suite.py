"""Every zoo classifier with default settings on digits and four UCR/UEA sets, over seeds, beside published figures.

    python benchmarks/ucr_suite.py [--models lstm-fcn,gru-fcn] [--data digits,aeon:BasicMotions]
                                   [--seeds 3] [--set model.KEY=VALUE --tag NAME] [--out runs/bench-ucr]

Each (data set, model, seed) trains once with nothing but ``--data``,
``--model`` and ``train.seed`` set (plus any ``--set``), into
``OUT/DATA/MODEL/seedN``; a run folder that already holds a finished run of
the same config is read instead of trained again, so the suite can be run in
parts. It writes ``OUT/ucr_suite.md`` (accuracy mean ± sd over the seeds and
mean training seconds, one row per model, published accuracies below),
``OUT/ucr_suite.csv`` (one row per run) and ``OUT/ucr_suite.json``, and
prints the Markdown table. ``--tag`` names a variant row (``lstm-fcn
shuffle`` for ``--set model.dimension_shuffle=true --tag shuffle``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np

from seqlab.config import apply_override, config_to_yaml, resolve_config
from seqlab.io import write_json, write_text
from seqlab.models import get_model_entry, model_names
from seqlab.runs import METRICS_FILE
from seqlab.training.pipeline import train

DATA = ("digits", "aeon:BasicMotions", "aeon:JapaneseVowels", "aeon:ItalyPowerDemand", "aeon:ACSF1")

# Published test accuracies on each set's own train/test split (BENCHMARKS.md gives the sources):
# Fawaz et al. 2019, "Deep learning for time series classification: a review" (mean of 10 runs; JapaneseVowels from
# its MTS archive table, ItalyPowerDemand from its UCR 2015 table); ACSF1 is not in that paper: FCN and ResNet are the
# mean of the 5 runs in its repository's results-ucr-128.csv (hfawaz/dl-4-tsc), InceptionTime from
# results-InceptionTime-128.csv (hfawaz/InceptionTime, Fawaz et al. 2020), ROCKET from results/results_ucr.csv
# (angus924/rocket, Dempster et al. 2020, mean of 10 runs); LSTM-FCN from Karim et al. 2017 (titu1994/LSTM-FCN,
# Results/train_loss_old_datasets.csv, selection on training loss). None: no figure found, the cell stays empty.
PUBLISHED: dict[str, dict[str, float | None]] = {
    "FCN": {"BasicMotions": None, "JapaneseVowels": 0.993, "ItalyPowerDemand": 0.961, "ACSF1": 0.898},
    "ResNet": {"BasicMotions": None, "JapaneseVowels": 0.992, "ItalyPowerDemand": 0.963, "ACSF1": 0.916},
    "InceptionTime": {"BasicMotions": None, "JapaneseVowels": None, "ItalyPowerDemand": 0.965, "ACSF1": 0.920},
    "LSTM-FCN": {"BasicMotions": None, "JapaneseVowels": None, "ItalyPowerDemand": 0.962, "ACSF1": None},
    "ROCKET": {"BasicMotions": None, "JapaneseVowels": None, "ItalyPowerDemand": 0.970, "ACSF1": 0.886},
}


def classifiers() -> list[str]:
    """Every zoo model that classifies feature sequences (token models read ids, not these sets)."""
    return [n for n in model_names() if "classification" in get_model_entry(n).tasks and not get_model_entry(n).tokens]


def label(spec: str) -> str:
    return spec.split(":", 1)[-1]


def run_one(spec: str, model: str, seed: int, overrides: list[str], folder: Path) -> dict:
    """Train (or read back) one run; returns its accuracy, training seconds and epochs."""
    tree = {"data": {"spec": spec}, "model": {"name": model}, "train": {"seed": seed}}
    for assignment in overrides:
        apply_override(tree, assignment)
    config = resolve_config(tree)
    metrics_file = folder / METRICS_FILE
    done = metrics_file.is_file() and (folder / "config.yaml").is_file() and \
        (folder / "config.yaml").read_text() == config_to_yaml(config)
    if not done:
        with contextlib.redirect_stdout(io.StringIO()):
            train(config, folder, overwrite=True, quiet=True)
    metrics = json.loads(metrics_file.read_text())
    return {"data": label(spec), "model": model, "seed": seed, "accuracy": metrics["test"]["accuracy"],
            "train_seconds": metrics["train_seconds"], "epochs": metrics["epochs"], "params": metrics["params"],
            "reused": done}


def summarise(runs: list[dict]) -> dict[tuple[str, str], dict]:
    cells: dict[tuple[str, str], dict] = {}
    for key in sorted({(r["row"], r["data"]) for r in runs}):
        chosen = [r for r in runs if (r["row"], r["data"]) == key]
        accuracy = np.array([r["accuracy"] for r in chosen])
        cells[key] = {"mean": float(accuracy.mean()), "sd": float(accuracy.std(ddof=1)) if len(chosen) > 1 else 0.0,
                      "seeds": len(chosen), "train_seconds": float(np.mean([r["train_seconds"] for r in chosen]))}
    return cells


def markdown(runs: list[dict], data: list[str]) -> str:
    cells = summarise(runs)
    columns = [label(s) for s in data]
    rows = list(dict.fromkeys(r["row"] for r in runs))
    lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for row in rows:
        shown = []
        for column in columns:
            cell = cells.get((row, column))
            shown.append("" if cell is None else
                         f"{cell['mean']:.3f} ± {cell['sd']:.3f} ({cell['train_seconds']:.0f} s, n={cell['seeds']})")
        lines.append(f"| {row} | " + " | ".join(shown) + " |")
    for name, values in PUBLISHED.items():
        shown = ["" if values.get(c) is None else f"{values[c]:.3f}" for c in columns]
        lines.append(f"| {name} (published) | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(classifiers()), help="comma-separated zoo names (default: all "
                        "classifiers of feature sequences)")
    parser.add_argument("--data", default=",".join(DATA), help="comma-separated data specs")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per (data, model)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="a config override for every run (repeatable), e.g. model.dimension_shuffle=true")
    parser.add_argument("--tag", default="", help="suffix naming the variant in the table and the run folders")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-ucr"))
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    data = [d for d in args.data.split(",") if d]
    results = args.out / "ucr_suite.json"
    runs = json.loads(results.read_text())["runs"] if results.is_file() else []
    for spec in data:
        for model in models:
            row = f"{model} {args.tag}".strip()
            for seed in range(args.seeds):
                folder = args.out / label(spec) / row.replace(" ", "-") / f"seed{seed}"
                record = {"row": row, "overrides": args.overrides, **run_one(spec, model, seed, args.overrides, folder)}
                runs = [r for r in runs if (r["row"], r["data"], r["seed"]) != (row, record["data"], seed)] + [record]
                print(f"{record['data']:18s} {row:28s} seed {seed}: accuracy {record['accuracy']:.4f} "
                      f"({record['train_seconds']:.0f} s{', read back' if record['reused'] else ''})", flush=True)
                write_json(results, {"runs": runs})  # after every run, so a stopped suite keeps what it did
    columns = list(dict.fromkeys([label(d) for d in DATA] + [r["data"] for r in runs]))
    table = markdown(runs, [c for c in columns if any(r["data"] == c for r in runs)])
    write_text(args.out / "ucr_suite.md", table + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["data", "row", "model", "seed", "accuracy", "train_seconds", "epochs",
                                                "params"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(runs)
    write_text(args.out / "ucr_suite.csv", buffer.getvalue())
    print(table)


if __name__ == "__main__":
    main()
