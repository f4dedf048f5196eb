"""Gradient flow through time of RNN, LSTM and GRU trained on the same long sequences.

Trains each model on one data set (default aeon:GunPoint, T = 150), then
measures with ``seqlab inspect gradients`` the mean ||dL/dh_t|| of the
top layer over the test split, at initialisation and after training, and
prints how much of the gradient at the last step reaches the first
(``h0/hT`` = ||dL/dh_0|| / ||dL/dh_{T-1}||; with a ``last`` head the loss
reads h_{T-1} only, so this is what survives T - 1 steps of the recurrence).

    python benchmarks/gradient_flow.py --out runs/gradient-flow
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from seqlab.config import resolve_config
from seqlab.inspect import gradient_flow, inspect_gradients
from seqlab.inspect.data import inspection_data, recurrent_encoder
from seqlab.io import write_json
from seqlab.models import build_model
from seqlab.reports.tables import format_table
from seqlab.runs import load_run
from seqlab.training.pipeline import train

MODELS = ("rnn", "lstm", "gru")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="aeon:GunPoint")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--hidden-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("runs/gradient-flow"))
    args = parser.parse_args()
    rows, runs = [], []
    for name in MODELS:
        out = args.out / name
        config = resolve_config({"data": {"spec": args.data}, "model": {"name": name, "hidden_size": args.hidden_size},
                                 "train": {"epochs": args.epochs, "patience": 0, "batch_size": 16}})
        metrics = train(config, out, overwrite=True, quiet=True).metrics
        run = load_run(out)
        data = inspection_data(run)
        torch.manual_seed(config.train.seed)
        initial = build_model(name, run.extras["features"], len(run.class_names), hidden_size=args.hidden_size)
        before = gradient_flow(initial, recurrent_encoder(initial, run, "benchmark"), data).hidden[-1]
        after = gradient_flow(run.model, recurrent_encoder(run.model, run, "benchmark"), data).hidden[-1]
        norms = [before[-1], before[0], before[0] / before[-1], after[-1], after[0], after[0] / after[-1]]
        rows.append([name, round(metrics["test"]["accuracy"], 4), *[f"{value:.3g}" for value in norms]])
        runs.append(out)
    inspect_gradients(runs, args.out / "gradients")
    print(f"# {args.data}, T = {len(after)}, hidden {args.hidden_size}, {args.epochs} epochs, test split, "
          f"mean over sequences of the top layer's ||dL/dh_t||")
    print(format_table(["model", "test acc", "init hT", "init h0", "init h0/hT", "trained hT", "trained h0",
                        "trained h0/hT"], rows, markdown=True))
    write_json(args.out / "summary.json", rows)


if __name__ == "__main__":
    main()
