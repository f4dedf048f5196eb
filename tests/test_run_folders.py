"""Run folders: nothing written before the config and data check out, a marker, a lock, umask, own files only."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import yaml

from conftest import InterruptAfter, make_waves, run_cli
from seqlab.config import config_to_yaml, resolve_config
from seqlab.errors import SeqlabError
from seqlab.io import write_json
from seqlab.runs import MARKER_FILE, open_run_folder
from seqlab.training.pipeline import TrainingInterrupted, train

TINY = ["--model", "rnn", "--epochs", "1", "--hidden-size", "4", "--quiet"]


def test_a_run_that_fails_before_training_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", "--data", "digitz", *TINY, "--out", out)
    assert status == 2 and "digitz" in err
    assert not out.exists()
    out.mkdir()
    status, _, err = run_cli(capsys, "train", "--data", "digits", *TINY, "--set", "model.head=step", "--out", out)
    assert status == 2 and "model.head" in err
    assert list(out.iterdir()) == []  # an existing empty folder stays empty
    status, _, err = run_cli(capsys, "train", "--data", "digits", *TINY, "--out", out)  # the corrected command
    assert status == 0, err
    assert json.loads((out / MARKER_FILE).read_text())["format"] == "seqlab-run-folder/1"


def test_overwrite_needs_the_marker_and_removes_only_seqlabs_files(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my: own\n")
    (mine / "model.pt").write_bytes(b"my weights")
    status, _, err = run_cli(capsys, "train", "--data", "digits", *TINY, "--out", mine, "--overwrite")
    assert status == 2 and "holds no seqlab run (seqlab-run.json)" in err
    assert (mine / "model.pt").read_bytes() == b"my weights" and sorted(p.name for p in mine.iterdir()) == [
        "config.yaml", "model.pt"]

    run = tmp_path / "run"
    assert run_cli(capsys, "train", "--data", "digits", *TINY, "--out", run)[0] == 0
    (run / "notes.txt").write_text("mine")
    status, _, err = run_cli(capsys, "train", "--data", "digits", *TINY, "--seed", "1", "--out", run)
    assert status == 2 and "already holds a different run" in err
    assert run_cli(capsys, "train", "--data", "digits", *TINY, "--seed", "1", "--out", run, "--overwrite")[0] == 0
    assert (run / "notes.txt").read_text() == "mine"
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["seed"] == 1


def test_a_second_process_on_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    config = resolve_config({"model": {"name": "rnn", "hidden_size": 4}, "train": {"epochs": 1}})
    with open_run_folder(out, config_to_yaml(config), "fingerprint", overwrite=False):
        with pytest.raises(SeqlabError, match=f"another seqlab process \\(pid {os.getpid()}\\) is training"):
            open_run_folder(out, config_to_yaml(config), "fingerprint", overwrite=False)
        status, _, err = run_cli(capsys, "train", "--data", "digits", *TINY, "--out", out)
        assert status == 2 and "another seqlab process" in err and "Traceback" not in err
        assert not (out / "metrics.json").exists()
    assert run_cli(capsys, "train", "--data", "digits", *TINY, "--out", out)[0] == 0  # released


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == mode
    finally:
        os.umask(old)


def test_a_runs_files_follow_the_umask(tmp_path, capsys):
    old = os.umask(0o027)
    try:
        assert run_cli(capsys, "train", "--data", "digits", *TINY, "--epochs", "2", "--out", tmp_path / "run")[0] == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert {"model.pt", "metrics.json", "last.ckpt", "history.csv"} <= {p.name for p in files}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(0o640)}


@pytest.mark.parametrize("argv, message", [
    (["--data", "text:founding", "--model", "lstm", "--set", "model.head=attention"],
     "model.head: the lm task does not use it; language models take hidden_size"),
    (["--data", "text:founding", "--model", "lstm", "--set", "model.proj_size=4"], "model.proj_size: the lm task"),
    (["--data", "text:founding", "--model", "gru", "--bidirectional"],
     r"model.bidirectional \(--bidirectional\): a language model predicts the next character"),
    (["--data", "digits", "--set", "forecast.window=5"], "forecast.window: the classification task does not use"),
    (["--data", "digits", "--set", "lm.bptt=5"], "lm.bptt: the classification task does not use the lm section"),
    (["--data", "airline", "--set", "data.normalize=none"], "data.normalize: the forecast task does not use it"),
    (["--data", "text:founding", "--set", "data.val_fraction=0.2"], "data.val_fraction: the lm task does not use"),
])
def test_options_a_task_does_not_use_are_refused(tmp_path, capsys, argv, message):
    import re

    status, _, err = run_cli(capsys, "train", *argv, "--epochs", "1", "--quiet", "--out", tmp_path / "run")
    assert status == 2 and re.search(message, err), err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_resolved_configs_hold_only_what_the_task_uses():
    lm = resolve_config({"data": {"spec": "text:founding"}, "model": {"name": "lstm"}}).to_dict()
    assert set(lm["model"]) == {"name", "hidden_size", "num_layers", "dropout", "backend"}  # lstm: no nonlinearity
    assert lm["data"] == {"spec": "text:founding"} and "forecast" not in lm
    # a resolved config is itself a valid config
    assert resolve_config(yaml.safe_load(yaml.safe_dump(lm))).to_dict() == lm
    forecast = resolve_config({"data": {"spec": "airline"}}).to_dict()
    assert resolve_config(forecast).to_dict() == forecast


def test_resuming_on_changed_data_is_refused_and_stray_temporary_files_go(tmp_path):
    cases, labels = make_waves(60, 12, 2, seed=1)
    path = tmp_path / "waves.npz"
    np.savez(path, X=np.stack(cases), y=labels)
    config = resolve_config({"data": {"spec": str(path)}, "model": {"name": "gru", "hidden_size": 4},
                             "train": {"epochs": 3, "patience": 0}})
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(config, out, quiet=True, callbacks=[InterruptAfter(2)])
    stray = out / "checkpoints" / ".last.ckpt.x1y2z3.tmp"
    stray.write_bytes(b"half a checkpoint")  # what a SIGKILL during a save leaves
    changed = np.stack(cases)
    changed[0, 0, 0] += 1.0
    np.savez(path, X=changed, y=labels)
    with pytest.raises(SeqlabError, match="the data differs from the data this interrupted run started with"):
        train(config, out, quiet=True)
    np.savez(path, X=np.stack(cases), y=labels)
    result = train(config, out, quiet=True)
    assert result.metrics["epochs"] == 3
    assert not list(out.rglob("*.tmp"))
