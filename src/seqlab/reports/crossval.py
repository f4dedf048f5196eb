"""The report of a cross-validation: every fold's metrics, their mean ± sd, a bar per fold and the
folds' learning curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from seqlab.reports.comparison import mean_sd, read_history
from seqlab.reports.document import Figure, Section, Table, write_report, new_figure

COLUMNS = [("test_accuracy", "test accuracy"), ("test_macro_f1", "test macro-F1"), ("test_loss", "test loss"),
           ("test_n", "test sequences"), ("baseline_majority_accuracy", "majority accuracy"),
           ("baseline_minirocket_accuracy", "MiniRocket accuracy")]


def write_cv_report(summary: dict[str, Any], plan: Sequence[Any], out: Path) -> tuple[Path, Path]:
    folds = summary["folds"]
    columns = [(key, title) for key, title in COLUMNS if any(key in f for f in folds)]
    subjects = any("test_subjects" in f for f in folds)
    header = ["repeat", "fold"] + (["test subjects"] if subjects else []) + [t for _, t in columns]
    rows = [[f["repeat"], f["fold"]] + ([" ".join(f.get("test_subjects", []))] if subjects else [])
            + [f.get(key, "-") for key, _ in columns] for f in folds]
    rows.append(["all", f"{len(folds)} folds"] + ([""] if subjects else [])
                + [mean_sd([f[key] for f in folds if key in f]) for key, _ in columns])
    kind = "group " if summary["grouped"] else "stratified "
    intro = (f"{summary['model']} on {summary['data']}: {kind}{summary['folds_per_repeat']}-fold cross-validation"
             + (f", {summary['repeats']} repeats" if summary["repeats"] > 1 else "")
             + ". Each fold is the test split of one run; validation comes out of the other folds, and the "
             "normalisation is fitted on the run's training split. Last row: mean ± sd over the folds.")
    figure = new_figure(9, 3.2)
    ax_bars, ax_curves = figure.subplots(1, 2)
    accuracy = [f.get("test_accuracy", np.nan) for f in folds]
    ax_bars.bar(np.arange(len(folds)), accuracy, color="C0", label="test accuracy")
    if any("baseline_majority_accuracy" in f for f in folds):
        ax_bars.plot(np.arange(len(folds)), [f.get("baseline_majority_accuracy", np.nan) for f in folds], "k_",
                     markersize=14, label="majority baseline")
    ax_bars.axhline(float(np.nanmean(accuracy)), color="C3", ls="--", label="mean")
    ax_bars.set(xlabel="fold (in cv.json order)", ylabel="test accuracy", ylim=(0, 1.02), title="per fold")
    ax_bars.legend(fontsize=7)
    for k, fold in enumerate(plan):
        history = read_history(fold.job.folder)
        ax_curves.plot([h["epoch"] for h in history], [h.get("val_loss", np.nan) for h in history],
                       color=f"C{k % 10}", alpha=0.7)
    ax_curves.set(xlabel="epoch", ylabel="validation loss", title="learning curves, one line per fold")
    for ax in (ax_bars, ax_curves):
        ax.grid(alpha=0.3)
    sections = [Section("Folds", [Table(header, rows, "every fold, then mean ± sd"),
                                  Figure("folds", figure, "test accuracy per fold, and each fold's validation loss")])]
    return write_report(out, f"seqlab cv: {summary['model']} on {summary['data']}", sections, intro)
