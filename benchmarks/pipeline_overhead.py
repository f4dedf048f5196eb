"""What seqlab's training engine costs: ``train()`` against a bare PyTorch loop doing the same work.

Digits, GRU (hidden 128), 15 epochs without early stopping, batch 64, the
plateau schedule, selection on validation loss, no fitted baselines, one
thread. The bare loop does what the engine does each epoch: shuffled
batches, AdamW, gradient-norm clipping, the loss and accuracy summed per
batch, a validation pass, the plateau schedule stepped on validation loss,
and a copy of the best weights. Both run alternately in one process on the
same prepared data; the figures are medians.

``fit`` compares the training part (``metrics.json``'s ``train_seconds``
against the bare loop's epochs); ``whole`` compares the whole ``train()``
call (data, run folder, fit, evaluation, model.pt, plots, metrics) against
the bare loop plus its own evaluation of the best weights on the test split;
``fit_cpu`` and ``whole_cpu`` are the same in CPU seconds of the process (one
thread: the work done, less sensitive than wall time to other processes on a
busy machine).

Run: ``python benchmarks/pipeline_overhead.py [--repeats 7] [--epochs 15]``
(under ``flock -x /tmp/seqlab-cpu.lock`` on a shared machine).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from seqlab.config import resolve_config
from seqlab.models.registry import build_model
from seqlab.tasks.classification import prepare_bundle
from seqlab.training.module import SequenceTensors
from seqlab.training.pipeline import train


def bare_loop(config, bundle) -> tuple[float, float, float, float, float]:
    """Train like the engine with nothing around it; return the fit and whole wall and CPU seconds (fit, whole,
    fit CPU, whole CPU) and the test accuracy."""
    started, cpu_started = time.perf_counter(), time.process_time()
    torch.manual_seed(config.train.seed)
    options = {k: v for k, v in config.model.items() if k != "name"}
    model = build_model(config.model["name"], bundle.input_size, bundle.num_classes, **options)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=4)
    generator = torch.Generator().manual_seed(config.train.seed)
    train_loader = DataLoader(SequenceTensors(bundle.train), batch_size=config.train.batch_size, shuffle=True,
                              generator=generator)
    val_loader = DataLoader(SequenceTensors(bundle.val), batch_size=512)
    best, best_state = float("inf"), None
    fit_started, fit_cpu_started = time.perf_counter(), time.process_time()
    for _ in range(config.train.epochs):
        model.train()
        total, correct, count = 0.0, 0, 0
        for x, _, y in train_loader:
            logits = model(x)  # (B, C)
            loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.train.clip)
            optimizer.step()
            total += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            count += len(y)
        model.eval()
        with torch.no_grad():
            val_total, val_count = 0.0, 0
            for x, _, y in val_loader:
                val_total += nn.functional.cross_entropy(model(x), y).item() * len(y)
                val_count += len(y)
        val_loss = val_total / val_count
        scheduler.step(val_loss)
        if val_loss < best:
            best, best_state = val_loss, {k: v.detach().clone() for k, v in model.state_dict().items()}
    fit_seconds, fit_cpu = time.perf_counter() - fit_started, time.process_time() - fit_cpu_started
    model.load_state_dict(best_state)
    with torch.no_grad():
        x = torch.from_numpy(bundle.test.X)
        accuracy = float((model(x).argmax(1).numpy() == bundle.test.y).mean())
    return fit_seconds, time.perf_counter() - started, fit_cpu, time.process_time() - cpu_started, accuracy


class FitClock(pl.Callback):
    """CPU seconds of this process from the start of Lightning's fit to its end."""

    def on_fit_start(self, trainer, pl_module):
        self.started = time.process_time()

    def on_fit_end(self, trainer, pl_module):
        self.seconds = time.process_time() - self.started


def seqlab_run(config, root: Path, index: int) -> tuple[float, float, float, float, float]:
    started, cpu_started = time.perf_counter(), time.process_time()
    clock = FitClock()
    result = train(config, root / f"run{index}", quiet=True, callbacks=[clock])
    whole, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return result.metrics["train_seconds"], whole, clock.seconds, cpu, result.metrics["test"]["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    # the settings the bare loop hard-codes (the recipe's auto values would pick other ones), and no fitted
    # baselines (MiniRocket), which the bare loop does not have
    config = resolve_config({"data": {"spec": "digits"}, "model": {"name": "gru"},
                             "train": {"epochs": args.epochs, "patience": 0, "threads": 1, "batch_size": 64,
                                       "schedule": "plateau", "select": "val", "baselines": False}})
    bundle, _ = prepare_bundle(config)
    times = {"bare": [], "seqlab": []}
    with tempfile.TemporaryDirectory() as root:
        seqlab_run(config, Path(root), -1)  # warm-up: imports, first-call costs of Lightning and torch
        bare_loop(config, bundle)
        for i in range(args.repeats):
            times["bare"].append(bare_loop(config, bundle))
            times["seqlab"].append(seqlab_run(config, Path(root), i))
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} thread, digits gru, {args.epochs} epochs, "
          f"median of {args.repeats} alternating runs")
    for part, column in (("fit", 0), ("whole", 1), ("fit_cpu", 2), ("whole_cpu", 3)):
        bare = statistics.median(t[column] for t in times["bare"])
        ours = statistics.median(t[column] for t in times["seqlab"])
        print(f"{part}: bare_s={bare:.3f} seqlab_s={ours:.3f} ratio={ours / bare:.2f}")
    print(f"test accuracy: bare={times['bare'][-1][4]:.4f} seqlab={times['seqlab'][-1][4]:.4f}")


if __name__ == "__main__":
    main()
