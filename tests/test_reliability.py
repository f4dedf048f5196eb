"""Bad, damaged and adversarial inputs: refused with one line (exit 2), never silently used."""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import time

import numpy as np
import pytest
import torch

from conftest import make_waves, run_cli, write_ts
from seqlab.config import DataConfig, apply_override, read_config_file, resolve_config
from seqlab.data import deap, load_data
from seqlab.data.synthetic import deap_subject, write_deap, write_ut_har
from seqlab.errors import SeqlabError
from seqlab.io import write_json

TINY = ["--epochs", "1", "--hidden-size", "8", "--batch-size", "16", "--quiet"]


def waves_npz(path, n=24, steps=6, features=2, classes=2, **arrays):
    cases, labels = make_waves(n, steps, features, classes)
    np.savez(path, X=np.stack(cases), y=labels, **arrays)
    return path


def one_line_error(status, err, command, pattern):
    assert status == 2, err
    assert err.startswith(f"seqlab {command}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.search(pattern, err), err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 1-epoch GRU classifier on a small .npz file, through the CLI."""
    from seqlab.cli.main import main

    folder = tmp_path_factory.mktemp("tiny")
    data = waves_npz(folder / "waves.npz")
    assert main(["train", "--data", str(data), "--model", "gru", *TINY, "--out", str(folder / "run")]) == 0
    return folder / "run", data


# ----------------------------------------------------------------------------
# Silent corruption


def test_values_that_overflow_float32_arithmetic_are_refused(tmp_path, capsys):
    cases, labels = make_waves(24, 6, 2)
    X = np.stack(cases)
    X[3, 2, 1] = 1e38  # finite in float32, but its square is not
    np.savez(tmp_path / "huge.npz", X=X, y=labels)
    status, _, err = run_cli(capsys, "train", "--data", tmp_path / "huge.npz", *TINY, "--out", tmp_path / "run")
    one_line_error(status, err, "train", r"huge.npz: X contains 1 values beyond \+-1e\+15 \(first 1e\+38 at sequence 3, "
                                         r"step 2, feature 1\)")
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("hook,message", [
    ("on_train_start", r"training stopped: the training loss is nan at epoch 1, batch 1; check the inputs' scale"),
    ("on_validation_start", r"training stopped: the validation loss is nan after epoch 1; check the inputs' scale"),
])
def test_a_non_finite_loss_stops_training_with_a_message(tmp_path, hook, message):
    import lightning.pytorch as pl

    from seqlab.training.pipeline import train

    def poison(self, trainer, pl_module):
        with torch.no_grad():
            next(pl_module.model.parameters()).fill_(float("nan"))

    config = resolve_config({"data": {"spec": str(waves_npz(tmp_path / "w.npz"))}, "model": {"name": "gru",
                             "hidden_size": 8}, "train": {"epochs": 2}})
    with pytest.raises(SeqlabError, match=message):
        train(config, tmp_path / "run", quiet=True, callbacks=[type("Poison", (pl.Callback,), {hook: poison})()])
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_metrics_json_never_holds_nan(tmp_path):
    write_json(tmp_path / "m.json", {"test": {"loss": float("nan"), "rmse": float("inf"), "n": 3}, "x": [1.5, -np.inf]})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text) == {"test": {"loss": None, "rmse": None, "n": 3}, "x": [1.5, None]}
    assert "NaN" not in text and "Infinity" not in text


def test_onnx_model_and_streamer_refuse_nan(tiny_run, tmp_path):
    from seqlab.export import export_run
    from seqlab.serving import OnnxModel, Streamer

    run, _ = tiny_run
    export_run(run, "onnx", tmp_path / "m.onnx", False, 1e-4, False)
    model = OnnxModel(tmp_path / "m.onnx", workers=1)
    x = np.zeros((2, 6, 2), np.float32)
    assert model(x).shape == (2, 2)
    x[1, 3, 0] = np.nan
    with pytest.raises(SeqlabError, match=r"m.onnx: x holds 1 NaN or Inf values; expected finite numbers"):
        model(x)
    streamer = Streamer(run, "compiled")
    with pytest.raises(SeqlabError, match=r"NaN or Inf"):
        streamer.push([np.inf, 0.0])


