"""Typed run configuration: one override path (file, then ``--set key=value``).

A run is described by three sections, each a dataclass whose defaults live
here or beside the component that owns them:

* ``data``  -> :class:`DataConfig`
* ``model`` -> ``name`` plus the options dataclass the model registers
  (see :mod:`seqlab.models.registry`)
* ``train`` -> :class:`TrainConfig`
* ``forecast`` -> :class:`ForecastConfig` (task ``forecast``)
* ``lm`` -> :class:`LMConfig` (task ``lm``)

plus ``task``: ``classification``, ``regression``, ``forecast`` or ``lm`` (``auto`` picks it
from the data spec: ``sine``, ``airline`` and ``series:`` are forecasts,
``text:`` is language modelling, everything else classification).

Unknown keys are rejected with the list of valid ones; values are checked
and coerced to the annotated type. The resolved config is written next to
the results as ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from seqlab.errors import SeqlabError
from seqlab.options import FLAG_FOR_KEY, check, describe_key, from_dict  # noqa: F401  (the config API)
from seqlab.models.registry import resolve_model_options

@dataclass
class FoldSpec:
    """``data.fold``: which fold of which split a run tests on.

    Attributes:
        folds: K, the number of folds (>= 2).
        index: the test fold, 0 .. K-1.
        repeat: which shuffle of a repeated K-fold: the fold assignment is
            seeded with ``train.seed + repeat``.
        groups: keep each group (the source's ``groups``) on one side.
    """

    folds: int = 5
    index: int = 0
    repeat: int = 0
    groups: bool = False

    def validate(self) -> None:
        check(self.folds >= 2, "data.fold.folds", "an integer >= 2", self.folds)
        check(0 <= self.index < self.folds, "data.fold.index", f"an integer in 0..{self.folds - 1}", self.index)
        check(self.repeat >= 0, "data.fold.repeat", "an integer >= 0", self.repeat)


@dataclass
class DataConfig:
    """Where the sequences come from and how they are split and scaled.

    Attributes:
        spec: a built-in name (``digits``), a file (``.npz``, ``.csv``,
            ``NAME_TRAIN.ts``) or ``aeon:NAME``; ``seqlab datasets`` lists them.
        val_fraction: share of the training part held out for validation.
        test_fraction: share held out for testing when the source has no test split.
        normalize: ``standard`` (z-score), ``minmax`` or ``none``; fitted on
            the training split only, per feature, over valid (unpadded) steps.
        options: settings of the source itself (``ut-har:``, ``deap:``),
            checked by the source; see the README.
        fold: cross-validation (set by ``seqlab cv``): ``folds``, ``index``,
            ``repeat``, ``groups`` of :class:`FoldSpec`; the
            fold is the test split and the rest is split into train and
            validation. Empty: no cross-validation.
    """

    spec: str = "digits"
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    normalize: Literal["standard", "minmax", "none"] = "standard"
    options: dict[str, Any] = field(default_factory=dict)
    fold: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        check(bool(self.spec), "data.spec", "a data set name or path", self.spec)
        if self.fold:
            from_dict(FoldSpec, self.fold, "data.fold")
        check(0.0 < self.val_fraction < 1.0, "data.val_fraction", "a fraction in (0, 1)", self.val_fraction)
        check(0.0 < self.test_fraction < 1.0, "data.test_fraction", "a fraction in (0, 1)", self.test_fraction)


Auto = Literal["auto"]


@dataclass
class TrainConfig:
    """How the model is optimised: AdamW, a learning-rate schedule, a step or epoch budget.

    ``auto`` values are resolved per run by :mod:`seqlab.training.recipe`
    from the size of the training and validation splits (classification;
    forecast and lm runs resolve them to fixed values) and recorded under
    ``recipe`` in ``metrics.json``.

    Attributes:
        epochs: passes over the training split (``auto``: as many as ``steps``
            needs). Given alone, an epoch budget; given with ``steps``,
            training stops at whichever limit comes first.
        steps: optimizer steps to train for, rounded up to whole epochs
            (``auto``: from the training-set size, unless ``epochs`` is given).
        batch_size: sequences per optimisation step (``auto``: from the
            training-set size).
        lr: AdamW learning rate, the peak of a ``onecycle``/``cosine``
            schedule (``auto``: Lightning's learning-rate finder picks it).
        schedule: ``onecycle`` (warm-up, then cosine annealing to ~0, with
            momentum cycled), ``cosine`` (linear warm-up, then cosine decay to
            0), ``plateau`` (halve on a validation-loss plateau), ``constant``,
            or ``auto``.
        warmup: share of the step budget spent warming up (``onecycle``, ``cosine``).
        select: which loss picks the kept checkpoint and drives early stopping:
            ``val``, ``train`` (the mean training loss of each epoch), or ``auto``
            (``val`` only when the validation split is large enough to trust).
        class_weights: ``none``, or ``balanced`` (cross-entropy weighted by
            N / (C * N_c) from the training split, for imbalanced classes).
        weight_decay: AdamW weight decay.
        clip: gradient-norm clipping threshold (0 disables it).
        patience: epochs without improvement of the ``select`` loss before
            stopping early (0 disables early stopping; ``auto``: 0 for
            classification, whose budget is fixed, 10 otherwise).
        seed: seeds the split, the initial weights and the batch order.
        accelerator: ``cpu``, ``gpu`` (``cuda``), ``mps`` or ``auto`` (gpu when
            torch sees one).
        devices: processes (CPU) or GPUs per machine: a count, a list of GPU
            indices or ``auto``; more than one trains with DDP.
        num_nodes: machines taking part (multi-node DDP under torchrun or SLURM).
        precision: ``32``, ``bf16-mixed`` (CPU or GPU) or ``16-mixed`` (GPU).
        threads: torch's CPU threads per process; 0 chooses them from the
            usable cores, the processes sharing them and the competing load
            (see ``seqlab.training.hardware``).
        logger: Lightning logger writing into ``RUN/logs``: ``csv``,
            ``tensorboard`` (needs tensorboardX or tensorboard), ``mlflow``
            (needs mlflow) or ``none``; ``history.csv`` is written with any.
        baselines: also fit the baselines that need fitting (MiniRocket,
            ETS, ARIMA, the character n-gram; see :mod:`seqlab.baselines`);
            false keeps only the closed-form ones, for speed.
    """

    epochs: int | Auto = "auto"
    steps: int | Auto = "auto"
    batch_size: int | Auto = "auto"
    lr: float | Auto = 3e-3
    schedule: Literal["auto", "onecycle", "cosine", "plateau", "constant"] = "auto"
    warmup: float = 0.1
    select: Literal["auto", "val", "train"] = "auto"
    class_weights: Literal["none", "balanced"] = "none"
    weight_decay: float = 1e-4
    clip: float = 1.0
    patience: int | Auto = "auto"
    seed: int = 0
    accelerator: str = "cpu"
    devices: int | list[int] | str = 1
    num_nodes: int = 1
    precision: str = "32"
    threads: int = 0
    logger: Literal["csv", "tensorboard", "mlflow", "none"] = "csv"
    baselines: bool = True

    def validate(self) -> None:
        for key in ("epochs", "steps", "batch_size"):
            value = getattr(self, key)
            check(value == "auto" or value >= 1, f"train.{key}", "auto or an integer >= 1", value)
        check(self.batch_size == "auto" or self.batch_size <= 2**31 - 1, "train.batch_size",
              "auto or an integer in 1 .. 2**31 - 1", self.batch_size)
        check(self.lr == "auto" or (math.isfinite(self.lr) and self.lr > 0), "train.lr",
              "a positive learning rate", self.lr)
        # beyond float32's range the optimiser cannot even hold the rate; no useful rate is near 1e6
        check(self.lr == "auto" or self.lr < 1e6, "train.lr", "a learning rate below 1e6", self.lr)
        check(0.0 <= self.warmup < 1.0, "train.warmup", "a share of the steps in [0, 1)", self.warmup)
        check(self.weight_decay >= 0, "train.weight_decay", "a value >= 0", self.weight_decay)
        check(self.clip >= 0, "train.clip", "a value >= 0 (0 disables clipping)", self.clip)
        check(self.patience == "auto" or self.patience >= 0, "train.patience", "auto or an integer >= 0",
              self.patience)
        check(self.threads >= 0, "train.threads", "an integer >= 0 (0: chosen for the machine)", self.threads)
        check(0 <= self.seed < 2**32, "train.seed", "an integer in 0 .. 2**32 - 1", self.seed)
        check(self.accelerator in ACCELERATORS, "train.accelerator", "one of " + ", ".join(ACCELERATORS),
              self.accelerator)
        self.devices = parse_devices(self.devices)
        check(self.num_nodes >= 1, "train.num_nodes", "an integer >= 1", self.num_nodes)
        check(self.precision in PRECISIONS, "train.precision", "one of " + ", ".join(PRECISIONS), self.precision)


ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")
PRECISIONS = ("32", "bf16-mixed", "16-mixed")


def parse_devices(value: int | list[int] | str) -> int | list[int] | str:
    """``2``, ``"2"`` -> 2; ``[0, 1]``, ``"0,1"`` -> [0, 1]; ``auto``; anything else is refused."""
    expected = "a positive integer, a list of GPU indices such as 0,1, or auto"
    if isinstance(value, str):
        text = value.strip()
        if text == "auto":
            return text
        if text.isdigit():
            value = int(text)
        elif "," in text and all(part.strip().isdigit() for part in text.strip("[]").split(",")):
            value = [int(part) for part in text.strip("[]").split(",")]
        else:
            check(False, "train.devices", expected, value)
    if isinstance(value, list):
        check(len(value) > 0 and len(set(value)) == len(value) and min(value) >= 0, "train.devices", expected, value)
        return value
    check(value >= 1, "train.devices", expected, value)
    return value


TRANSFORMS = ("log", "diff", "seasonal_diff")
COVARIATES = ("month",)


@dataclass
class ForecastConfig:
    """Sliding-window forecasting of a univariate or multivariate series.

    Attributes:
        window: input steps the model reads before predicting.
        horizon: steps predicted at once by the ``direct`` strategy, and the
            default length of ``seqlab forecast``.
        strategy: ``recursive`` (a one-step model rolled out with its
            recurrent state carried from step to step) or ``direct`` (one
            output per horizon step; longer forecasts repeat it block by block).
        test_size: held-out tail forecast from its start and scored (0: horizon).
        val_size: part before the test tail used for validation (0: horizon).
        transforms: applied in order, fitted on the training part, inverted
            for reporting: ``log``, ``diff`` (first difference),
            ``seasonal_diff`` (difference at lag ``season``).
        season: season length, also the lag of the seasonal-naive baseline
            (``auto``: from the spacing of the dates: hourly 24, daily 7,
            weekly 52, monthly 12, quarterly 4, yearly 1; 12 without dates).
        covariates: known-ahead inputs besides the series: ``month``
            (sin/cos of the calendar month; needs dates).
        scale: ``standard``, ``minmax`` or ``none`` (after the transforms,
            fitted on the training part).
        impute: ``none`` refuses missing values; ``linear`` interpolates
            them and says which.
    """

    window: int = 24
    horizon: int = 12
    strategy: Literal["recursive", "direct"] = "recursive"
    test_size: int = 0
    val_size: int = 0
    transforms: list[str] = field(default_factory=list)
    season: int | Auto = "auto"
    covariates: list[str] = field(default_factory=list)
    scale: Literal["standard", "minmax", "none"] = "standard"
    impute: Literal["none", "linear"] = "none"

    def validate(self) -> None:
        check(self.window >= 1, "forecast.window", "an integer >= 1", self.window)
        check(self.horizon >= 1, "forecast.horizon", "an integer >= 1", self.horizon)
        check(self.test_size >= 0, "forecast.test_size", "an integer >= 0", self.test_size)
        check(self.val_size >= 0, "forecast.val_size", "an integer >= 0", self.val_size)
        check(self.season == "auto" or self.season >= 1, "forecast.season", "auto or an integer >= 1", self.season)
        for name in self.transforms:
            check(name in TRANSFORMS, "forecast.transforms", "items from " + ", ".join(TRANSFORMS), name)
        for name in self.covariates:
            check(name in COVARIATES, "forecast.covariates", "items from " + ", ".join(COVARIATES), name)

    @property
    def test_steps(self) -> int:
        return self.test_size or self.horizon

    @property
    def val_steps(self) -> int:
        return self.val_size or self.horizon


@dataclass
class LMConfig:
    """Character language modelling with truncated back-propagation through time.

    Attributes:
        bptt: steps per chunk; the state is carried (detached) across chunks.
        embedding_dim: width of the character embedding.
        val_fraction: tail of the text held out for validation.
    """

    bptt: int = 100
    embedding_dim: int = 64
    val_fraction: float = 0.1

    def validate(self) -> None:
        check(self.bptt >= 2, "lm.bptt", "an integer >= 2", self.bptt)
        check(self.embedding_dim >= 1, "lm.embedding_dim", "an integer >= 1", self.embedding_dim)
        check(0.0 < self.val_fraction < 0.5, "lm.val_fraction", "a fraction in (0, 0.5)", self.val_fraction)


# The model section's keys a language model (RecurrentLM) takes besides name; the lm task refuses any other.
LM_MODEL_OPTIONS = ("hidden_size", "num_layers", "dropout", "nonlinearity", "backend")

TASKS = ("classification", "regression", "forecast", "lm")
FORECAST_DATA = ("sine", "airline")
SECTIONS = ("data", "model", "train", "forecast", "lm")


def infer_task(spec: str) -> str:
    if spec in FORECAST_DATA or spec.startswith("series:"):
        return "forecast"
    if spec.startswith("text:"):
        return "lm"
    return "classification"


@dataclass
class RunConfig:
    """The whole description of a training run."""

    task: str = "classification"
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=lambda: {"name": "gru"})
    train: TrainConfig = field(default_factory=TrainConfig)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    lm: LMConfig = field(default_factory=LMConfig)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self.data)
        if self.task not in SEQUENCE_TASKS:  # the keys it would refuse (see refuse_unused)
            data = {k: v for k, v in data.items() if k not in CLASSIFICATION_DATA_KEYS}
        tree = {
            "task": self.task,
            "data": data,
            "model": dict(self.model),
            "train": dataclasses.asdict(self.train),
        }
        if self.task == "forecast":
            tree["forecast"] = dataclasses.asdict(self.forecast)
        if self.task == "lm":
            tree["lm"] = dataclasses.asdict(self.lm)
        return tree


# ----------------------------------------------------------------------------
# Files and overrides


PRESETS = Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.yaml"))


# A config is a few dozen values; these bounds stop a file of YAML aliases (each a reference to an
# earlier node, so 400 bytes can stand for a billion values) before anything walks or prints it.
MAX_YAML_BYTES = 1_000_000
MAX_YAML_VALUES = 100_000


def load_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` bounded: at most MAX_YAML_BYTES of text and MAX_YAML_VALUES values once
    aliases are expanded (a recursive alias counts without end, so it is refused too)."""
    if len(text) > MAX_YAML_BYTES:
        raise SeqlabError(f"{source}: {len(text)} characters of YAML; expected at most {MAX_YAML_BYTES}")
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SeqlabError(f"{source}: not valid YAML ({' '.join(str(error).split())})") from None
    except RecursionError:
        raise SeqlabError(f"{source}: YAML nested too deeply") from None
    check_yaml_values(tree, source)
    return tree


def check_yaml_values(tree: Any, source: str) -> None:
    """Refuse a loaded YAML tree of more than MAX_YAML_VALUES values, aliases expanded."""
    pending, count = [tree], 0
    while pending:
        node = pending.pop()
        count += 1
        if count > MAX_YAML_VALUES:
            raise SeqlabError(f"{source}: YAML expands to more than {MAX_YAML_VALUES} values (through aliases "
                              "such as *name); expected a small config")
        if isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)


def check_sections(tree: dict[str, Any], source: str) -> None:
    """Refuse a top-level key that is neither ``task`` nor a section (a misspelt ``trian``)."""
    unknown = sorted(str(key) for key in set(tree) - set(SECTIONS) - {"task"})
    if unknown:
        raise SeqlabError(f"{source}unknown section {unknown[0]!r}; valid sections: task, {', '.join(SECTIONS)}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config; a bare preset name (``airline``) reads the packaged preset."""
    path = Path(path)
    if not path.is_file() and path.suffix == "" and (PRESETS / f"{path}.yaml").is_file():
        path = PRESETS / f"{path}.yaml"
    if not path.is_file():
        raise SeqlabError(f"config file {path}: not found (presets: {', '.join(preset_names())})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SeqlabError(f"config file {path}: not UTF-8 text (byte {error.start})") from None
    tree = load_yaml(text, f"config file {path}")
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise SeqlabError(f"config file {path}: expected a mapping with data/model/train sections, got {type(tree).__name__}")
    check_sections(tree, f"config file {path}: ")
    return tree


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply ``section.key=value`` to ``tree``; the value is read as YAML.

    Deeper keys name entries of mapping values: ``data.options.normalize=per-file-minmax``.
    """
    if "=" not in assignment:
        raise SeqlabError(f"--set {assignment!r}: expected KEY=VALUE such as model.hidden_size=64")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, RecursionError):
        value = raw  # not YAML: the text itself
    check_yaml_values(value, f"--set {key.strip()}")
    if parts == ["task"]:
        tree["task"] = value
        return
    if len(parts) < 2 or parts[0] not in SECTIONS or not all(parts[1:]):
        raise SeqlabError(
            f"--set {assignment!r}: expected task or a key of the form SECTION.KEY with SECTION one of "
            f"{', '.join(SECTIONS)}, got {key!r}"
        )
    node = tree
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise SeqlabError(f"--set {assignment!r}: {'.'.join(parts[:depth + 1])} is {child!r}, not a mapping "
                              "of keys")
        node = child
    node[parts[-1]] = value


# tasks with one label or target vector per sequence: they read the data section's split and scaling keys
SEQUENCE_TASKS = ("classification", "regression")
# data keys that only classification and regression read; forecast and lm refuse them (they split and scale by their own section)
CLASSIFICATION_DATA_KEYS = ("val_fraction", "test_fraction", "normalize", "options", "fold")


def refuse_unused(tree: dict[str, Any], task: str) -> None:
    """Options the task would ignore are an error, not a line in config.yaml that does nothing."""
    for section in ("forecast", "lm"):
        if tree.get(section) and task != section:
            key = f"{section}.{next(iter(tree[section]))}" if isinstance(tree[section], dict) else section
            raise SeqlabError(f"{key}: the {task} task does not use the {section} section; remove it "
                              f"(or set task: {section})")
    if task in ("forecast", "lm"):
        for key in CLASSIFICATION_DATA_KEYS:
            if key in (tree.get("data") or {}):
                instead = "forecast.test_size, val_size and scale" if task == "forecast" else "lm.val_fraction"
                raise SeqlabError(f"data.{key}: the {task} task does not use it (it uses {instead})")
    if task == "lm":
        model = tree.get("model") or {}
        if model.get("bidirectional"):
            raise SeqlabError(f"{describe_key('model.bidirectional')}: a language model predicts the next "
                              "character and cannot read ahead")
        for key in model:
            if key != "name" and key not in LM_MODEL_OPTIONS:
                raise SeqlabError(f"{describe_key('model.' + key)}: the lm task does not use it; language models "
                                  f"take {', '.join(LM_MODEL_OPTIONS)}")


def resolve_config(tree: dict[str, Any]) -> RunConfig:
    """Check a config tree and fill in every default, the model's included."""
    if not isinstance(tree, dict):
        raise SeqlabError(f"config: expected a mapping with data/model/train sections, got {type(tree).__name__}")
    check_sections(tree, "config: ")
    data = from_dict(DataConfig, tree.get("data"), "data")
    train = from_dict(TrainConfig, tree.get("train"), "train")
    task = tree.get("task") or "auto"
    if task == "auto":
        task = infer_task(data.spec)
    check(task in TASKS, "task", "auto or one of " + ", ".join(TASKS), task)
    refuse_unused(tree, task)
    forecast = from_dict(ForecastConfig, tree.get("forecast"), "forecast")
    if not isinstance(tree.get("model") or {}, dict):
        raise SeqlabError(f"model: expected a mapping of keys to values, got {tree['model']!r}")
    model_tree = dict(tree.get("model") or {})
    if task == "forecast" and forecast.strategy == "recursive":
        model_tree.setdefault("head", "step")  # a one-step model rolled out step by step
    model = resolve_model_options(model_tree, task)
    if task == "lm":
        model = {k: v for k, v in model.items() if k == "name" or k in LM_MODEL_OPTIONS}
    lm = from_dict(LMConfig, tree.get("lm"), "lm")
    return RunConfig(task=task, data=data, model=model, train=train, forecast=forecast, lm=lm)


def config_to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
