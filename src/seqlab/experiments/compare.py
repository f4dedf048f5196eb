"""``seqlab compare``: models x data sets x seeds, one run folder per cell, ``results.csv`` and a report.

The grid is planned and checked before anything trains: unknown model or
data names are listed together, and data sets of different tasks are
refused. Every cell is an ordinary run folder, ``OUT/DATA/MODEL/seedK``
(``eval``, ``predict`` and ``export`` read it as any other), trained with
the settings common to the grid (a ``--config`` file, flags, ``--set``)
over the model's own config file, if it has one. Rerunning the same
command reuses finished cells and resumes interrupted ones
(:mod:`seqlab.experiments.runner`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from seqlab.config import PRESETS, infer_task, read_config_file, resolve_config
from seqlab.errors import SeqlabError
from seqlab.experiments.runner import Job, run_jobs
from seqlab.io import csv_text, write_text
from seqlab.runs import slug

RESULTS_FILE = "results.csv"
COMPARE_PRESETS = PRESETS / "compare"


@dataclass
class Cell:
    """One run of the grid: ``model`` (a name or a config file's stem) on ``data`` with ``seed``."""

    model: str
    data: str
    seed: int
    job: Job


@dataclass
class Comparison:
    """What :func:`compare` returns: the cells, their metrics (same order) and the files written."""

    cells: list[Cell]
    metrics: list[dict[str, Any]]
    out: Path
    files: list[Path] = field(default_factory=list)
    sections: list[Any] = field(default_factory=list)  # the report's, for printing its tables


def merge_trees(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Config trees merged section by section, ``over`` winning key by key."""
    merged = {key: (dict(value) if isinstance(value, dict) else value) for key, value in base.items()}
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = dict(value) if isinstance(value, dict) else value
    return merged


def model_tree(model: str) -> tuple[str, dict[str, Any]]:
    """``gru`` -> ("gru", {model: {name: gru}}); ``path/x.yaml`` -> ("x", the file's tree)."""
    if model.endswith((".yaml", ".yml")):
        tree = read_config_file(model)
        if not isinstance(tree.get("model"), dict) or "name" not in tree["model"]:
            raise SeqlabError(f"--models {model}: the config file has no model.name")
        return Path(model).stem, tree
    return model, {"model": {"name": model}}


def unknown_model(model: str) -> str | None:
    """Why ``model`` (a name or a config file) is not a model; None when it is one."""
    from seqlab.models.registry import model_names

    if model.endswith((".yaml", ".yml")):
        return None if Path(model).is_file() else f"{model} (file not found)"
    return None if model in model_names() else model


def unknown_data(spec: str) -> str | None:
    """Why ``spec`` names no data set; None when it does (files are checked to exist, not read)."""
    from seqlab.data.sources import BUILTIN, READERS, aeon_names

    if spec in BUILTIN or spec in ("sine", "airline", "text:founding"):
        return None
    if spec.startswith("aeon:"):
        return None if spec[len("aeon:"):] in aeon_names() else f"{spec} (aeon ships no such set)"
    for prefix in ("series:", "text:", "ut-har:", "deap:"):
        if spec.startswith(prefix):
            path = Path(spec[len(prefix):])
            return None if path.exists() else f"{spec} ({path} not found)"
    path = Path(spec)
    if path.suffix.lower() in READERS:
        return None if path.is_file() else f"{spec} (file not found)"
    return spec


def plan_grid(models: Sequence[str], data: Sequence[str], seeds: Sequence[int], out: str | Path,
              common: dict[str, Any] | None = None) -> list[Cell]:
    """Check the grid and lay out its cells, data set by data set, model by model, seed by seed.

    ``common`` is a config tree applied to every cell over the model's own
    config; the grid sets ``data.spec`` and ``train.seed`` last.
    """
    from seqlab.data.sources import aeon_names
    from seqlab.models.registry import model_names

    for flag, values in (("--models", models), ("--data", data), ("--seeds", seeds)):
        if not values:
            raise SeqlabError(f"{flag}: expected at least one value, got none")
        duplicates = sorted({str(v) for v in values if list(values).count(v) > 1})
        if duplicates:
            raise SeqlabError(f"{flag}: {', '.join(duplicates)} given more than once")
    bad_models = [reason for reason in map(unknown_model, models) if reason]
    bad_data = [reason for reason in map(unknown_data, data) if reason]
    if bad_models or bad_data:
        problems = []
        if bad_models:
            problems.append(f"unknown models: {', '.join(bad_models)} (expected names from `seqlab models`: "
                            f"{', '.join(model_names())}, or config files)")
        if bad_data:
            problems.append(f"unknown data sets: {', '.join(bad_data)} (expected digits, sine, airline, "
                            f"text:founding, aeon:NAME with NAME one of {', '.join(aeon_names())}, or existing "
                            "files; see `seqlab datasets`)")
        raise SeqlabError("; ".join(problems))
    common = common or {}
    tasks = {spec: common.get("task", "auto") if common.get("task", "auto") != "auto" else infer_task(spec)
             for spec in data}
    if len(set(tasks.values())) > 1:
        found = ", ".join(f"{spec} is {task}" for spec, task in tasks.items())
        raise SeqlabError(f"--data: the data sets disagree in task ({found}); expected data sets of one task, "
                          "so that their runs can be compared")
    for seed in seeds:
        if not 0 <= seed < 2**32:
            raise SeqlabError(f"--seeds: expected integers in 0 .. 2**32 - 1, got {seed}")
    out = Path(out)
    slugs = {spec: slug(spec) for spec in data}
    labels = [model_tree(m) for m in models]
    for kind, names in (("--data", list(slugs.values())), ("--models", [label for label, _ in labels])):
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise SeqlabError(f"{kind}: two entries share the folder name {clash[0]!r}; rename one")
    cells = []
    for spec in data:
        for label, tree in labels:
            for seed in seeds:
                cell_tree = merge_trees(merge_trees(tree, common), {"data": {"spec": spec}, "train": {"seed": seed}})
                resolve_config(cell_tree)  # every cell's config is checked before anything trains
                folder = out / slugs[spec] / label / f"seed{seed}"
                cells.append(Cell(label, spec, seed, Job(f"{label} on {spec}, seed {seed}", cell_tree, folder)))
    return cells


def flatten_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """One results.csv row's metrics: the run's size and time, every val_/test_ number and the baselines."""
    row = {key: metrics[key] for key in ("params", "train_seconds", "epochs", "best_epoch") if key in metrics}
    for split in ("val", "test"):
        for key, value in metrics.get(split, {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[f"{split}_{key}"] = value
    for name, values in metrics.get("baselines", {}).items():
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[f"baseline_{name}_{key}"] = value
    return row


def results_csv(cells: list[Cell], metrics: list[dict[str, Any]], out: Path) -> str:
    """``results.csv``'s text: model, data, seed, run folder, then every metric (the union over the runs)."""
    rows = [flatten_metrics(m) for m in metrics]
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    return csv_text(["model", "data", "seed", "run"] + columns,
                    [[cell.model, cell.data, cell.seed, str(cell.job.folder.relative_to(out))]
                     + [row.get(key, "") for key in columns] for cell, row in zip(cells, rows)])


def compare(models: Sequence[str], data: Sequence[str], seeds: Sequence[int], out: str | Path,
            common: dict[str, Any] | None = None, workers: int = 1, overwrite: bool = False,
            quiet: bool = False, title: str = "") -> Comparison:
    """Train the grid into ``out`` (reusing finished cells) and write ``results.csv``, ``report.md`` and
    ``report.html``.

    Args:
        models: model names (``seqlab models``) or config files (their stem labels the runs).
        data: data specs, all of one task.
        seeds: a run per seed for every (model, data) pair.
        common: config tree applied to every run (``{"train": {"epochs": 2}}``).
        workers: runs trained at once, each in its own process.
        overwrite: replace cells whose folder holds a run of another config.
    """
    out = Path(out)
    cells = plan_grid(models, data, seeds, out, common)
    return run_cells(cells, out, workers, overwrite, quiet, title or "seqlab compare")


def run_cells(cells: list[Cell], out: Path, workers: int = 1, overwrite: bool = False, quiet: bool = False,
              title: str = "seqlab compare", extra_sections: Sequence[Any] = ()) -> Comparison:
    """Train (or reuse) ``cells`` and write the results and the report; ``extra_sections`` go at its end."""
    metrics = run_jobs([cell.job for cell in cells], workers, overwrite, report=None if quiet else print)
    return write_comparison(cells, metrics, out, quiet, title, extra_sections)


def write_comparison(cells: list[Cell], metrics: list[dict[str, Any]], out: Path, quiet: bool = False,
                     title: str = "seqlab compare", extra_sections: Sequence[Any] = ()) -> Comparison:
    """``results.csv``, ``report.md`` and ``report.html`` of trained ``cells``; ``extra_sections`` at the end."""
    from seqlab.reports.comparison import comparison_sections
    from seqlab.reports.document import write_report

    text = results_csv(cells, metrics, out)
    files = [out / RESULTS_FILE, out / "report.md", out / "report.html"]
    if not extra_sections and _unchanged(files, text, title):
        if not quiet:
            print(f"Nothing changed: {files[0]}, {files[1]} and {files[2]} are up to date")
        return Comparison(cells, metrics, out, files)
    write_text(files[0], text)
    sections = comparison_sections(cells, metrics) + list(extra_sections)
    seeds = sorted({cell.seed for cell in cells})
    intro = (f"{len(cells)} runs: {len({c.model for c in cells})} models on {len({c.data for c in cells})} data "
             f"sets, seeds {', '.join(map(str, seeds))}. Mean ± sd over the seeds; one run folder per cell; "
             f"every metric of every run in {RESULTS_FILE}.")
    write_report(out, title, sections, intro)
    if not quiet:
        print(f"Results: {files[0]}; report: {files[1]} and {files[2]}")
    return Comparison(cells, metrics, out, files, sections)


def _unchanged(files: list[Path], text: str, title: str) -> bool:
    """Whether the report in ``files`` is of these very results (a rerun that trained nothing)."""
    try:
        return files[0].read_text(encoding="utf-8") == text and files[2].is_file() and \
            files[1].read_text(encoding="utf-8").startswith(f"# {title}\n")
    except OSError:
        return False


def read_preset(name: str) -> dict[str, Any]:
    """A compare preset (``presets/compare/NAME.yaml``, or a file): ``models``, ``data``, ``seeds``, ``config``."""
    from seqlab.config import load_yaml

    path = Path(name)
    if not path.is_file() and (COMPARE_PRESETS / f"{name}.yaml").is_file():
        path = COMPARE_PRESETS / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in COMPARE_PRESETS.glob("*.yaml")))
        raise SeqlabError(f"--preset {name}: not found; expected a file or one of: {names}")
    tree = load_yaml(path.read_text(encoding="utf-8"), f"--preset {path}")
    if not isinstance(tree, dict):
        raise SeqlabError(f"--preset {path}: expected a mapping with models, data, seeds, config")
    unknown = sorted(set(tree) - {"title", "models", "data", "seeds", "config"})
    if unknown:
        raise SeqlabError(f"--preset {path}: unknown key {unknown[0]!r}; expected title, models, data, seeds, config")
    for key in ("models", "data", "seeds"):
        if key in tree and not isinstance(tree[key], list):
            raise SeqlabError(f"--preset {path}: {key}: expected a list, got {tree[key]!r}")
    if not isinstance(tree.get("config", {}), dict):
        raise SeqlabError(f"--preset {path}: config: expected a mapping of config sections")
    tree["models"] = [_model_file(str(m), path.parent) for m in tree.get("models", [])]
    return tree


def _model_file(model: str, preset_folder: Path) -> str:
    """A preset's model file that is not found from here, looked for beside the preset, then among the
    packaged presets; names and files found as given are returned unchanged."""
    if not model.endswith((".yaml", ".yml")) or Path(model).is_file():
        return model
    for place in (preset_folder, PRESETS):
        if (place / model).is_file():
            return str(place / model)
    return model