def test_predict_refuses_nan_input_and_its_own_input_as_out(tiny_run, tmp_path, capsys):
    run, data = tiny_run
    X = np.load(data)["X"].copy()
    X[0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", X=X)
    status, _, err = run_cli(capsys, "predict", "--run", run, "--input", tmp_path / "nan.npz", "--out", tmp_path / "p.csv")
    one_line_error(status, err, "predict", r"nan.npz: X contains 1 NaN or Inf values")
    before = data.read_bytes()
    status, _, err = run_cli(capsys, "predict", "--run", run, "--input", data, "--out", data)
    one_line_error(status, err, "predict", r"--out .*waves.npz: is also an input of this command")
    assert data.read_bytes() == before
    status, _, err = run_cli(capsys, "predict", "--run", run, "--input", data, "--out", tmp_path)
    one_line_error(status, err, "predict", r"--out .*: is a folder; expected the path of a file to write")


def _deap_file(path, **change):
    content = deap_subject(np.random.default_rng(0), deap.RATE * (deap.BASELINE_SECONDS + 4))
    for key, (index, value) in change.items():
        content[key][index] = value
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=4)


@pytest.mark.parametrize("change,message", [
    ({"data": ((5, 2, 700), np.nan)}, r"s01.dat: data: 1 NaN or Inf samples \(first in trial 6, channel F3, sample 700\)"),
    ({"labels": ((3, 1), np.nan)}, r"s01.dat: labels: trial 4 has a NaN or Inf arousal rating"),
])
def test_deap_refuses_nan_samples_and_ratings(tmp_path, change, message):
    _deap_file(tmp_path / "s01.dat", **change)
    with pytest.raises(SeqlabError, match=message):
        load_data(DataConfig(spec=f"deap:{tmp_path}", options={"window": 1.0}))


def test_deap_cache_follows_the_content_of_a_replaced_file(tmp_path):
    """cp -p and rsync -t keep size and mtime: the cache must notice the new content anyway."""
    samples = deap.RATE * (deap.BASELINE_SECONDS + 4)
    folder = write_deap(tmp_path / "deap", subjects=1, samples=samples, seed=0)
    options = {"window": 1.0, "labels": "valence", "scale": "none", "band": []}
    first = load_data(DataConfig(spec=f"deap:{folder}", options=options))
    stat = (folder / "s01.dat").stat()
    write_deap(tmp_path / "other", subjects=1, samples=samples, seed=1)
    replacement = (tmp_path / "other" / "s01.dat").read_bytes()
    assert len(replacement) == stat.st_size
    (folder / "s01.dat").write_bytes(replacement)
    os.utime(folder / "s01.dat", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # what cp -p does
    second = load_data(DataConfig(spec=f"deap:{folder}", options=options))
    fresh = load_data(DataConfig(spec=f"deap:{tmp_path / 'other'}", options=options))
    np.testing.assert_array_equal(second.train.window_array(0), fresh.train.window_array(0))
    assert not np.array_equal(first.train.window_array(0), second.train.window_array(0))
    # an untouched file is not hashed again
    index = json.loads(next((folder / ".seqlab-cache").glob("*/index.json")).read_text())
    assert index["s01.dat"]["stat"][1:3] == [stat.st_size, stat.st_mtime_ns]


def test_ut_har_refuses_transposed_arrays(tmp_path):
    folder = write_ut_har(tmp_path / "ut", sizes=(7, 7, 7))
    X = np.load(folder / "data" / "X_val.csv")
    with (folder / "data" / "X_val.csv").open("wb") as handle:
        np.save(handle, X.transpose(0, 2, 1))  # (N, 90, 250): as many values, scrambled by a reshape
    with pytest.raises(SeqlabError, match=r"X_val.csv: expected an array of shape \(N, 250, 90\) or "
                                          r"\(N, 1, 250, 90\), got \(7, 90, 250\)"):
        load_data(DataConfig(spec=f"ut-har:{folder}"))
    with (folder / "data" / "X_val.csv").open("wb") as handle:
        np.save(handle, X[:, None])
    assert load_data(DataConfig(spec=f"ut-har:{folder}")).val.X.shape == (7, 250, 90)


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 10) + "]")
    lines.append("model: {name: gru, hidden_size: *i}")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    assert (tmp_path / "bomb.yaml").stat().st_size < 600
    started = time.perf_counter()
    with pytest.raises(SeqlabError, match=r"bomb.yaml: YAML expands to more than 100000 values"):
        read_config_file(tmp_path / "bomb.yaml")
    with pytest.raises(SeqlabError, match=r"--set model.x: YAML expands to more than 100000 values"):
        apply_override({}, "model.x=&a [*a]")  # a list that holds itself
    assert time.perf_counter() - started < 2.0


