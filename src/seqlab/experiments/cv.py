"""``seqlab cv``: stratified K-fold (repeated, or grouped) cross-validation, one run folder per fold.

Each fold is an ordinary run whose config sets ``data.fold`` (see
:mod:`seqlab.data.folds`): the fold is its test split, validation comes out
of the rest, and the normaliser is fitted on the rest's training part, so
inside the fold. Groups (``groups`` in an ``.npz``, a ``group`` column in a
CSV) keep each subject or session on one side; ``deap:DIR`` is folded by
subject through its own ``data.options`` (``split: subject``,
``test_subjects``), with leave-one-subject-out over all its subjects.
Rerunning reuses finished folds and resumes interrupted ones. ``cv.json``
holds every fold's metrics and their mean and sd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqlab.config import resolve_config
from seqlab.errors import SeqlabError
from seqlab.experiments.compare import flatten_metrics, merge_trees, model_tree, unknown_data, unknown_model
from seqlab.experiments.runner import Job, run_jobs
from seqlab.io import write_json

CV_FILE = "cv.json"
MAX_FOLDS = 1000


@dataclass
class Fold:
    repeat: int
    index: int
    job: Job
    test_groups: list[str] | None = None


def _deap_subjects(spec: str, options: dict[str, Any]) -> list[int]:
    folder = Path(spec[len("deap:"):])
    found = sorted(int(p.name[1:3]) for p in folder.glob("s[0-9][0-9].dat"))
    chosen = options.get("subjects") or found
    if len(chosen) < 2:
        raise SeqlabError(f"--data {spec}: {len(chosen)} subject file(s) (sNN.dat); cross-validation by subject "
                          "needs at least 2")
    return [int(s) for s in chosen]


def plan_folds(model: str, data: str, out: str | Path, folds: int | None = 5, repeats: int = 1,
               groups: bool = False, common: dict[str, Any] | None = None) -> list[Fold]:
    """The folds' jobs; ``folds=None`` with ``groups``: one fold per group (leave one group out)."""
    for reason, flag in ((unknown_model(model), "--model"), (unknown_data(data), "--data")):
        if reason:
            raise SeqlabError(f"{flag}: unknown {reason}; see `seqlab models` and `seqlab datasets`")
    if not 1 <= repeats <= MAX_FOLDS:
        raise SeqlabError(f"--repeats: expected an integer in 1..{MAX_FOLDS}, got {repeats}")
    if folds is not None and not 2 <= folds <= MAX_FOLDS:
        raise SeqlabError(f"--folds: expected an integer in 2..{MAX_FOLDS} (or all, with --groups), got {folds}")
    if folds is None and not groups:
        raise SeqlabError("--folds all: leaves one group out; expected --groups with it")
    label, tree = model_tree(model)
    base = merge_trees(merge_trees(tree, common or {}), {"data": {"spec": data}})
    config = resolve_config(base)
    if config.task != "classification":
        raise SeqlabError(f"--data {data}: a {config.task} data set; seqlab cv folds classification data")
    seed = config.train.seed
    out = Path(out)
    plan = []
    if data.startswith("deap:"):
        subjects = _deap_subjects(data, config.data.options)
        count = len(subjects) if folds is None else folds
        if count > len(subjects):
            raise SeqlabError(f"--folds {count}: larger than the {len(subjects)} subjects of {data}")
        for repeat in range(repeats):
            order = np.random.default_rng(seed + repeat).permutation(subjects) if folds is not None else subjects
            for index, chunk in enumerate(np.array_split(np.asarray(order), count)):
                options = {**config.data.options, "split": "subject", "test_subjects": sorted(map(int, chunk))}
                plan.append(Fold(repeat, index, Job("", merge_trees(base, {"data": {"options": options}}), out),
                                 [f"s{int(s):02d}" for s in sorted(chunk)]))
    else:
        if folds is None:
            from seqlab.data.sources import source_groups

            found = source_groups(data)
            if found is None:
                raise SeqlabError(f"--groups: {data} has no groups; expected a groups array in the .npz or a group "
                                  "column in the CSV")
            folds = len(np.unique(found))
        for repeat in range(repeats):
            for index in range(folds):
                fold = {"folds": folds, "index": index, "repeat": repeat, "groups": groups}
                plan.append(Fold(repeat, index, Job("", merge_trees(base, {"data": {"fold": fold}}), out)))
        from seqlab.data.sources import load_data

        load_data(resolve_config(plan[0].job.tree).data, seed)  # too many folds, no groups: refused now
    for fold in plan:
        name = f"fold{fold.index}" if repeats == 1 else f"repeat{fold.repeat}-fold{fold.index}"
        fold.job = Job(f"{label} fold {fold.index}" + (f" (repeat {fold.repeat})" if repeats > 1 else ""),
                       fold.job.tree, out / name)
        resolve_config(fold.job.tree)
    return plan


def summarise(plan: list[Fold], metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """``folds`` (each fold's metrics), ``mean`` and ``std`` (sample sd over the folds) per metric."""
    rows = []
    for fold, m in zip(plan, metrics):
        row = {"repeat": fold.repeat, "fold": fold.index, "run": fold.job.folder.name, **flatten_metrics(m)}
        if fold.test_groups is not None:
            row["test_subjects"] = fold.test_groups
        rows.append(row)
    keys = [k for k in rows[0] if k not in ("repeat", "fold", "run", "test_subjects")
            and all(isinstance(r.get(k), (int, float)) for r in rows)]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    std = {k: float(np.std([r[k] for r in rows], ddof=1)) if len(rows) > 1 else 0.0 for k in keys}
    return {"folds": rows, "mean": mean, "std": std}


def cross_validate(model: str, data: str, out: str | Path, folds: int | None = 5, repeats: int = 1,
                   groups: bool = False, common: dict[str, Any] | None = None, workers: int = 1,
                   overwrite: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Train every fold (reusing finished ones) and write ``cv.json``, ``report.md`` and ``report.html``.

    Returns what ``cv.json`` holds.
    """
    from seqlab.reports.crossval import write_cv_report

    out = Path(out)
    plan = plan_folds(model, data, out, folds, repeats, groups, common)
    metrics = run_jobs([fold.job for fold in plan], workers, overwrite, report=None if quiet else print)
    summary = {"model": metrics[0]["model"], "data": data, "folds_per_repeat": len(plan) // repeats,
               "repeats": repeats, "grouped": groups or data.startswith("deap:"), **summarise(plan, metrics)}
    write_json(out / CV_FILE, summary)
    files = write_cv_report(summary, plan, out)
    if not quiet:
        accuracy = [summary["mean"].get("test_accuracy"), summary["std"].get("test_accuracy")]
        if None not in accuracy and all(math.isfinite(v) for v in accuracy):
            print(f"test accuracy over {len(plan)} folds: {accuracy[0]:.4f} ± {accuracy[1]:.4f}")
        print(f"Written: {out / CV_FILE}, {files[0]}, {files[1]}")
    return summary
