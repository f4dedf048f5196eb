"""Small comforts: ``seqlab --version``, a ``seqlab models`` listing that fits 100 columns, no backend switch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import seqlab
from conftest import run_cli
from seqlab.models.registry import get_model_entry, model_names

SRC = Path(__file__).parent.parent / "src"


def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as stopped:
        run_cli(capsys, "--version")
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"seqlab {seqlab.__version__}"


def test_models_listing_fits_100_columns_and_lists_every_option(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # a wide terminal still gets at most 100 columns
    status, out, _ = run_cli(capsys, "models")
    assert status == 0
    assert max(len(line) for line in out.splitlines()) <= 100
    words = " ".join(out.split())
    for name in model_names():
        entry = get_model_entry(name)
        assert re.search(rf"^{re.escape(name)} ", out, re.MULTILINE), name
        for key, value in entry.defaults().items():
            assert f"{key}={value}" in words, (name, key)
    monkeypatch.setenv("COLUMNS", "80")  # a narrower terminal: wrapped to its width
    _, narrow, _ = run_cli(capsys, "models")
    assert max(len(line) for line in narrow.splitlines()) <= 80


def test_importing_and_plotting_keep_the_users_matplotlib_backend(tmp_path):
    # A notebook's inline backend, here svg, must survive importing seqlab and writing its plots.
    script = f"""
import matplotlib
matplotlib.use("svg")
import seqlab.training.pipeline, seqlab.reports.inspection, seqlab.demo, seqlab.experiments.sine
from seqlab.reports.plots import plot_learning_curves
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
plot_learning_curves([{{"epoch": 1, "train_loss": 1.0, "val_loss": 1.5}}], __import__("pathlib").Path({str(tmp_path / "c.png")!r}))
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
print("kept")
"""
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "kept"
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_datasets_describe_counts_lengths_classes_and_splits(tmp_path, capsys):
    import numpy as np

    lengths = np.array([3] * 4 + [10] * 6)
    X = np.zeros((10, 10, 2), np.float32)
    y = np.array(["a", "b"] * 5)
    np.savez(tmp_path / "d.npz", X=X, y=y, lengths=lengths)
    status, out, err = run_cli(capsys, "datasets", "--describe", tmp_path / "d.npz")
    assert status == 0, err
    assert "classification, 10 sequences of up to 10 steps x 2 features" in out
    assert "lengths: min 3, median 10, max 10" in out
    bars = [line for line in out.splitlines() if " | " in line]
    assert bars[0].strip().startswith("3-") and bars[0].endswith(" 4") and bars[-1].endswith(" 6")
    assert sum(int(line.rsplit(" ", 1)[1]) for line in bars) == 10
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:2] in ("a ", "b ")}
    assert rows["a"][-1] == rows["b"][-1] == "5"  # total per class
    splits = re.search(r"train (\d+), val (\d+), test (\d+)", out)
    assert sum(map(int, splits.groups())) == 10
    assert sum(int(rows["a"][i]) for i in range(3)) == 5
    status, out, _ = run_cli(capsys, "datasets", "--describe", "airline")
    assert status == 0 and "monthly; season 12" in out and "144 points" in out
    status, _, err = run_cli(capsys, "datasets", "--describe", tmp_path / "missing.npz")
    assert status == 2 and "missing.npz: file not found" in err