def test_resolve_config_refuses_misspelt_sections():
    with pytest.raises(SeqlabError, match=r"config: unknown section 'trian'; valid sections: task, data, model"):
        resolve_config({"model": {"name": "gru"}, "trian": {"epochs": 1}})


def test_set_reaches_nested_keys(tmp_path):
    tree = {}
    apply_override(tree, "data.spec=ut-har:somewhere")
    apply_override(tree, "data.options.normalize=per-file-minmax")
    config = resolve_config(tree)
    assert config.data.options == {"normalize": "per-file-minmax"}
    apply_override(tree, "data.spec=digits")
    with pytest.raises(SeqlabError, match=r"--set 'data.spec.x=1': data.spec is 'digits', not a mapping"):
        apply_override(tree, "data.spec.x=1")


@pytest.mark.parametrize("labels,message", [
    (np.zeros(12, int), r"every sequence has the same label \(0: 12\); classification needs at least 2 classes"),
    (np.array([0] * 10 + [1, 2]), r"some classes have a single sequence \(0: 10, 1: 1, 2: 1\)"),
])
def test_data_a_classifier_cannot_learn_is_refused(tmp_path, labels, message):
    np.savez(tmp_path / "d.npz", X=np.random.default_rng(0).normal(size=(len(labels), 5, 2)), y=labels)
    with pytest.raises(SeqlabError, match=message):
        load_data(DataConfig(spec=str(tmp_path / "d.npz")))


# ----------------------------------------------------------------------------
# One line instead of a traceback


@pytest.fixture
def broken_files(tmp_path):
    waves_npz(tmp_path / "good.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "good.npz").read_bytes()[:300])
    (tmp_path / "latin1.csv").write_bytes("id,label,a\ns1,caf\xe9,1\n".encode("latin-1"))
    cases, labels = make_waves(8, 5, 1)
    write_ts(tmp_path / "eight.ts", cases, [str(v) for v in labels], ["0", "1"])
    text = (tmp_path / "eight.ts").read_text().replace("@seriesLength 5", "@seriesLength eight")
    (tmp_path / "eight.ts").write_text(text)
    return tmp_path


@pytest.mark.parametrize("args,pattern", [
    (["--data", "{d}/empty.npz"], r"empty.npz: not a readable .npz archive \(EOFError"),
    (["--data", "{d}/cut.npz"], r"cut.npz: not a readable .npz archive \(BadZipFile"),
    (["--data", "{d}/latin1.csv"], r"latin1.csv: not UTF-8 text \(found byte 0xe9\)"),
    (["--data", "{d}/eight.ts"], r"eight.ts: @seriesLength expects an integer, got 'eight'"),
    (["--data", "{d}/good.npz", "--set", "train.seed=-1"], r"train.seed \(--seed\): expected an integer in 0 .. 2\*\*32 - 1"),
    (["--data", "{d}/good.npz", "--set", "model.hidden_size=1000000000000"], r"out of memory \(.* GiB asked for\)"),
])
def test_bad_files_and_values_give_one_line(broken_files, capsys, args, pattern):
    args = [a.replace("{d}", str(broken_files)) for a in args]
    status, _, err = run_cli(capsys, "train", *args, *TINY, "--out", broken_files / "out")
    one_line_error(status, err, "train", pattern)


def test_full_disk_and_read_only_folders_give_one_line(tiny_run, tmp_path, capsys, monkeypatch):
    import seqlab.io

    run, data = tiny_run

    def full_disk(fd, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(seqlab.io.os, "fsync", full_disk)
        status, _, err = run_cli(capsys, "predict", "--run", run, "--input", data, "--out", tmp_path / "p.csv")
    one_line_error(status, err, "predict", r"p.csv: No space left on device")
    assert not list(tmp_path.iterdir())  # no temporary file left behind

    def read_only(*args, dir=None, **kwargs):  # what mkstemp meets in a read-only folder, also as root
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))

    with monkeypatch.context() as patch:
        patch.setattr(seqlab.io.tempfile, "mkstemp", read_only)
        status, _, err = run_cli(capsys, "predict", "--run", run, "--input", data, "--out", tmp_path / "p.csv")
        one_line_error(status, err, "predict", rf"{tmp_path}: Permission denied")
        status, _, err = run_cli(capsys, "eval", "--run", run)
        one_line_error(status, err, "eval", rf"{run}: Permission denied")


