"""The report of a tune: the trials, the best one, and Optuna's plots (history, intermediate values,
parameter importances, parallel coordinates)."""

from __future__ import annotations

import warnings
from pathlib import Path

from seqlab.reports.document import Figure, Section, Table, Text, write_report


def _optuna_figures(study) -> list:
    """Optuna's matplotlib plots that the study has enough trials for (pyplot figures, closed once drawn)."""
    import matplotlib
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as views

    blocks = []
    plots = [("optimization-history", views.plot_optimization_history, "objective per trial and the best so far"),
             ("intermediate-values", views.plot_intermediate_values,
              "validation loss per epoch of each trial (pruned trials stop early)"),
             ("param-importances", views.plot_param_importances, "parameter importances (Optuna's default evaluator)"),
             ("parallel-coordinate", views.plot_parallel_coordinate, "parameters of each trial against its objective")]
    for name, plot, caption in plots:
        # optuna's plots switch pyplot's style to ggplot for good; rc_context restores the caller's
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore")  # experimental-API notes; "too few trials" notes on small studies
            try:
                axes = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as error:
                blocks.append(Text(f"No {name.replace('-', ' ')} plot: {error}"))
                continue
        axes = axes.flat[0] if hasattr(axes, "flat") else axes
        figure = axes.get_figure()
        figure.set_size_inches(8, 4)
        plt.close(figure)
        blocks.append(Figure(name, figure, caption))
    return blocks


def write_tune_report(study, out: Path, objective: tuple[str, str]) -> tuple[Path, Path]:
    """``report.md`` and ``report.html`` in ``out`` for ``study``."""
    from optuna.trial import TrialState

    split, name = objective
    trials = study.get_trials(deepcopy=False)
    keys = list(dict.fromkeys(k for t in trials for k in t.params))
    rows = [[t.number, t.state.name.lower(), t.value if t.value is not None else "-",
             len(t.intermediate_values)] + [t.params.get(k, "-") for k in keys] for t in trials]
    best = study.best_trial
    counts = {state: sum(t.state == state for t in trials) for state in (TrialState.COMPLETE, TrialState.PRUNED)}
    intro = (f"Study {study.study_name!r}: {len(trials)} trials ({counts[TrialState.COMPLETE]} complete, "
             f"{counts[TrialState.PRUNED]} pruned), TPE sampler, median pruning on the validation loss. "
             f"Objective: {split} {name}, minimised.")
    sections = [
        Section("Best trial", [Table(["trial", f"{split} {name}"] + list(best.params),
                                     [[best.number, best.value] + list(best.params.values())]),
                               Text("best.yaml holds its config: seqlab train --config best.yaml --out DIR")]),
        Section("Trials", [Table(["trial", "state", f"{split} {name}", "epochs"] + keys, rows)]),
        Section("Optuna's plots", _optuna_figures(study)),
    ]
    return write_report(out, f"seqlab tune: {study.study_name}", sections, intro)
