"""Default training settings on the tuning sets: test accuracy and seconds per run.

    python benchmarks/recipe_defaults.py [--models gru lstm] [--data digits aeon:BasicMotions ...]
        [--seeds 1] [--set train.KEY=VALUE ...] [--threads 2] [--out runs/bench-recipe]

Trains each model with nothing but ``--data`` and ``--model`` given (plus
any ``--set`` overrides, to compare a rule against the defaults) and prints
one row per data set and model: test accuracy (mean over seeds), the worst
seed, the chance level (share of the largest test class), training seconds
and what the recipe chose (batch size, optimizer steps, selection), read
from each run's ``metrics.json``. The tuning sets are ``digits`` and aeon's
BasicMotions, JapaneseVowels, ItalyPowerDemand and ACSF1; nothing else was
used to choose the defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from pathlib import Path

import numpy as np
import torch

from seqlab.config import apply_override, resolve_config
from seqlab.reports.tables import format_table
from seqlab.training.pipeline import train

TUNING_SETS = ["digits", "aeon:BasicMotions", "aeon:JapaneseVowels", "aeon:ItalyPowerDemand", "aeon:ACSF1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gru", "lstm"])
    parser.add_argument("--data", nargs="+", default=TUNING_SETS)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-recipe"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for spec in args.data:
        for model in args.models:
            accuracies, seconds, chosen, chance = [], [], "", 0.0
            for seed in range(args.seeds):
                tree = {"data": {"spec": spec}, "model": {"name": model}, "train": {"seed": seed}}
                for assignment in args.set:
                    apply_override(tree, assignment)
                started = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):
                    out = args.out / f"{spec.replace(':', '-')}-{model}-seed{seed}"
                    metrics = train(resolve_config(tree), out, overwrite=True, quiet=True).metrics
                seconds.append(time.perf_counter() - started)
                accuracies.append(metrics["test"]["accuracy"])
                matrix = np.array(metrics["test"]["confusion_matrix"])
                chance = float(matrix.sum(axis=1).max() / matrix.sum())
                recipe = metrics.get("recipe", {})
                chosen = " ".join(f"{k}={recipe[k]}" for k in ("batch_size", "steps", "select") if k in recipe)
                if not chosen:
                    chosen = f"epochs={metrics['epochs']} best={metrics['best_epoch']}"
            rows.append([spec, model, float(np.mean(accuracies)), min(accuracies), chance,
                         float(np.mean(seconds)), chosen])
            print(format_table(["data", "model", "test acc", "worst seed", "chance", "seconds", "chosen"],
                               rows[-1:]), flush=True)
    print()
    print(format_table(["data", "model", "test acc", "worst seed", "chance", "seconds", "chosen"], rows))


if __name__ == "__main__":
    main()