def test_stream_out_is_written_only_after_the_input_is_read(tiny_run, tmp_path, capsys):
    run, _ = tiny_run
    out = tmp_path / "old.csv"
    out.write_text("precious\n")
    (tmp_path / "frames.csv").write_text("1,2\n3,oops\n")
    status, _, err = run_cli(capsys, "stream", "--run", run, "--input", tmp_path / "frames.csv", "--out", out)
    one_line_error(status, err, "stream", r"frames.csv:2: expected 2 numbers")
    assert out.read_text() == "precious\n" and sorted(p.name for p in tmp_path.iterdir()) == ["frames.csv", "old.csv"]
    status, _, err = run_cli(capsys, "stream", "--run", run, "--input", tmp_path / "missing.csv", "--out", out)
    one_line_error(status, err, "stream", r"--input .*missing.csv: file not found")
    assert out.read_text() == "precious\n"
    (tmp_path / "frames.csv").write_text("1,2\n3,4\n")
    assert run_cli(capsys, "stream", "--run", run, "--input", tmp_path / "frames.csv", "--out", out)[0] == 0
    assert out.read_text().splitlines()[0].startswith("frame,predicted")
    status, _, err = run_cli(capsys, "stream", "--run", run, "--input", tmp_path / "frames.csv", "--out", tmp_path)
    one_line_error(status, err, "stream", r"is a folder")
    status, _, err = run_cli(capsys, "export", "--run", run, "--format", "onnx", "--out", tmp_path)
    one_line_error(status, err, "export", r"is a folder")


@pytest.mark.parametrize("damage,pattern", [
    (lambda c: c["state_dict"].pop(next(iter(c["state_dict"]))), r"damaged seqlab checkpoint: the model cannot be "
                                                                r"rebuilt from it \(RuntimeError: Error\(s\) in loading"),
    (lambda c: c["state_dict"].update({k: torch.zeros(3) for k in list(c["state_dict"])[:1]}), r"size mismatch"),
    (lambda c: c.update(task="ranking"), r"unknown task 'ranking'"),
    (lambda c: c.pop("extras"), r"no 'extras' entry"),
    (lambda c: c["model"].update(name="nope"), r"damaged seqlab checkpoint: .*unknown model 'nope'"),
    (lambda c: c["extras"].update(class_names=None), r"extras.class_names: expected a list, got NoneType"),
    (lambda c: c["extras"]["normalizer"].update(scale=[0.0, 1.0]), r"extras.normalizer: expected finite shift and "
                                                                   r"positive scale"),
    (lambda c: c["model"].update(options=torch.zeros(3)), r"the model cannot be rebuilt from it \(TypeError"),
])
def test_damaged_checkpoints_give_one_line(tiny_run, tmp_path, capsys, damage, pattern):
    import shutil

    run, data = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    checkpoint = torch.load(copy / "model.pt", weights_only=True)
    damage(checkpoint)
    torch.save(checkpoint, copy / "model.pt")
    status, _, err = run_cli(capsys, "predict", "--run", copy, "--input", data, "--out", tmp_path / "p.csv")
    one_line_error(status, err, "predict", pattern)


