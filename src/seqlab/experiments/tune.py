"""``seqlab tune``: Optuna's TPE sampler over a search space, each trial an ordinary run folder.

The study lives in an Optuna storage: by default SQLite in ``OUT/study.db``,
so a killed tune continues when rerun, until the study holds ``--trials``
finished (complete or pruned) trials; ``--storage URL`` shares one study
between processes or machines (Optuna's RDB storage: SQLite on one machine,
PostgreSQL or MySQL for a cluster). Trials are pruned by Optuna's median
rule through Lightning's callback on the per-epoch validation loss. Each
trial trains into ``OUT/trials/trial-NNNN``; the best trial's config tree is
written as ``best.yaml`` (``seqlab train --config best.yaml`` trains it
again), and the report holds the trials and Optuna's plots.
"""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seqlab.config import infer_task, load_yaml, resolve_config
from seqlab.errors import SeqlabError
from seqlab.experiments.compare import merge_trees, slug, unknown_data, unknown_model

MAX_TRIALS = 100_000
# What a trial minimises, per task: the validation split's loss (regression and forecast: its RMSE; a forecast's
# validation part is rolled out).
OBJECTIVE = {"classification": ("val", "loss"), "regression": ("val", "rmse"), "forecast": ("val", "rmse"),
             "lm": ("val", "loss")}
KINDS = ("int", "float", "categorical")


@dataclass
class Param:
    """One searched config key: ``int``/``float`` between ``low`` and ``high`` (``log`` scale), or ``choices``."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    def suggest(self, trial) -> Any:
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        if self.kind == "float":
            return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log)
        return trial.suggest_categorical(self.key, self.choices)


def default_space(model: str, task: str) -> list[Param]:
    """Hidden size, layers, dropout, learning rate, batch size and head, where the model takes them."""
    from seqlab.models.registry import get_model_entry

    options = get_model_entry(model).defaults() if not model.endswith((".yaml", ".yml")) else {}
    space = [Param("train.lr", "float", 1e-4, 3e-2, log=True)]
    if task != "lm":
        space.append(Param("train.batch_size", "categorical", choices=[16, 32, 64, 128]))
    if "hidden_size" in options or task == "lm":
        space.append(Param("model.hidden_size", "int", 16, 256, log=True))
    if "num_layers" in options or task == "lm":
        space.append(Param("model.num_layers", "int", 1, 3))
    if "dropout" in options or task == "lm":
        space.append(Param("model.dropout", "float", 0.0, 0.5))
    if "head" in options and task == "classification":
        space.append(Param("model.head", "categorical", choices=["last", "mean", "attention"]))
    return space


def read_space(path: str | Path) -> list[Param]:
    """A YAML search space: ``section.key: {type: int|float, low, high[, log]}`` or ``{type: categorical,
    choices: [...]}``."""
    path = Path(path)
    if not path.is_file():
        raise SeqlabError(f"--space {path}: file not found")
    tree = load_yaml(path.read_text(encoding="utf-8"), f"--space {path}")
    if not isinstance(tree, dict) or not tree:
        raise SeqlabError(f"--space {path}: expected a mapping of config keys (train.lr: {{type: float, ...}})")
    space = []
    for key, spec in tree.items():
        where = f"--space {path}: {key}"
        if not isinstance(key, str) or key.count(".") != 1:
            raise SeqlabError(f"{where}: expected a config key section.name such as train.lr")
        if not isinstance(spec, dict) or spec.get("type") not in KINDS:
            raise SeqlabError(f"{where}: expected a mapping with type one of {', '.join(KINDS)}, got {spec!r}")
        allowed = {"type", "choices"} if spec["type"] == "categorical" else {"type", "low", "high", "log"}
        extra = sorted(set(spec) - allowed)
        if extra:
            raise SeqlabError(f"{where}: unknown field {extra[0]!r}; expected {', '.join(sorted(allowed))}")
        if spec["type"] == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise SeqlabError(f"{where}: expected a non-empty list of choices, got {choices!r}")
            space.append(Param(key, "categorical", choices=choices))
            continue
        low, high = spec.get("low"), spec.get("high")
        number = int if spec["type"] == "int" else (int, float)
        if not (isinstance(low, number) and isinstance(high, number)) or isinstance(low, bool) or low > high:
            raise SeqlabError(f"{where}: expected numbers low <= high ({spec['type']}), got low={low!r} high={high!r}")
        if spec.get("log", False) and low <= 0:
            raise SeqlabError(f"{where}: a log scale needs low > 0, got {low!r}")
        space.append(Param(key, spec["type"], low, high, bool(spec.get("log", False))))
    return space


def open_storage(storage: str | None, out: Path):
    """Optuna's RDB storage for ``storage`` (default: SQLite in ``out/study.db``); one line if unreachable."""
    import optuna
    from sqlalchemy.engine import make_url

    url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not even a URL
        raise SeqlabError(f"--storage {url}: not a database URL; expected sqlite:///PATH or "
                          "postgresql://USER:PASSWORD@HOST/DB") from None
    if storage is None:
        out.mkdir(parents=True, exist_ok=True)
    # SQLite serialises writers: wait for another worker's write instead of failing at once
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        with warnings.catch_warnings():  # the heartbeat is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # a trial whose worker died (no heartbeat for grace_period s) is failed and run again, up to 3 times
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=30, grace_period=120,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(3))
    except Exception as error:  # noqa: BLE001 - the driver's, SQLAlchemy's or Optuna's error: say it in one line
        reason = " ".join(str(error).split("\n")[0].split())[:300]
        raise SeqlabError(f"--storage {shown}: cannot open the study ({type(error).__name__}: {reason})") from None


