"""Where a training step's time goes: a few steps under torch.profiler, a timeline and a table of regions.

Symbols: B batch, T time steps, F features.

Each profiled step is cut into consecutive regions, labelled on the
timeline with ``torch.profiler.record_function``:

    data loading      the next batch from the run's training data loader
    input projection  the model's layers before its recurrent encoder (a hybrid's convolutions);
                      plain RNN/GRU/LSTM models have none: their input-to-hidden product runs inside
                      the recurrent kernel and is counted in recurrence
    recurrence        the recurrent encoder (torch.nn's fused layer, or the fast backend, whose own
                      ``fast_rnn.forward`` / ``fast_rnn.backward`` ranges show on the timeline)
    head              everything after the encoder, and the loss
    backward          the backward pass of all of these
    optimizer         gradient clipping, AdamW's step and zeroing the gradients

Inference steps (no gradients) get the first four. A region's time is the
duration of its range on the timeline; the step's time is a clock read
around the whole step, apart from them, so the two can be compared (the
regions leave out only the moments between them). Both are those of the
median step (by its clock time): on a shared machine one step in a few can
lose the processor for longer than a step takes, and the median step's own
regions still add up to its time, as medians taken region by region would
not.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.profiler import ProfilerActivity, record_function

from seqlab.errors import SeqlabError
from seqlab.inspect.data import load_classifier
from seqlab.io import write_json
from seqlab.runs import METRICS_FILE

TRAIN_REGIONS = ("data loading", "input projection", "recurrence", "head", "backward", "optimizer")
INFERENCE_REGIONS = TRAIN_REGIONS[:4]
BACKENDS = ("torch", "fast")
PROFILE_FILE = "profile.json"
TRACE_FILE = "trace.json"


class _Regions:
    """Consecutive record_function ranges: ``switch(name)`` ends the open one and starts ``name``."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.current = None

    def switch(self, name: str | None) -> None:
        if self.current is not None:
            self.current.__exit__(None, None, None)
            self.current = None
        if name is not None:
            self.current = record_function(self.prefix + name)
            self.current.__enter__()


