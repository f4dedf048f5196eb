"""The report of a grid of runs: per data set, tables of mean ± sd over seeds beside the baselines,
grouped bar charts with error bars and overlaid learning curves; across data sets, the ranks and a
critical-difference diagram (Friedman, then pairwise Wilcoxon with Holm's correction, as aeon draws it).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from seqlab.reports.document import Figure, Section, Table, Text, new_figure
from seqlab.runs import slug

# task -> the metrics a report shows: (split, name, higher is better); the first one ranks the models.
TASK_METRICS = {
    "classification": [("test", "accuracy", True), ("test", "macro_f1", True)],
    "regression": [("test", "rmse", False), ("test", "mae", False)],
    "forecast": [("test", "rmse", False), ("test", "mae", False), ("test", "smape", False)],
    "lm": [("val", "perplexity", False), ("val", "bits_per_char", False)],
}
CD_ALPHA = 0.05
HATCHES = ("//", "..", "xx", "\\\\")  # one per baseline in the bar charts


def task_metrics(task: str) -> list[tuple[str, str, bool]]:
    return TASK_METRICS.get(task, TASK_METRICS["classification"])


def primary_metric(task: str) -> tuple[str, str, bool]:
    """(split, metric, higher is better) that ranks runs of ``task``."""
    return task_metrics(task)[0]


def mean_sd(values: Sequence[float]) -> str:
    """``0.9312 ± 0.0041`` (sample sd over the seeds); one value alone; ``-`` for none."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "-"
    digits = 4 if abs(float(np.mean(values))) < 10 else 1
    text = f"{np.mean(values):.{digits}f}"
    return text if len(values) == 1 else f"{text} ± {np.std(values, ddof=1):.{digits}f}"


def read_history(folder: Path) -> list[dict[str, float]]:
    """``history.csv`` of a run folder as rows of numbers (empty when missing)."""
    path = Path(folder) / "history.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]


def _label(metric: str) -> str:
    return metric.replace("_", "-") if metric != "macro_f1" else "macro-F1"


def comparison_sections(cells: Sequence[Any], metrics: Sequence[dict[str, Any]]) -> list[Section]:
    """The report's sections for ``cells`` (with ``.model``, ``.data``, ``.seed``, ``.job.folder``)."""
    task = metrics[0]["task"]
    wanted = task_metrics(task)
    models = list(dict.fromkeys(c.model for c in cells))
    data_sets = list(dict.fromkeys(c.data for c in cells))
    sections = []
    for spec in data_sets:
        runs = [(c, m) for c, m in zip(cells, metrics) if c.data == spec]
        sections.append(_data_section(spec, runs, models, wanted))
    if len(data_sets) > 1:
        sections.append(across_data_sets(cells, metrics))
    return sections


def _data_section(spec: str, runs, models: list[str], wanted) -> Section:
    present = [m for m in models if any(c.model == m for c, _ in runs)]
    header = ["model", "runs"] + [f"{split} {_label(name)}" for split, name, _ in wanted] + \
        ["params", "train s (mean)", "epochs (mean)"]
    rows, bars = [], {}
    for model in present:
        mine = [m for c, m in runs if c.model == model]
        values = {name: [m[split].get(name) for m in mine] for split, name, _ in wanted}
        bars[model] = values
        rows.append([model, len(mine)] + [mean_sd(values[name]) for _, name, _ in wanted]
                    + [mine[0]["params"], float(np.mean([m["train_seconds"] for m in mine])),
                       float(np.mean([m["epochs"] for m in mine]))])
    by_seed = {c.seed: m.get("baselines", {}) for c, m in runs}  # a baseline depends on the split, not the model
    names = list(dict.fromkeys(name for baselines in by_seed.values() for name in baselines))
    baseline_bars = {}
    for name in names:
        values = {metric: [b[name].get(metric) for b in by_seed.values() if name in b] for _, metric, _ in wanted}
        if not any(v is not None for vs in values.values() for v in vs):
            continue
        baseline_bars[f"baseline {name}"] = values
        rows.append([f"baseline: {name}", len(by_seed)] + [mean_sd(values[metric]) for _, metric, _ in wanted]
                    + ["-", "-", "-"])
    seeds = ", ".join(map(str, sorted(by_seed)))
    blocks = [Table(header, rows, f"{spec}: mean ± sd over seeds {seeds}" if len(by_seed) > 1 else f"{spec}: seed {seeds}"),
              Figure(f"bars-{slug(spec)}", _bar_chart(spec, bars, baseline_bars, wanted),
                     f"{spec}: mean over seeds, error bars one sd (with several seeds); baselines hatched"),
              Figure(f"curves-{slug(spec)}", _curves(spec, runs, present),
                     f"{spec}: learning curves, mean over seeds (band: ± one sd)")]
    return Section(f"Data set {spec}", blocks)


