"""OnnxModel (an ONNX export run with a batch split across cores) against eager PyTorch, and predict --onnx."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from conftest import run_cli
from seqlab.errors import SeqlabError
from seqlab.export import export_run
from seqlab.export.exporter import export_spec
from seqlab.serving import OnnxModel
from seqlab.runs import load_run
from test_export import F, T, ZOO, make_run


def eager_outputs(run, x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """The run's model with its normaliser, in PyTorch (the oracle)."""
    deployable = export_spec(load_run(run)).module
    inputs = (torch.from_numpy(x),) + (() if lengths is None else (torch.from_numpy(lengths),))
    with torch.no_grad():
        return deployable(*inputs).numpy()


@pytest.mark.parametrize("name, options", [("gru", {}), ("bilstm", {"num_layers": 2}), ("cnn1d-gru", {})])
def test_a_batch_split_across_workers_gives_eager_outputs(tmp_path, name, options):
    run = make_run(tmp_path / "run", name, options)
    export_run(run, "onnx", tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    for workers, part_rows in ((1, 8), (2, 8), (3, 2), (2, 1)):  # one call; parts = workers; more parts than workers
        model = OnnxModel(tmp_path / "m.onnx", workers=workers, part_rows=part_rows)
        assert model.variable_length and model.features == F and model.class_names == ["a", "b", "c"]
        for batch in (1, 2, 5, 8):
            x = rng.normal(size=(batch, 17, F)).astype(np.float32)
            lengths = rng.integers(1, 18, size=batch)
            lengths[0] = 17
            np.testing.assert_allclose(model(x, lengths), eager_outputs(run, x, lengths), atol=1e-5)
            # without lengths every row is read at T
            np.testing.assert_allclose(model(x), eager_outputs(run, x, np.full(batch, 17)), atol=1e-5)
        split = workers > 1
        assert (model._single is not None) == split  # batches of 2 and more were cut into parts
        model.close()


def test_every_zoo_model_split_into_small_parts_gives_eager_outputs(tmp_path):
    """Parts keep every step: a convolution over time reads past a row's end, as in one call."""
    rng = np.random.default_rng(5)
    for i, (name, options) in enumerate(ZOO):
        run = make_run(tmp_path / f"run{i}", name, options)
        export_run(run, "onnx", tmp_path / f"m{i}.onnx")
        model = OnnxModel(tmp_path / f"m{i}.onnx", workers=2, part_rows=2)
        x = rng.normal(size=(8, T, F)).astype(np.float32)
        lengths = rng.integers(T // 2 + 1, T + 1, size=8) if model.variable_length else None
        if lengths is not None:
            lengths[0] = T
        np.testing.assert_allclose(model(x, lengths), eager_outputs(run, x, lengths), atol=1e-5,
                                   err_msg=f"{name} {options}")
        model.close()


def test_a_fixed_length_export_splits_too_and_refuses_lengths(tmp_path):
    run = make_run(tmp_path / "run", "lstm", {})
    export_run(run, "onnx", tmp_path / "m.onnx", fixed_length=True)
    model = OnnxModel(tmp_path / "m.onnx", workers=2, part_rows=3)
    assert not model.variable_length
    x = np.random.default_rng(1).normal(size=(7, 25, F)).astype(np.float32)
    np.testing.assert_allclose(model(x), eager_outputs(run, x, None), atol=1e-5)
    with pytest.raises(SeqlabError, match="--fixed-length"):
        model(x, np.full(7, 25))


def test_a_language_model_export_splits_its_batch_of_character_ids(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    lm = tmp_path / "lm"
    assert run_cli(capsys, "train", "--data", f"text:{text}", "--model", "lstm", "--hidden-size", "16",
                   "--epochs", "1", "--quiet", "--out", lm)[0] == 0
    export_run(lm, "onnx", tmp_path / "lm.onnx")
    model = OnnxModel(tmp_path / "lm.onnx", workers=2, part_rows=2)
    ids = np.random.default_rng(4).integers(1, 20, size=(5, 30))
    with torch.no_grad():
        expected = export_spec(load_run(lm)).module(torch.from_numpy(ids)).numpy()  # (B, T, V)
    np.testing.assert_allclose(model(ids), expected, atol=1e-5)
    with pytest.raises(SeqlabError, match=r"expected x of shape \(B >= 1, T\) token or character ids, got \(5, 30, 2\)"):
        model(np.zeros((5, 30, 2)))


def test_onnx_model_bad_input(tmp_path):
    with pytest.raises(SeqlabError, match="file not found"):
        OnnxModel(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(SeqlabError, match="junk.onnx: ONNX Runtime cannot load it"):
        OnnxModel(tmp_path / "junk.onnx")
    run = make_run(tmp_path / "run", "gru", {})
    export_run(run, "onnx", tmp_path / "step.onnx", streaming=True)
    with pytest.raises(SeqlabError, match="step model written with --streaming"):
        OnnxModel(tmp_path / "step.onnx")
    export_run(run, "onnx", tmp_path / "m.onnx")
    with pytest.raises(SeqlabError, match="--workers: expected at least 1, got 0"):
        OnnxModel(tmp_path / "m.onnx", workers=0)
    model = OnnxModel(tmp_path / "m.onnx", workers=2)
    with pytest.raises(SeqlabError, match=rf"expected x of shape \(B >= 1, T, {F}\), got \(3, 10, 4\)"):
        model(np.zeros((3, 10, 4), np.float32))
    with pytest.raises(SeqlabError, match=r"expected lengths in 1..10, got 0..10"):
        model(np.zeros((3, 10, F), np.float32), np.array([10, 0, 4]))
    with pytest.raises(SeqlabError, match=r"expected lengths of shape \(3,\), got \(0,\)"):
        model(np.zeros((3, 10, F), np.float32), np.array([], dtype=np.int64))
    conv = make_run(tmp_path / "conv", "cnn-gru", {"conv_axis": "time"})  # strided convolutions over time
    export_run(conv, "onnx", tmp_path / "conv.onnx")
    for workers in (1, 2):
        with pytest.raises(SeqlabError, match=r"conv.onnx: ONNX Runtime could not run it on x of shape \(\d, 3, 6\)"):
            OnnxModel(tmp_path / "conv.onnx", workers=workers)(np.zeros((4, 3, F), np.float32))


def test_predict_with_an_onnx_export_matches_predict_with_the_run(tmp_path, capsys):
    run = make_run(tmp_path / "run", "bigru", {})
    assert run_cli(capsys, "export", "--run", run, "--format", "onnx", "--out", tmp_path / "m.onnx")[0] == 0
    rng = np.random.default_rng(2)
    lengths = rng.integers(5, 21, size=300)  # more than one batch of 256
    np.savez(tmp_path / "new.npz", X=rng.normal(size=(300, 20, F)), lengths=lengths, y=rng.integers(0, 3, 300))
    tables = {}
    for source in (["--run", run], ["--onnx", tmp_path / "m.onnx", "--workers", "2"]):
        out = tmp_path / f"{source[0][2:]}.csv"
        status, printed, err = run_cli(capsys, "predict", *source, "--input", tmp_path / "new.npz", "--out", out)
        assert status == 0, err
        assert "Wrote 300 predictions" in printed
        with open(out) as handle:
            tables[source[0]] = list(csv.DictReader(handle))
    by_run, by_onnx = tables["--run"], tables["--onnx"]
    assert list(by_onnx[0]) == list(by_run[0]) == ["id", "predicted", "prob_a", "prob_b", "prob_c", "label"]
    probs = [np.array([[float(r[f"prob_{c}"]) for c in "abc"] for r in rows]) for rows in (by_run, by_onnx)]
    np.testing.assert_allclose(probs[1], probs[0], atol=2e-6)
    assert [r["predicted"] for r in by_onnx] == [r["predicted"] for r in by_run]


def test_predict_with_onnx_bad_input(tmp_path, capsys):
    run = make_run(tmp_path / "run", "gru", {})
    export_run(run, "onnx", tmp_path / "fixed.onnx", fixed_length=True)
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "ragged.npz", X=rng.normal(size=(4, 10, F)), lengths=np.array([10, 9, 10, 3]))
    np.savez(tmp_path / "narrow.npz", X=rng.normal(size=(4, 10, F - 1)))
    cases = [
        (["--onnx", tmp_path / "fixed.onnx", "--input", tmp_path / "ragged.npz"], "exported with --fixed-length"),
        (["--onnx", tmp_path / "fixed.onnx", "--input", tmp_path / "narrow.npz"],
         f"sequences have {F - 1} features; {tmp_path / 'fixed.onnx'} expects {F}"),
        (["--run", run, "--workers", "2", "--input", tmp_path / "narrow.npz"], "--workers: applies to --onnx only"),
    ]
    for argv, message in cases:
        status, _, err = run_cli(capsys, "predict", *argv, "--out", tmp_path / "p.csv")
        assert status != 0 and message in err and "Traceback" not in err, (argv, err)
        assert not (tmp_path / "p.csv").exists()
    with pytest.raises(SystemExit):  # argparse: --run and --onnx exclude each other
        run_cli(capsys, "predict", "--run", run, "--onnx", tmp_path / "fixed.onnx", "--input", "a", "--out", "b")