@contextlib.contextmanager
def _native_stderr_silenced():
    """Kineto prints a line to the process's stderr as tracing starts and stops; keep it off the user's terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _mark_encoder(encoder: nn.Module, regions: _Regions):
    """Hooks that switch to ``recurrence`` as the encoder starts and to ``head`` as it returns."""
    before = encoder.register_forward_pre_hook(lambda module, args: regions.switch("recurrence"))
    after = encoder.register_forward_hook(lambda module, args, output: regions.switch("head"))
    return before, after


def _batch(iterator, loader, variable_length: bool):
    try:
        x, lengths, y = next(iterator)
    except StopIteration:
        iterator = iter(loader)
        x, lengths, y = next(iterator)
    if variable_length:
        x = x[:, : int(lengths.max())]
    else:
        lengths = None
    return iterator, x, lengths, y


def profile_run(run_dir: str | Path, out: str | Path, backend: str = "torch", steps: int = 5,
                warmup: int = 2, batch_size: int | None = None) -> dict:
    """``seqlab profile``: ``steps`` training and inference steps under torch.profiler.

    Writes ``trace.json`` (Chrome / Perfetto timeline) and ``profile.json``
    (``regions``: name -> milliseconds in the median training step, ``step_ms``,
    and the same under ``inference``) into ``out``; returns the latter. The
    run folder is only read: the steps train a copy of its model.
    """
    from seqlab.inspect.data import inspection_data, recurrent_encoder
    from seqlab.training.module import make_loader

    if backend not in BACKENDS:
        raise SeqlabError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if steps < 1 or warmup < 0:
        raise SeqlabError(f"--steps: expected an integer >= 1, got {steps}")
    run = load_classifier(run_dir, "profile")
    model = copy.deepcopy(run.model)
    encoder = recurrent_encoder(model, run, "profile")
    encoder.backend = backend
    train_config = run.config["train"]
    # the batch size and rate the run trained with: its recipe resolved any ``auto``
    metrics_path = Path(run_dir) / METRICS_FILE
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    trained = metrics.get("recipe", train_config)
    batch_size = batch_size or trained["batch_size"]
    if batch_size < 1:
        raise SeqlabError(f"--batch-size: expected an integer >= 1, got {batch_size}")
    data = inspection_data(run, split="train")
    variable_length = bool(run.extras.get("variable_length"))
    loader = make_loader(data, batch_size, shuffle=True, seed=train_config["seed"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=trained["lr"], weight_decay=train_config["weight_decay"])
    clip = train_config.get("clip") or 0.0
    state = {"iterator": iter(loader)}

    def train_step(regions: _Regions) -> None:
        regions.switch("data loading")
        state["iterator"], x, lengths, y = _batch(state["iterator"], loader, variable_length)
        regions.switch("input projection")
        loss = nn.functional.cross_entropy(model(x, lengths), y)  # (B, C) logits; the hook has switched to head
        regions.switch("backward")
        loss.backward()
        regions.switch("optimizer")
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        regions.switch(None)

    def inference_step(regions: _Regions) -> None:
        with torch.no_grad():
            regions.switch("data loading")
            state["iterator"], x, lengths, _ = _batch(state["iterator"], loader, variable_length)
            regions.switch("input projection")
            model(x, lengths)
            regions.switch(None)

    phases = {"train": (train_step, TRAIN_REGIONS, _Regions("train: ")),
              "inference": (inference_step, INFERENCE_REGIONS, _Regions("inference: "))}
    modes = {"train": model.train, "inference": model.eval}  # set once per phase, outside the timed steps
    step_seconds: dict[str, list[float]] = {name: [] for name in phases}
    for name, (step, _, regions) in phases.items():  # first calls compile kernels, grow buffers: not profiled
        modes[name]()
        hooks = _mark_encoder(encoder, regions)
        for _ in range(warmup):
            step(regions)
        for hook in hooks:
            hook.remove()
    profiler = torch.profiler.profile(activities=[ProfilerActivity.CPU])
    with _native_stderr_silenced():
        profiler.start()
    try:
        for name, (step, _, regions) in phases.items():
            modes[name]()
            hooks = _mark_encoder(encoder, regions)
            for _ in range(steps):
                started = time.perf_counter()
                step(regions)
                step_seconds[name].append(time.perf_counter() - started)
            for hook in hooks:
                hook.remove()
    finally:
        with _native_stderr_silenced():
            profiler.stop()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f".{TRACE_FILE}.tmp"  # the profiler writes the file itself: written aside, then renamed
    profiler.export_chrome_trace(str(partial))
    os.replace(partial, out / TRACE_FILE)
    durations: dict[str, list[float]] = {}  # range name -> ms of each occurrence, one per step, in order
    for event in sorted(profiler.events(), key=lambda event: event.time_range.start):
        durations.setdefault(event.name, []).append(event.cpu_time_total / 1000.0)
    report = {"run": str(run_dir), "model": run.checkpoint["model"]["name"], "backend": backend, "steps": steps,
              "batch_size": batch_size, "threads": torch.get_num_threads()}
    for name, (_, names, regions) in phases.items():
        median = int(np.argsort(step_seconds[name])[len(step_seconds[name]) // 2])  # the median step
        phase = {"regions": {region: round(durations.get(regions.prefix + region, [0.0] * steps)[median], 4)
                             for region in names},
                 "step_ms": round(step_seconds[name][median] * 1000.0, 4),
                 "steps_ms": [round(seconds * 1000.0, 4) for seconds in step_seconds[name]]}
        if name == "train":
            report.update(phase)
        else:
            report[name] = phase
    write_json(out / PROFILE_FILE, report)
    return report
