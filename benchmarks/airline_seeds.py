"""The airline preset over several seeds, with every baseline beside it.

    python benchmarks/airline_seeds.py [--seeds 5] [--out runs/bench-airline]

Trains ``configs/airline.yaml`` once per seed and prints, per seed and on
average, the test MAPE / sMAPE / RMSE / MAE of the last 36 months
(1958-01 .. 1960-12) next to the baselines from the same origin (naive,
seasonal naive, naive in the preset's transformed space, ETS, ARIMA; see
``seqlab.baselines.forecast``). The baselines do not depend on the seed:
they are fitted in the first seed's run only.
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
        tree["train"]["baselines"] = seed == 0
        with contextlib.redirect_stdout(io.StringIO()):
            metrics = train(resolve_config(tree), args.out / f"seed{seed}", overwrite=True, quiet=True).metrics
        rows.append([f"seed {seed}"] + [metrics["test"][k] for k in keys] + [metrics["train_seconds"]])
        if seed == 0:
            baselines = metrics["baselines"]
    mean = ["mean"] + [float(np.mean([r[i] for r in rows])) for i in range(1, 6)]
    table = rows + [mean]
    for name, scores in sorted(baselines.items(), key=lambda item: item[1]["mape"]):
        table.append([name] + [scores[k] for k in keys] + [0.0])
    print(format_table(["run", "MAPE %", "sMAPE %", "RMSE", "MAE", "train s"], table))


if __name__ == "__main__":
    main()
