"""The seeds' experiments as compare presets: each reads, and its grid plans with the intended configs."""

from __future__ import annotations

import pytest

from seqlab.config import resolve_config
from seqlab.errors import SeqlabError
from seqlab.experiments.compare import COMPARE_PRESETS, plan_grid, read_preset


def test_tcn_preset_plans_the_article_s_four_models_on_digits(tmp_path):
    preset = read_preset("seed004-tcn-digits")
    cells = plan_grid(preset["models"], preset["data"], preset["seeds"], tmp_path, preset.get("config"))
    models = {cell.model: resolve_config(cell.job.tree).model for cell in cells}
    assert list(models) == ["tcn", "seed004-lstm-2layer", "bilstm", "gru"]
    assert models["seed004-lstm-2layer"]["name"] == "lstm" and models["seed004-lstm-2layer"]["num_layers"] == 2
    assert models["bilstm"]["bidirectional"] and {c.data for c in cells} == {"digits"}


def test_deap_preset_compares_the_two_hybrids_with_the_article_s_preprocessing(tmp_path):
    preset = read_preset("seed004-deap")
    data = tmp_path / "deap"
    data.mkdir()
    cells = plan_grid(preset["models"], [f"deap:{data}"], [0], tmp_path / "out", preset.get("config"))
    configs = [resolve_config(cell.job.tree) for cell in cells]
    assert [c.model["name"] for c in configs] == ["cnn1d-lstm", "cnn1d-gru"]
    for config in configs:
        assert config.data.options["eog"] == "regress" and config.data.options["scale"] == "zscore-minmax"
    with pytest.raises(SeqlabError, match="deap:data/deap-synthetic"):  # not generated in this folder
        plan_grid(preset["models"], preset["data"], [0], tmp_path / "out2", preset.get("config"))


def test_every_compare_preset_reads():
    for path in sorted(COMPARE_PRESETS.glob("*.yaml")):
        preset = read_preset(path.stem)
        assert preset["models"] and preset["data"], path
