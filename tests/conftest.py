"""Shared fixtures: small generated data files in the formats seqlab reads."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from seqlab.cli.main import main


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``seqlab ARGV`` in this process; return (status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def write_ts(path, cases, labels, class_names, *, univariate=None, equal_length=None, header_extra=""):
    """Write a UEA/UCR .ts file; ``cases`` is a list of (T_i, F) arrays."""
    dims = cases[0].shape[1]
    univariate = dims == 1 if univariate is None else univariate
    equal = len({len(c) for c in cases}) == 1 if equal_length is None else equal_length
    lines = [
        "# generated for seqlab tests",
        "@problemName Synthetic",
        "@timeStamps false",
        "@missing false",
        f"@univariate {str(univariate).lower()}",
    ]
    if not univariate:
        lines.append(f"@dimensions {dims}")
    lines.append(f"@equalLength {str(equal).lower()}")
    if equal:
        lines.append(f"@seriesLength {len(cases[0])}")
    lines.append("@classLabel true " + " ".join(class_names))
    if header_extra:
        lines.append(header_extra)
    lines.append("@data")
    for case, label in zip(cases, labels):
        dims_text = [",".join(f"{v:.6g}" for v in case[:, d]) for d in range(case.shape[1])]
        lines.append(":".join(dims_text) + ":" + label)
    path.write_text("\n".join(lines) + "\n")


def make_waves(n, steps, features, classes=2, seed=0, variable=False):
    """Labelled sequences whose class sets the frequency and offset of a sine: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    cases = []
    for label in labels:
        length = int(rng.integers(steps // 2, steps + 1)) if variable else steps
        t = np.arange(length)[:, None]
        phase = rng.uniform(0, 2 * np.pi, size=(1, features))
        wave = np.sin(0.3 * (label + 1) * t + phase) + 0.5 * label + 0.1 * rng.normal(size=(length, features))
        cases.append(wave)
    return cases, labels


class InterruptAfter(pl.Callback):
    """Ctrl+C at the end of epoch ``epoch`` (from 1), after that epoch's validation."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 == self.epoch:
            raise KeyboardInterrupt
