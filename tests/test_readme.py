"""The README's figures that code can check: the model table, the TCN's receptive field."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_readme_model_table_matches_the_models():
    spec = importlib.util.spec_from_file_location("model_table", ROOT / "benchmarks" / "model_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    for row in module.rows():
        assert "| " + " | ".join(row) + " |" in readme, row


def test_readme_tcn_receptive_field_matches_the_model():
    import re

    from seqlab.models import build_model

    readme = (ROOT / "README.md").read_text()
    stated = re.search(r"1 \+ 2 \(K - 1\)\(2\^L - 1\) = (\d+) steps at the defaults", readme)
    assert stated is not None
    assert int(stated.group(1)) == build_model("tcn", 4, 3).receptive_field
