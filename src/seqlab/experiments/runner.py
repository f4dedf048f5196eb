"""Run many training jobs into their own run folders, reusing finished ones, N at a time.

A job is a config tree and a run folder. A folder whose run finished with
the same resolved config is read, not trained again; an interrupted one is
resumed by :func:`seqlab.training.pipeline.train` (see :mod:`seqlab.runs`).
With ``workers > 1`` the jobs run in that many separate processes
(``spawn``); each is pinned to its share of the usable cores, so that torch's
threads per process (``train.threads: 0`` chooses from the usable cores) add
up to the machine and N workers do not oversubscribe it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from seqlab.config import config_to_yaml, resolve_config
from seqlab.errors import SeqlabError
from seqlab.runs import MARKER_FILE, METRICS_FILE

# Most --workers: each is a process holding a model and its data.
MAX_WORKERS = 64


@dataclass
class Job:
    """One training run: ``tree`` (a config tree for :func:`resolve_config`) into ``folder``."""

    label: str
    tree: dict[str, Any]
    folder: Path


def finished_metrics(job: Job) -> dict[str, Any] | None:
    """The metrics of ``job.folder`` when it holds this job's finished run (same resolved config)."""
    marker = _marker(job.folder)
    if marker is None or not (job.folder / METRICS_FILE).is_file():
        return None
    if marker.get("config_sha256") != _config_sha(job.tree):
        return None
    try:
        return json.loads((job.folder / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _marker(folder: Path) -> dict[str, Any] | None:
    try:
        found = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _config_sha(tree: dict[str, Any]) -> str:
    return hashlib.sha256(config_to_yaml(resolve_config(tree)).encode()).hexdigest()


def train_job(tree: dict[str, Any], folder: Path, overwrite: bool) -> dict[str, Any]:
    """Train one job (in this process) and return its metrics.

    ``overwrite`` replaces a *different* run in the folder; the job's own
    interrupted run is always resumed, never replaced.
    """
    from seqlab.training.pipeline import train

    marker = _marker(folder)
    replace = overwrite and marker is not None and marker.get("config_sha256") != _config_sha(tree)
    return train(resolve_config(tree), folder, overwrite=replace, quiet=True).metrics


def _pin_worker(slots) -> None:
    """Worker initializer: take a slot number and keep to that slot's cores."""
    slot, workers = slots.get()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not cores:
        return
    share = max(1, len(cores) // workers)
    start = (slot * share) % len(cores)
    os.sched_setaffinity(0, cores[start:start + share] or cores[:1])


def check_workers(workers: int) -> None:
    if not 1 <= workers <= MAX_WORKERS:
        raise SeqlabError(f"--workers: expected an integer in 1..{MAX_WORKERS}, got {workers}")


def run_jobs(jobs: list[Job], workers: int = 1, overwrite: bool = False,
             report: Callable[[str], None] | None = print) -> list[dict[str, Any]]:
    """Train every job not finished yet and return all their metrics, in the order of ``jobs``.

    ``report`` receives one progress line per job (None: silent).
    """
    check_workers(workers)
    say = report or (lambda line: None)
    results: list[dict[str, Any] | None] = [finished_metrics(job) for job in jobs]
    pending = [i for i, metrics in enumerate(results) if metrics is None]
    for i, metrics in enumerate(results):
        if metrics is not None:
            say(f"[{i + 1}/{len(jobs)}] {jobs[i].label}: finished earlier, reused ({jobs[i].folder})")

    def done(i: int, metrics: dict[str, Any]) -> None:
        results[i] = metrics
        say(f"[{i + 1}/{len(jobs)}] {jobs[i].label}: {headline(metrics)} "
            f"(trained {metrics['train_seconds']:.1f} s, {jobs[i].folder})")

    if workers == 1 or len(pending) <= 1:
        for i in pending:
            done(i, train_job(jobs[i].tree, jobs[i].folder, overwrite))
        return results  # type: ignore[return-value]
    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    count = min(workers, len(pending))
    for slot in range(count):
        slots.put((slot, count))
    with ProcessPoolExecutor(count, mp_context=context, initializer=_pin_worker, initargs=(slots,)) as pool:
        futures = {pool.submit(train_job, jobs[i].tree, jobs[i].folder, overwrite): i for i in pending}
        remaining = set(futures)
        while remaining:
            finished, remaining = wait(remaining, return_when=FIRST_EXCEPTION)
            for future in finished:
                if future.exception() is not None:
                    for other in remaining:
                        other.cancel()
                    raise future.exception()
                done(futures[future], future.result())
    return results  # type: ignore[return-value]


def headline(metrics: dict[str, Any]) -> str:
    """``test accuracy 0.9312`` (classification), ``test rmse ...`` (forecast), ``val perplexity ...`` (lm)."""
    from seqlab.reports.comparison import primary_metric

    split, name, _ = primary_metric(metrics["task"])
    return f"{split} {name} {metrics[split][name]:.4f}"