@pytest.mark.parametrize("name,options", [("cnn-gru-parallel", {}), ("cnn-gru", {"conv_axis": "feature"})])
def test_time_as_channel_models_take_batches_cut_to_their_longest_sequence(name, options):
    """Training cuts each batch of variable-length data to its longest sequence (trim_batch)."""
    from seqlab.models.registry import build_model

    model = build_model(name, 3, 2, steps=12, hidden_size=8, **options).eval()
    x = torch.randn(2, 12, 3)
    x[:, 7:] = 0.0  # padding, as the data is stored
    lengths = torch.tensor([7, 5])
    torch.testing.assert_close(model(x[:, :7], lengths), model(x, lengths))
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 12, F\)"):
        model(x[:, :7])  # without lengths, a short input is not a cut batch


# ----------------------------------------------------------------------------
# Bounded work


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory):
    from seqlab.cli.main import main

    out = tmp_path_factory.mktemp("forecast") / "air"
    assert main(["train", "--data", "airline", "--model", "gru", *TINY, "--set", "forecast.transforms=[log]",
                 "--set", "train.baselines=false", "--out", str(out)]) == 0
    return out


def test_forecast_horizon_is_bounded_and_overflow_refused(forecast_run, tmp_path, capsys):
    import shutil

    started = time.perf_counter()
    status, _, err = run_cli(capsys, "forecast", "--run", forecast_run, "--horizon", "100000000",
                             "--out", tmp_path / "f.csv")
    one_line_error(status, err, "forecast", r"--horizon: expected an integer in 1..100000, got 100000000")
    assert time.perf_counter() - started < 5
    copy = tmp_path / "run"
    shutil.copytree(forecast_run, copy)
    checkpoint = torch.load(copy / "model.pt", weights_only=True)
    bias = [k for k in checkpoint["state_dict"] if k.endswith("bias")][-1]
    checkpoint["state_dict"][bias].fill_(1e4)  # on the log scale: exp(1e4 * 0.39) overflows float64
    torch.save(checkpoint, copy / "model.pt")
    status, _, err = run_cli(capsys, "forecast", "--run", copy, "--horizon", "5", "--out", tmp_path / "f.csv")
    one_line_error(status, err, "forecast", r"--horizon 5: the forecast leaves the range of numbers from step 1 on")
    assert not (tmp_path / "f.csv").exists()


def test_generate_length_and_temperature_are_checked(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat. " * 40)
    out = tmp_path / "lm"
    status, _, err = run_cli(capsys, "train", "--data", f"text:{text}", "--model", "gru", *TINY, "--set", "lm.bptt=20",
                             "--out", out)
    assert status == 0, err
    for flags, pattern in ((["--length", "1000000000"], r"--length: expected an integer in 0..100000, got 1000000000"),
                           (["--temperature", "nan"], r"--temperature: expected a positive finite number, got nan")):
        status, _, err = run_cli(capsys, "generate", "--run", out, "--prompt", "the", *flags)
        one_line_error(status, err, "generate", pattern)


def test_readme_nested_set_example_trains(tmp_path, capsys):
    folder = write_ut_har(tmp_path / "ut", sizes=(14, 7, 7))
    status, _, err = run_cli(capsys, "train", "--data", f"ut-har:{folder}", "--model", "gru", *TINY,
                             "--set", "data.options.normalize=per-file-minmax", "--out", tmp_path / "run")
    assert status == 0, err
    assert "normalize: per-file-minmax" in (tmp_path / "run" / "config.yaml").read_text()


@pytest.mark.parametrize("train,pattern", [
    ({"batch_size": 2**64}, r"train.batch_size \(--batch-size\): expected auto or an integer in 1 .. 2\*\*31 - 1"),
    ({"lr": 1e300}, r"train.lr \(--lr\): expected a learning rate below 1e6, got 1e\+300"),
])
def test_train_values_beyond_what_the_optimiser_can_hold_are_refused(train, pattern):
    with pytest.raises(SeqlabError, match=pattern):
        resolve_config({"train": train})