def tune(model: str, data: str, trials: int, out: str | Path, common: dict[str, Any] | None = None,
         space: list[Param] | None = None, storage: str | None = None, study_name: str | None = None,
         seed: int = 0, quiet: bool = False):
    """Run trials until the study holds ``trials`` finished ones; write ``best.yaml`` and the report.

    Returns the Optuna study.
    """
    if not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise SeqlabError(f"--trials: expected an integer in 1..{MAX_TRIALS}, got {trials}")
    for reason, flag in ((unknown_model(model), "--model"), (unknown_data(data), "--data")):
        if reason:
            raise SeqlabError(f"{flag}: unknown {reason}; see `seqlab models` and `seqlab datasets`")
    out = Path(out)
    common = common or {}
    task = common.get("task", "auto") if common.get("task", "auto") != "auto" else infer_task(data)
    space = space if space is not None else default_space(model, task)
    base = merge_trees(common, {"data": {"spec": data}, "model": {"name": model}})
    resolve_config(base)  # refuse bad settings before the study is opened

    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=open_storage(storage, out), study_name=study_name or f"{Path(model).stem}-{slug(data)}", load_if_exists=True,
        # a shared study samples unseeded, so that its workers do not repeat each other's trials
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=None if storage else seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    objective = _objective(base, space, out, task, quiet)
    remaining = trials - len(study.get_trials(deepcopy=False, states=finished))
    if remaining > 0:
        stop = optuna.study.MaxTrialsCallback(trials, states=finished)
        study.optimize(objective, n_trials=remaining, callbacks=[stop], catch=())
    elif not quiet:
        print(f"The study already holds {trials} finished trials; nothing left to run")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise SeqlabError(f"--trials {trials}: every trial was pruned; nothing to choose from")
    from seqlab.reports.tuning import write_tune_report

    best = study.best_trial
    header = (f"# Best of {len(complete)} complete trials of study {study.study_name!r}: trial {best.number}, "
              f"{OBJECTIVE[task][0]} {OBJECTIVE[task][1]} {best.value:.6g}\n"
              f"# Train it again: seqlab train --config best.yaml --out runs/best\n")
    from seqlab.io import write_text

    write_text(out / "best.yaml", header + yaml.safe_dump(best.user_attrs["tree"], sort_keys=False))
    files = write_tune_report(study, out, OBJECTIVE[task])
    if not quiet:
        print(f"Best: trial {best.number}, {OBJECTIVE[task][1]} {best.value:.4g}: {best.params}")
        print(f"Written: {out / 'best.yaml'}, {files[0]}, {files[1]}")
    return study


def _objective(base: dict[str, Any], space: list[Param], out: Path, task: str, quiet: bool):
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    from seqlab.training.pipeline import train

    split, name = OBJECTIVE[task]

    def objective(trial) -> float:
        values: dict[str, dict[str, Any]] = {}
        for param in space:
            section, key = param.key.split(".")
            values.setdefault(section, {})[key] = param.suggest(trial)
        tree = merge_trees(base, values)
        config = resolve_config(tree)
        trial.set_user_attr("tree", tree)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        folder = out / "trials" / f"trial-{trial.number:04d}"
        trial.set_user_attr("run", str(folder))
        pruning = PyTorchLightningPruningCallback(trial, monitor="val_loss")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                metrics = train(config, folder, overwrite=True, quiet=True, callbacks=[pruning]).metrics
            except optuna.TrialPruned:
                if not quiet:
                    print(f"trial {trial.number}: pruned {trial.params}", flush=True)
                raise
        value = float(metrics[split][name])
        if not quiet:
            print(f"trial {trial.number}: {split} {name} {value:.4g} {trial.params}", flush=True)
        return value

    return objective
