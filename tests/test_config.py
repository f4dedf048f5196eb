"""Config: defaults, one override path, unknown keys and bad values refused."""

from __future__ import annotations

import pytest

from seqlab.config import apply_override, read_config_file, resolve_config
from seqlab.errors import SeqlabError


def test_defaults_fill_every_model_option():
    config = resolve_config({"model": {"name": "bilstm"}})
    assert config.model["bidirectional"] is True
    assert config.model["proj_size"] == 0
    assert config.train.epochs == "auto" and config.train.steps == "auto"  # resolved per run by the recipe


def test_file_then_set_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  name: gru\n  hidden_size: 32\ntrain:\n  lr: 0.01\n")
    tree = read_config_file(path)
    apply_override(tree, "model.hidden_size=16")
    apply_override(tree, "train.epochs=3")
    apply_override(tree, "model.head=attention")
    config = resolve_config(tree)
    assert config.model["hidden_size"] == 16
    assert config.model["head"] == "attention"
    assert config.train.lr == 0.01 and config.train.epochs == 3


@pytest.mark.parametrize(
    "tree,message",
    [
        ({"train": {"lr": -0.1}}, r"train.lr \(--lr\): expected a positive learning rate, got -0.1"),
        ({"train": {"epochs": "many"}}, r"train.epochs \(--epochs\): expected an integer, got 'many'"),
        ({"train": {"epoch": 3}}, r"unknown key train.epoch; valid keys for train: epochs"),
        ({"data": {"normalize": "robust"}}, r"data.normalize: expected one of standard, minmax, none, got 'robust'"),
        ({"model": {"name": "gru", "proj_size": 2}}, r"unknown key model.proj_size"),
    ],
)
def test_bad_values_name_the_key(tree, message):
    with pytest.raises(SeqlabError, match=message):
        resolve_config(tree)


def test_bad_override_syntax():
    with pytest.raises(SeqlabError, match=r"expected KEY=VALUE"):
        apply_override({}, "model.hidden_size")
    with pytest.raises(SeqlabError, match=r"expected task or a key of the form SECTION.KEY with SECTION one of data, model, train, forecast, lm"):
        apply_override({}, "optimizer.lr=1")


def test_config_file_errors(tmp_path):
    with pytest.raises(SeqlabError, match=r"config file .*missing.yaml: not found"):
        read_config_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: 1\n")
    with pytest.raises(SeqlabError, match=r"unknown section 'optim'"):
        read_config_file(bad)