def _bar_chart(spec: str, bars: dict, baselines: dict, wanted):
    groups = {**bars, **baselines}
    figure = new_figure(max(4.5, 3.3 * len(wanted)), 3.4)
    axes = figure.subplots(1, len(wanted), squeeze=False)[0]
    width = 0.8 / max(1, len(groups))
    for ax, (split, name, higher) in zip(axes, wanted):
        for k, (label, values) in enumerate(groups.items()):
            found = [v for v in values[name] if v is not None and math.isfinite(v)]
            if not found:
                continue
            sd = float(np.std(found, ddof=1)) if len(found) > 1 else None
            baseline = list(baselines).index(label) if label in baselines else -1
            ax.bar(k * width, float(np.mean(found)), width * 0.9, yerr=sd, capsize=3, label=label,
                   color="0.75" if baseline >= 0 else f"C{k}",
                   hatch=HATCHES[baseline % len(HATCHES)] if baseline >= 0 else None, edgecolor="0.3", linewidth=0.5)
        ax.set_xticks([])
        ax.set_title(f"{split} {_label(name)} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5), fontsize=8)
    figure.suptitle(spec, fontsize=10)
    return figure


def _curves(spec: str, runs, models: list[str]):
    figure = new_figure(9, 3.2)
    axes = figure.subplots(1, 2)
    for k, model in enumerate(models):
        histories = [read_history(c.job.folder) for c, _ in runs if c.model == model]
        for ax, key in zip(axes, ("train_loss", "val_loss")):
            length = max((len(h) for h in histories), default=0)
            means, sds = [], []
            for epoch in range(length):
                values = [h[epoch][key] for h in histories if epoch < len(h) and key in h[epoch]]
                means.append(np.mean(values) if values else np.nan)
                sds.append(np.std(values, ddof=1) if len(values) > 1 else 0.0)
            epochs = np.arange(1, length + 1)
            means, sds = np.array(means), np.array(sds)
            ax.plot(epochs, means, color=f"C{k}", label=model, marker="o" if length < 3 else None)
            ax.fill_between(epochs, means - sds, means + sds, color=f"C{k}", alpha=0.15)
    for ax, title in zip(axes, ("training loss", "validation loss")):
        ax.set(xlabel="epoch", ylabel="loss", title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle(spec, fontsize=10)
    return figure


def score_matrix(cells, metrics, models: list[str], data_sets: list[str], split: str, name: str) -> np.ndarray:
    """(D, M) mean over seeds of ``split/name`` for each data set and model; NaN where a pair has no run."""
    scores = np.full((len(data_sets), len(models)), np.nan)
    for d, spec in enumerate(data_sets):
        for j, model in enumerate(models):
            values = [m[split][name] for c, m in zip(cells, metrics) if c.data == spec and c.model == model]
            if values:
                scores[d, j] = float(np.mean(values))
    return scores


def average_ranks(scores: np.ndarray, higher_better: bool) -> np.ndarray:
    """(M,) mean over data sets of each model's rank (1 = best; ties share the mean rank)."""
    from scipy.stats import rankdata

    return rankdata(-scores if higher_better else scores, axis=1).mean(axis=0)


def across_data_sets(cells: Sequence[Any], metrics: Sequence[dict[str, Any]]) -> Section:
    """Mean ± sd of the ranking metric per data set and model, mean ranks, and the critical-difference
    diagram when at least 3 models ran on at least 3 data sets."""
    models = list(dict.fromkeys(c.model for c in cells))
    data_sets = list(dict.fromkeys(c.data for c in cells))
    split, name, higher = primary_metric(metrics[0]["task"])
    scores = score_matrix(cells, metrics, models, data_sets, split, name)
    complete = [j for j in range(len(models)) if not np.isnan(scores[:, j]).any()]
    rows = []
    ranks = average_ranks(scores[:, complete], higher) if complete else []
    rank_of = {models[j]: r for j, r in zip(complete, ranks)}
    for j, model in enumerate(models):
        cols = [mean_sd([m[split][name] for c, m in zip(cells, metrics) if c.data == spec and c.model == model])
                for spec in data_sets]
        rows.append([model] + cols + [float(rank_of[model]) if model in rank_of else "-"])
    blocks: list = [Table(["model"] + data_sets + ["mean rank"], rows,
                          f"{split} {_label(name)}, mean ± sd over seeds; rank 1 is best")]
    if len(data_sets) >= 3 and len(complete) >= 3:
        blocks += critical_difference_blocks(scores[:, complete], [models[j] for j in complete], higher,
                                             f"{split} {_label(name)}")
    else:
        blocks.append(Text("A critical-difference diagram needs at least 3 data sets and 3 models run on all of "
                           f"them; this grid has {len(data_sets)} data sets and {len(complete)} such models."))
    return Section("Across data sets", blocks)


def critical_difference_blocks(scores: np.ndarray, labels: list[str], higher_better: bool, what: str) -> list:
    """The Friedman test on the ranks, then aeon's diagram: models joined by a bar do not differ
    significantly by pairwise one-sided Wilcoxon signed-rank tests with Holm's correction."""
    from aeon.benchmarking.stats import check_friedman
    from aeon.visualisation import plot_critical_difference
    from scipy.stats import rankdata
    import matplotlib.pyplot as plt

    ranks = rankdata(-scores if higher_better else scores, axis=1)  # (D, M)
    p_friedman = float(check_friedman(ranks))
    figure, _, p_values = plot_critical_difference(scores, labels, lower_better=not higher_better,
                                                   alpha=CD_ALPHA, return_p_values=True)
    plt.close(figure)  # aeon draws with pyplot; keep no figure open in its registry
    blocks = [Text(f"Friedman test over {scores.shape[0]} data sets and {scores.shape[1]} models ({what}): "
                   f"p = {p_friedman:.3g}.")]
    if p_friedman >= CD_ALPHA:
        blocks.append(Text(f"Not significant at alpha {CD_ALPHA:g}: no pairwise tests follow, and one bar joins "
                           "all models."))
    blocks.append(Figure("critical-difference", figure, f"critical-difference diagram: mean rank on {what} "
                         f"(alpha {CD_ALPHA:g})"))
    if p_friedman < CD_ALPHA:
        order = [labels[j] for j in np.argsort(ranks.mean(axis=0), kind="stable")]  # aeon's order: by mean rank
        rows = [[a] + [float(p_values[i, j]) if j > i else "" for j in range(len(order))] for i, a in enumerate(order)]
        blocks.append(Table(["Wilcoxon p (one-sided)"] + order, rows,
                            f"pairwise p-values, unadjusted; Holm's correction decides the bars"))
    return blocks
