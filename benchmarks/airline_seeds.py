"""The airline preset over several seeds, with both baselines beside it.

    python benchmarks/airline_seeds.py [--seeds 5] [--out runs/bench-airline]

Trains ``configs/airline.yaml`` once per seed and prints, per seed and on
average, the test MAPE / sMAPE / RMSE / MAE of the last 36 months
(1958-01 .. 1960-12) next to the seasonal-naive and naive forecasts from
the same origin.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import numpy as np
import yaml

from seqlab.config import resolve_config
from seqlab.reports.tables import format_table
from seqlab.training.pipeline import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--config", type=Path, default=Path(__file__).parent.parent / "configs" / "airline.yaml")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-airline"))
    args = parser.parse_args()
    tree = yaml.safe_load(args.config.read_text())
    rows, keys = [], ("mape", "smape", "rmse", "mae")
    for seed in range(args.seeds):
        tree["train"]["seed"] = seed
        with contextlib.redirect_stdout(io.StringIO()):
            metrics = train(resolve_config(tree), args.out / f"seed{seed}", overwrite=True, quiet=True).metrics
        rows.append([f"seed {seed}"] + [metrics["test"][k] for k in keys] + [metrics["train_seconds"]])
        baselines = metrics["baselines"]
    mean = ["mean"] + [float(np.mean([r[i] for r in rows])) for i in range(1, 6)]
    table = rows + [mean]
    for name in ("seasonal_naive", "naive"):
        table.append([name] + [baselines[name][k] for k in keys] + [0.0])
    print(format_table(["run", "MAPE %", "sMAPE %", "RMSE", "MAE", "train s"], table))


if __name__ == "__main__":
    main()
