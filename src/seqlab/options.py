"""Typed option sections: dataclasses built from plain mappings, unknown keys refused, values checked.

:func:`from_dict` builds any options dataclass (a config section, a model's
options, a data source's options) from a mapping: every key must be a field,
every value is coerced to the field's annotation, and the dataclass's own
``validate`` runs last. Errors name the key (and the CLI flag that sets it).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

from seqlab.errors import SeqlabError

# CLI flags that are shorthands for config keys; used to name the flag in errors.
FLAG_FOR_KEY = {
    "data.spec": "--data",
    "model.name": "--model",
    "model.hidden_size": "--hidden-size",
    "model.num_layers": "--num-layers",
    "model.bidirectional": "--bidirectional",
    "model.dropout": "--dropout",
    "train.steps": "--steps",
    "train.epochs": "--epochs",
    "train.batch_size": "--batch-size",
    "train.lr": "--lr",
    "train.clip": "--clip",
    "train.seed": "--seed",
    "train.threads": "--threads",
    "train.accelerator": "--accelerator",
    "train.devices": "--devices",
    "train.num_nodes": "--num-nodes",
    "train.precision": "--precision",
}


def describe_key(key: str) -> str:
    """``model.hidden_size`` -> ``model.hidden_size (--hidden-size)``."""
    flag = FLAG_FOR_KEY.get(key)
    return f"{key} ({flag})" if flag else key


def check(condition: bool, key: str, expected: str, found: Any) -> None:
    if not condition:
        raise SeqlabError(f"{describe_key(key)}: expected {expected}, got {found!r}")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except SeqlabError as error:
                errors.append(str(error))
        raise SeqlabError(errors[0] if errors else f"{describe_key(key)}: unexpected value {value!r}")
    if origin is Literal:
        allowed = typing.get_args(annotation)
        check(value in allowed, key, "one of " + ", ".join(map(str, allowed)), value)
        return value
    if annotation is bool:
        check(isinstance(value, bool), key, "true or false", value)
        return value
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        check(ok, key, "an integer", value)
        return value
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        check(ok, key, "a number", value)
        return float(value)
    if annotation is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        check(isinstance(value, str), key, "a string", value)
        return value
    if origin in (list, tuple):
        check(isinstance(value, (list, tuple)), key, "a list", value)
        (item_type, *_) = typing.get_args(annotation) or (Any,)
        return [_coerce(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        check(isinstance(value, dict), key, "a mapping", value)
        return dict(value)
    return value


def from_dict(cls: type, values: dict[str, Any] | None, section: str) -> Any:
    """Build dataclass ``cls`` from ``values``, rejecting unknown keys."""
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise SeqlabError(f"{section}: expected a mapping of keys to values, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise SeqlabError(
            f"unknown key {section}.{unknown[0]}; valid keys for {section}: {', '.join(names)}"
        )
    kwargs = {name: _coerce(values[name], hints[name], f"{section}.{name}") for name in values}
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj
