"""The model zoo's registry: name -> builder, options dataclass, tasks and capabilities.

A model is registered with :func:`register_model`; its options dataclass
holds the defaults (beside the model that owns them). ``seqlab models``
prints this table, and configs name a model by its registered name. The
entry also says what the model can do beyond training (fixed-length or token
input, streaming, ncnn export); export and serving ask the entry, so a new
model family touches its own file and its registration only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from seqlab.errors import SeqlabError
from seqlab.options import from_dict


@dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Attributes:
        name: the name configs and the CLI use.
        builder: ``builder(input_size, output_size, **options) -> nn.Module``.
        options: dataclass of the model's options and their defaults.
        tasks: tasks the model serves (``classification``, ...).
        summary: one line for ``seqlab models``.
        preset: option values that differ from the dataclass defaults
            (``bigru`` is ``gru`` with ``bidirectional=True``).
        needs_steps: the builder takes ``steps`` (T), because the model's
            shape depends on the sequence length (time steps as channels).
        tokens: the input is token ids (N, T, 1), not features to normalise;
            the builder takes ``vocab_size``.
        fixed_length: ``fixed_length(options) -> bool``: built with these
            options, the model reads exactly the length it was built for (its
            shape is built around T), so an export fixes the time axis.
        streamable: the model runs one frame at a time with its state carried
            (:class:`seqlab.serving.modules.StepModel`: a unidirectional
            recurrent classifier); ``seqlab export --streaming`` and
            ``seqlab stream`` without ``--window`` need it.
        ncnn: ``seqlab export --format ncnn`` has an ncnn form of the model
            (:mod:`seqlab.export.ncnn`).
    """

    name: str
    builder: Callable[..., nn.Module]
    options: type
    tasks: tuple[str, ...]
    summary: str
    preset: dict[str, Any] = field(default_factory=dict)
    needs_steps: bool = False
    tokens: bool = False
    fixed_length: Callable[[dict[str, Any]], bool] = lambda options: False  # noqa: E731  (any length)
    streamable: bool = False
    ncnn: bool = False

    def defaults(self) -> dict[str, Any]:
        values = {f.name: f.default for f in dataclasses.fields(self.options)}
        values.update(self.preset)
        return values

    def reads_fixed_length(self, options: dict[str, Any]) -> bool:
        """Whether the model built with ``options`` (missing ones at their defaults) reads one length only."""
        return bool(self.fixed_length({**self.defaults(), **options}))


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    builder: Callable[..., nn.Module],
    options: type,
    tasks: tuple[str, ...],
    summary: str,
    needs_steps: bool = False,
    tokens: bool = False,
    fixed_length: Callable[[dict[str, Any]], bool] | None = None,
    streamable: bool = False,
    ncnn: bool = False,
    preset: dict[str, Any] | None = None,
    **preset_values: Any,
) -> None:
    """Add a model to the zoo; the capabilities are those of :class:`ModelEntry` (default: none)."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    values = {**(preset or {}), **preset_values}
    if "classification" in tasks and not tokens and "regression" not in tasks:
        tasks = (*tasks, "regression")  # one output vector per sequence: K targets instead of C logits
    capabilities = {"fixed_length": fixed_length} if fixed_length is not None else {}
    _REGISTRY[name] = ModelEntry(name, builder, options, tasks, summary, values, needs_steps, tokens,
                                 streamable=streamable, ncnn=ncnn, **capabilities)


def model_names(capability: str | None = None) -> list[str]:
    """Every registered name, or those whose entry has ``capability`` (``streamable``, ``ncnn``, ``tokens``)."""
    return [name for name, entry in _REGISTRY.items() if capability is None or getattr(entry, capability)]


def get_model_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise SeqlabError(
            f"model.name (--model): unknown model {name!r}; valid models: {', '.join(_REGISTRY)}"
        )
    return _REGISTRY[name]


def resolve_model_options(values: dict[str, Any], task: str | None = None) -> dict[str, Any]:
    """``{"name": "bigru", "hidden_size": 32}`` -> every option of bigru, checked.

    With ``task``, a model that does not serve it is refused.
    """
    if not isinstance(values, dict):
        raise SeqlabError(f"model: expected a mapping with a name and options, got {values!r}")
    values = dict(values)
    name = values.pop("name", "gru")
    entry = get_model_entry(str(name))
    if task is not None and task not in entry.tasks:
        serving = [n for n, e in _REGISTRY.items() if task in e.tasks]
        raise SeqlabError(
            f"model.name (--model): {entry.name} does not serve the {task} task; models that do: {', '.join(serving)}"
        )
    merged = {**entry.preset, **values}
    options = from_dict(entry.options, merged, "model")
    return {"name": entry.name, **dataclasses.asdict(options)}


def build_model(name: str, input_size: int, output_size: int, steps: int | None = None, **options: Any) -> nn.Module:
    """Build a registered model: ``build_model("gru", 8, 10, hidden_size=64)``.

    Options not given take the model's defaults; unknown options are an
    error. ``steps`` (T) is needed by models whose shape depends on it
    (``cnn-gru``, ``cnn-gru-parallel``); for token models (``text-lstm``)
    ``input_size`` is the vocabulary size.
    """
    resolved = resolve_model_options({"name": name, **options})
    resolved.pop("name")
    entry = get_model_entry(name)
    if entry.needs_steps:
        if not steps:
            raise SeqlabError(f"model {name}: needs the sequence length (steps) at construction")
        return entry.builder(input_size, output_size, steps=steps, **resolved)
    return entry.builder(input_size, output_size, **resolved)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
