"""The README's figures that code can check (the model table, the TCN's receptive field) and its Python examples."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

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


def readme_python_blocks() -> list[str]:
    import re

    return re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.MULTILINE | re.DOTALL)


def test_readme_has_python_examples_and_they_compile():
    blocks = readme_python_blocks()
    assert len(blocks) >= 8
    for number, block in enumerate(blocks, start=1):
        compile(block, f"README python block {number}", "exec")


@pytest.mark.slow
def test_readme_python_examples_run_as_written(tmp_path, monkeypatch):
    # every block in order, in one namespace and one folder, as a reader pasting them into a session would
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, block in enumerate(readme_python_blocks(), start=1):
        exec(compile(block, f"README python block {number}", "exec"), namespace)  # noqa: S102 - our own README
    assert (tmp_path / "runs" / "gru" / "metrics.json").is_file() and (tmp_path / "runs" / "lstm").is_dir()
