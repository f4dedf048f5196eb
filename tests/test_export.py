"""Export parity for every zoo model, ncnn, streaming equality, and the CLI around them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from seqlab.data.scaling import Normalizer
from seqlab.errors import SeqlabError
from seqlab.export import export_run
from seqlab.export.parity import whole_sequence_per_step
from seqlab.serving.streamer import Streamer, step_model
from seqlab.models import build_model
from seqlab.runs import load_run, save_run_checkpoint

F, C, T = 6, 3, 20
ZOO = [
    ("rnn", {}), ("rnn", {"nonlinearity": "relu", "num_layers": 2}), ("gru", {}), ("gru", {"num_layers": 2}),
    ("lstm", {}), ("lstm", {"proj_size": 4}), ("lstm", {"proj_size": 3, "num_layers": 2, "bidirectional": True}),
    ("bigru", {}), ("bilstm", {"num_layers": 2}), ("gru", {"head": "mean"}), ("lstm", {"head": "attention"}),
    ("cnn-gru", {}), ("cnn-gru", {"conv_axis": "time"}), ("cnn-gru-parallel", {}), ("cnn-lstm-parallel", {}),
    ("ablstm", {"hidden_size": 16}), ("cnn1d-lstm", {}), ("cnn1d-gru", {}), ("tcn", {}),
    ("lstm-fcn", {}), ("gru-fcn", {"attention": True, "squeeze_excite": True}), ("lstm-fcn", {"dimension_shuffle": True}),
    ("gru", {"patch": 3}), ("lstm", {"patch": 2, "head": "mean"}),  # T = 20: patches of 3 leave a padded tail
]


RECURRENT = ("rnn", "gru", "lstm", "bigru", "bilstm")


def make_run(folder: Path, name: str, options: dict, seed: int = 0, features: int = F, steps: int = T) -> Path:
    """A run folder around an untrained model: export parity needs weights, not skill."""
    from seqlab.models.registry import resolve_model_options

    if name in RECURRENT:
        options = {"hidden_size": 16, **options}
    resolved = resolve_model_options({"name": name, **options})
    resolved.pop("name")
    torch.manual_seed(seed)
    model = build_model(name, features, C, steps=steps, **resolved)
    rng = np.random.default_rng(seed)
    normalizer = Normalizer("standard", rng.normal(size=features).astype(np.float32),
                            rng.uniform(0.5, 2, features).astype(np.float32))
    spec = {"name": name, "builder": "zoo", "input_size": features, "output_size": C, "steps": steps, "options": resolved}
    folder.mkdir(parents=True, exist_ok=True)
    save_run_checkpoint(folder / "model.pt", model, spec, {"train": {"seed": 0}}, "classification",
                        {"normalizer": normalizer.state_dict(), "class_names": ["a", "b", "c"], "features": features,
                         "steps": steps, "feature_names": [], "variable_length": False})
    return folder


HAVE_NCNN = importlib.util.find_spec("ncnn") is not None and importlib.util.find_spec("pnnx") is not None


def train_run(folder: Path, data: str, model: dict, epochs: int = 1) -> Path:
    """A briefly trained run on real data (trained weights, the data's own lengths and normaliser)."""
    from seqlab.config import resolve_config
    from seqlab.training.pipeline import train

    config = resolve_config({"data": {"spec": data}, "model": model, "train": {"epochs": epochs, "seed": 0}})
    train(config, folder, quiet=True)
    return folder


@pytest.fixture(scope="module")
def vowels(tmp_path_factory):
    """JapaneseVowels (7 to 29 steps of 12 features, mixed within a batch): a bigru and the README's bilstm."""
    root = tmp_path_factory.mktemp("vowels")
    return {(name, head): train_run(root / f"{name}-{head}", "aeon:JapaneseVowels",
                                    {"name": name, "hidden_size": 16, "head": head})
            for name, head in (("bigru", "last"), ("bilstm", "attention"))}


def test_the_vowels_test_split_has_mixed_lengths(vowels):
    from seqlab.export.quantize import held_out_split

    data = held_out_split(load_run(vowels["bigru", "last"]))
    assert data.lengths is not None and data.lengths.min() < data.lengths.max() == data.X.shape[1] == 29


def assert_export_matches_eager_on_the_test_split(run_dir: Path, tmp_path: Path, formats=("onnx", "torchscript")):
    """Export, then run the file on the run's real test split, at its real lengths, against eager PyTorch."""
    from seqlab.serving import OnnxModel
    from seqlab.export.quantize import held_out_split

    run = load_run(run_dir)
    data = held_out_split(run)
    x, lengths = torch.from_numpy(data.X), torch.from_numpy(data.lengths)  # (N, 29, 12), (N,)
    with torch.no_grad():
        expected = run.model.eval()(torch.from_numpy(run.normalizer.transform(data).X), lengths).numpy()
    for fmt in formats:
        path = tmp_path / f"{run_dir.name}.{fmt}"
        report = export_run(run_dir, fmt, path)
        assert report.max_abs_diff <= 1e-4
        if fmt == "onnx":
            got = OnnxModel(path, workers=1)(data.X, data.lengths)
        else:
            with torch.no_grad():
                got = torch.jit.load(str(path))(x, lengths).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=f"{run_dir.name} {fmt}")


def test_real_variable_length_runs_export_with_parity(vowels, tmp_path):
    """The README's quick-start bilstm (attention) and the demo's bigru: whole-length sequences in the tracing
    batch once froze the no-packing branch into the graph (off by 2.47 and 6.12)."""
    for run_dir in vowels.values():
        assert_export_matches_eager_on_the_test_split(run_dir, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bigru", "bilstm", "gru", "lstm"])
@pytest.mark.parametrize("head", ["last", "mean", "attention"])
def test_every_recurrent_head_exports_with_parity_on_real_variable_lengths(tmp_path, name, head):
    run_dir = train_run(tmp_path / "run", "aeon:JapaneseVowels", {"name": name, "hidden_size": 8, "head": head})
    assert_export_matches_eager_on_the_test_split(run_dir, tmp_path)


def test_parity_table_for_every_zoo_model(tmp_path, capsys):
    rows, refused = [], []
    for i, (name, options) in enumerate(ZOO):
        run = make_run(tmp_path / f"run{i}", name, options, seed=i)
        for fmt in ("onnx", "torchscript"):
            report = export_run(run, fmt, tmp_path / f"m{i}.{fmt}")
            rows.append((f"{name} {options}", fmt, report.max_abs_diff))
            assert report.path.is_file()
        if HAVE_NCNN:  # batch 1 (ncnn has no batch axis); models it cannot run are refused with the reason
            try:
                report = export_run(run, "ncnn", tmp_path / f"m{i}.param")
                rows.append((f"{name} {options}", "ncnn", report.max_abs_diff))
            except SeqlabError as error:
                refused.append((f"{name} {options}", str(error)))
    with capsys.disabled():
        print("\nexport parity (max |exported - eager| over batch 1, 3, 8 and several lengths; ncnn batch 1)")
        for label, fmt, diff in rows:
            print(f"  {label:60s} {fmt:12s} {diff:.2e}")
        for label, reason in refused:
            print(f"  {label:60s} ncnn         refused: {reason}")
    assert max(d for _, _, d in rows) <= 1e-4
    assert all("--format ncnn" in reason for _, reason in refused)
    if HAVE_NCNN:
        exported = {label.split()[0] for label, fmt, _ in rows if fmt == "ncnn"}
        assert {"rnn", "gru", "lstm", "bigru", "bilstm", "cnn-gru"} <= exported


@pytest.mark.skipif(importlib.util.find_spec("ncnn") is None or importlib.util.find_spec("pnnx") is None,
                    reason="ncnn and pnnx are not installed")
@pytest.mark.parametrize("name,options", [("rnn", {}), ("gru", {}), ("lstm", {}), ("bigru", {}), ("cnn-gru", {})])
def test_ncnn_export_matches_eager(tmp_path, name, options):
    run = make_run(tmp_path / "run", name, options)
    report = export_run(run, "ncnn", tmp_path / "model.param")
    assert report.max_abs_diff <= 1e-4 and (tmp_path / "model.bin").is_file()


@pytest.mark.skipif(not HAVE_NCNN, reason="ncnn and pnnx are not installed")
@pytest.mark.parametrize("name", ["gru", "cnn-gru"])
def test_ncnn_export_matches_eager_at_ut_har_size(tmp_path, name):
    """250 steps of 90 features: inputs large enough that memory freed under ncnn would be reused."""
    run = make_run(tmp_path / "run", name, {}, features=90, steps=250)
    report = export_run(run, "ncnn", tmp_path / "model.param")
    assert report.max_abs_diff <= 1e-4


def test_ncnn_refuses_what_it_cannot_run(tmp_path):
    run = make_run(tmp_path / "run", "tcn", {})
    with pytest.raises(SeqlabError, match=r"--format ncnn: tcn is not supported"):
        export_run(run, "ncnn", tmp_path / "m.param")


def test_export_and_streaming_follow_the_registry_entry_not_the_name(tmp_path, monkeypatch):
    """A family registered as gru's module with other capabilities: the export fixes its time axis and
    reads no lengths, streaming and ncnn refuse it; the same weights as plain gru export with lengths."""
    import dataclasses

    from seqlab.models import registry

    fixed = dataclasses.replace(registry.get_model_entry("gru"), name="gru-fixed", fixed_length=lambda options: True,
                                streamable=False, ncnn=False)
    monkeypatch.setitem(registry._REGISTRY, "gru-fixed", fixed)
    runs = {name: make_run(tmp_path / name, name, {}) for name in ("gru", "gru-fixed")}
    reports = {name: export_run(run, "onnx", tmp_path / f"{name}.onnx") for name, run in runs.items()}
    assert {length for _, length, _ in reports["gru-fixed"].cases} == {T}
    assert "lengths" not in reports["gru-fixed"].note and "lengths" in reports["gru"].note
    assert len({length for _, length, _ in reports["gru"].cases}) > 1
    with pytest.raises(SeqlabError, match=r"model gru-fixed cannot stream: streaming covers the recurrent"):
        export_run(runs["gru-fixed"], "onnx", tmp_path / "step.onnx", streaming=True)
    with pytest.raises(SeqlabError, match=r"--format ncnn: gru-fixed is not supported \(ncnn export covers "
                                          r"rnn, gru, lstm, bigru, bilstm, cnn-gru\)"):
        export_run(runs["gru-fixed"], "ncnn", tmp_path / "m.param")
    assert export_run(runs["gru"], "onnx", tmp_path / "step.onnx", streaming=True).streaming


@pytest.mark.parametrize("name,options", [
    ("rnn", {}), ("gru", {"num_layers": 2}), ("lstm", {}), ("lstm", {"proj_size": 4}),
    ("lstm", {"proj_size": 3, "num_layers": 2}), ("rnn", {"nonlinearity": "relu"}),
    ("gru", {"head": "mean"}), ("lstm", {"head": "attention", "num_layers": 2}), ("rnn", {"head": "attention"}),
])
def test_streaming_step_by_step_equals_whole_sequence(tmp_path, name, options):
    run = make_run(tmp_path / "run", name, options)
    loaded = load_run(run)
    step = step_model(loaded)
    x = torch.randn(1, 15, F) * 2
    reference = torch.softmax(torch.tensor(whole_sequence_per_step(step, x)[0]), dim=1).numpy()  # (T, C)
    # the prefix reference agrees with the model itself run on every prefix
    for t in (0, 6, 14):
        with torch.no_grad():
            whole = loaded.model((x[:, : t + 1] - step.shift) / step.scale)
        np.testing.assert_allclose(reference[t], torch.softmax(whole[0], dim=0).numpy(), atol=1e-6)
    backends = ["eager", "compiled"]
    for backend in backends:
        streamer = Streamer(run, backend)
        got = np.stack([streamer.push(frame) for frame in x[0].numpy()])
        np.testing.assert_allclose(got, reference, atol=2e-5)
        streamer.reset()
        np.testing.assert_allclose(streamer.push(x[0, 0].numpy()), reference[0], atol=2e-5)
    for fmt in ("torchscript", "onnx"):
        report = export_run(run, fmt, tmp_path / f"step.{fmt}", streaming=True)
        assert report.streaming and report.max_abs_diff <= 1e-4
    onnx_streamer = Streamer(tmp_path / "step.onnx")
    got = np.stack([onnx_streamer.push(frame) for frame in x[0].numpy()])
    np.testing.assert_allclose(got, reference, atol=2e-5)


@pytest.mark.skipif(importlib.util.find_spec("ncnn") is None or importlib.util.find_spec("pnnx") is None,
                    reason="ncnn and pnnx are not installed")
@pytest.mark.parametrize("name,options", [("rnn", {}), ("gru", {"num_layers": 2}), ("lstm", {}),
                                          ("lstm", {"proj_size": 3, "num_layers": 2})])
def test_ncnn_step_model_streams_like_the_whole_sequence(tmp_path, name, options, capfd):
    run = make_run(tmp_path / "run", name, options)
    report = export_run(run, "ncnn", tmp_path / "step.param", streaming=True)
    assert report.streaming and report.max_abs_diff <= 1e-4
    console = capfd.readouterr()
    assert "pass_level" not in console.out + console.err  # pnnx's own report stays out of the console
    assert (tmp_path / "step.bin").is_file() and (tmp_path / "step.json").is_file()
    step = step_model(load_run(run))
    x = torch.randn(1, 12, F)
    reference = torch.softmax(torch.tensor(whole_sequence_per_step(step, x)[0]), dim=1).numpy()
    streamer = Streamer(tmp_path / "step.param")
    for _ in range(2):  # reset starts the stream again
        got = np.stack([streamer.push(frame) for frame in x[0].numpy()])
        np.testing.assert_allclose(got, reference, atol=2e-5)
        streamer.reset()
    (tmp_path / "step.json").write_text("{not json")
    with pytest.raises(SeqlabError, match=r"step.json: expected the JSON written by seqlab export"):
        Streamer(tmp_path / "step.param")
    run = make_run(tmp_path / "mean", "gru", {"head": "mean"})
    with pytest.raises(SeqlabError, match=r"head 'mean'"):
        export_run(run, "ncnn", tmp_path / "mean.param", streaming=True)
    run = make_run(tmp_path / "relu", "rnn", {"nonlinearity": "relu"})
    with pytest.raises(SeqlabError, match=r"tanh only"):
        export_run(run, "ncnn", tmp_path / "relu.param", streaming=True)


@pytest.mark.parametrize("backend", ["compiled", "eager"])
def test_a_non_finite_frame_is_refused_and_leaves_the_state_alone(tmp_path, backend):
    run = make_run(tmp_path / "run", "gru", {})
    frames = np.random.default_rng(2).normal(size=(3, F))
    streamer, reference = Streamer(run, backend), Streamer(run, backend)
    streamer.push(frames[0])
    reference.push(frames[0])
    for value in (np.nan, np.inf, -np.inf):
        poisoned = frames[1].copy()
        poisoned[2] = value
        with pytest.raises(SeqlabError, match=r"frame has NaN or Inf values; expected finite numbers"):
            streamer.push(poisoned)
    np.testing.assert_array_equal(streamer.push(frames[1]), reference.push(frames[1]))
    huge = np.full(F, 1e38)  # finite, though its sum overflows float32
    probabilities = streamer.push(huge)
    assert np.isfinite(probabilities).all()
    np.testing.assert_array_equal(probabilities, reference.push(huge))


def test_streaming_refuses_models_that_read_ahead(tmp_path):
    for name, options in (("bigru", {}), ("bilstm", {"head": "attention"})):
        run = make_run(tmp_path / name, name, options)
        with pytest.raises(SeqlabError, match=r"cannot stream: a bidirectional model reads the future"):
            Streamer(run)
    run = make_run(tmp_path / "patched", "gru", {"patch": 4})
    with pytest.raises(SeqlabError, match=r"cannot stream: it groups 4 steps into one recurrent step"):
        Streamer(run)


@pytest.mark.parametrize("name", ["cnn-gru", "cnn-gru-parallel", "cnn1d-lstm", "tcn", "ablstm"])
def test_streaming_refuses_models_beyond_the_recurrent_classifiers_by_name(tmp_path, name):
    run = make_run(tmp_path / name, name, {})
    with pytest.raises(SeqlabError, match=rf"model {name} cannot stream: (streaming covers the recurrent "
                                          r"classifiers|a bidirectional model reads the future)"):
        export_run(run, "onnx", tmp_path / "step.onnx", streaming=True)
    assert not (tmp_path / "step.onnx").exists()


@pytest.mark.parametrize("name,options", [("gru", {"backend": "fast"}), ("lstm", {"backend": "fast", "num_layers": 2}),
                                          ("cnn-gru-parallel", {"backend": "fast"})])
def test_runs_trained_with_the_fast_backend_export_with_parity(tmp_path, name, options):
    """Export traces torch.nn's kernels: a traced fast-backend loop would freeze one input's results."""
    run = make_run(tmp_path / "run", name, options, features=F, steps=T)
    assert any(getattr(m, "backend", "") == "fast" for m in load_run(run).model.modules())
    formats = [("onnx", False), ("onnx", True), ("torchscript", False), ("torchscript", True)]
    if HAVE_NCNN and name != "cnn-gru-parallel":
        formats.append(("ncnn", False))
    for fmt, fixed in formats:
        report = export_run(run, fmt, tmp_path / f"m-{fmt}-{fixed}.{fmt}", fixed_length=fixed)
        assert report.max_abs_diff <= 1e-4, (fmt, fixed)
    if name != "cnn-gru-parallel":
        assert export_run(run, "onnx", tmp_path / "step.onnx", streaming=True).max_abs_diff <= 1e-4


def test_export_prints_only_its_own_report(tmp_path):
    """torch.onnx's C++ shape-inference warnings (printed once per process) stay out of the console."""
    run = make_run(tmp_path / "run", "bigru", {})
    exe = Path(sys.executable).parent / "seqlab"
    done = subprocess.run([str(exe), "export", "--run", str(run), "--format", "onnx", "--out", str(tmp_path / "m.onnx")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert all(line.startswith(("  batch", "Exported model")) for line in done.stdout.splitlines()), done.stdout


def test_a_model_torch_cannot_export_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import seqlab.export.exporter as exporter

    def refuse(*args, **kwargs):
        raise torch.onnx.errors.OnnxExporterError("Unsupported: ONNX export of operator Sort\nmore detail")

    monkeypatch.setattr(exporter, "export_onnx", refuse)
    run = make_run(tmp_path / "run", "gru", {})
    status, out, err = run_cli(capsys, "export", "--run", run, "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert status == 2 and "Traceback" not in err
    assert "export onnx: torch could not export this model (Unsupported: ONNX export of operator Sort)" in err
    assert not list(tmp_path.glob("*m.onnx*"))


def test_export_above_tolerance_fails_and_writes_nothing(tmp_path, capsys):
    run = make_run(tmp_path / "run", "gru", {})
    status, _, err = run_cli(capsys, "export", "--run", run, "--format", "onnx", "--tolerance", "1e-12",
                             "--out", tmp_path / "m.onnx")
    assert status == 2 and "differs from eager PyTorch" in err and "nothing was written" in err
    assert not (tmp_path / "m.onnx").exists() and not list(tmp_path.glob(".m.onnx*"))
    status, out, err = run_cli(capsys, "export", "--run", run, "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert status == 0 and "largest difference" in out and (tmp_path / "m.onnx").is_file()


def test_export_bad_input(tmp_path, capsys):
    status, _, err = run_cli(capsys, "export", "--run", tmp_path / "none", "--format", "onnx", "--out", tmp_path / "x")
    assert status == 2 and "not found" in err
    (tmp_path / "empty").mkdir()
    status, _, err = run_cli(capsys, "export", "--run", tmp_path / "empty", "--format", "onnx", "--out", tmp_path / "x")
    assert status == 2 and "no model.pt" in err
    run = make_run(tmp_path / "run", "gru", {})
    status, _, err = run_cli(capsys, "export", "--run", run, "--format", "tflite", "--out", tmp_path / "x")
    assert status == 2 and "--format: expected one of onnx, torchscript, ncnn, got 'tflite'" in err


def test_stream_command_on_a_file_and_on_stdin(tmp_path, capsys):
    run = make_run(tmp_path / "run", "gru", {})
    frames = np.random.default_rng(0).normal(size=(6, F))
    path = tmp_path / "frames.csv"
    path.write_text(",".join(f"f{i}" for i in range(F)) + "\n" + "\n".join(",".join(f"{v:.5f}" for v in r) for r in frames) + "\n")
    status, out, err = run_cli(capsys, "stream", "--run", run, "--input", path)
    assert status == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("frame,predicted,prob_a") and len(lines) == 7
    reference = Streamer(run, "eager")
    expected = [reference.push(f) for f in frames]
    got = np.array([[float(v) for v in line.split(",")[2:]] for line in lines[1:]])
    np.testing.assert_allclose(got, np.array(expected), atol=1e-5)
    exe = Path(sys.executable).parent / "seqlab"
    piped = subprocess.run([str(exe), "stream", "--run", str(run), "--input", "-", "--window", "3", "--stride", "2"],
                           input=path.read_text(), capture_output=True, text=True)
    assert piped.returncode == 0, piped.stderr
    assert len(piped.stdout.strip().splitlines()) == 1 + 2  # windows ending at frames 3 and 5
    # a stride longer than the window skips frames: windows of 2 every 3 frames end at lines 3 and 6
    status, out, err = run_cli(capsys, "stream", "--run", run, "--input", path, "--window", "2", "--stride", "3")
    assert status == 0, err
    assert [line.split(",")[0] for line in out.strip().splitlines()[1:]] == ["3", "6"]
    status, out, err = run_cli(capsys, "stream", "--run", run, "--input", path, "--window", "2")
    assert status == 2 and "expected two positive frame counts" in err and out == ""
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3,4,5,6\n1,2,3\n")
    status, _, err = run_cli(capsys, "stream", "--run", run, "--input", bad)
    assert status == 2 and "bad.csv:2: expected 6 features per frame, got 3" in err
    bad.write_text("1,2,3,4,5,6\n1,nan,3,4,5,6\n")
    status, out, err = run_cli(capsys, "stream", "--run", run, "--input", bad)
    assert status == 2 and "bad.csv:2: expected finite numbers, got ['1', 'nan', '3', '4']" in err
    assert len(out.strip().splitlines()) == 2  # the header and frame 1
    # an exported step model streams the same predictions, with the run's class names
    assert run_cli(capsys, "export", "--run", run, "--format", "onnx", "--streaming",
                   "--out", tmp_path / "step.onnx")[0] == 0
    status, out, err = run_cli(capsys, "stream", "--run", tmp_path / "step.onnx", "--input", path)
    assert status == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("frame,predicted,prob_a")
    got = np.array([[float(v) for v in line.split(",")[2:]] for line in lines[1:]])
    np.testing.assert_allclose(got, np.array(expected), atol=1e-5)
    status, _, err = run_cli(capsys, "stream", "--run", tmp_path / "missing.onnx", "--input", path)
    assert status == 2 and "missing.onnx: file not found" in err
    # a reader that goes away early (| head) ends the stream quietly
    many = tmp_path / "many.csv"
    many.write_text("\n".join(",".join("0.5" for _ in range(F)) for _ in range(20000)) + "\n")
    proc = subprocess.Popen([str(exe), "stream", "--run", str(run), "--input", str(many)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"frame,predicted")
    proc.stdout.close()
    assert proc.wait(timeout=60) == 141 and b"Traceback" not in proc.stderr.read()


@pytest.mark.parametrize("name,options", [("tcn", {}), ("cnn-gru", {}), ("bigru", {}), ("cnn1d-lstm", {}),
                                          ("gru-fcn", {})])
def test_stream_windows_of_models_that_cannot_stream_use_the_whole_sequence_model(tmp_path, capsys, name, options):
    """Each window's prediction is the whole-sequence model's on that window (here checked by hand)."""
    run = make_run(tmp_path / "run", name, options)
    frames = np.random.default_rng(1).normal(size=(2 * T, F))
    path = tmp_path / "frames.csv"
    path.write_text("\n".join(",".join(f"{v:.6f}" for v in r) for r in frames) + "\n")
    status, out, err = run_cli(capsys, "stream", "--run", run, "--input", path, "--window", str(T), "--stride", "7")
    assert status == 0, err
    lines = out.strip().splitlines()[1:]
    ends = [int(line.split(",")[0]) for line in lines]
    assert ends == list(range(T, 2 * T + 1, 7))
    loaded = load_run(run)
    model = loaded.model.eval()
    shift, scale = loaded.normalizer.shift, loaded.normalizer.scale
    for end, line in zip(ends, lines):
        x = torch.tensor((frames[end - T:end] - shift) / scale, dtype=torch.float32)[None]
        with torch.no_grad():
            expected = torch.softmax(model(x), dim=1)[0].numpy()
        np.testing.assert_allclose([float(v) for v in line.split(",")[2:]], expected, atol=1e-5)
        assert line.split(",")[1] == loaded.class_names[int(expected.argmax())]
    status, out, err = run_cli(capsys, "stream", "--run", run, "--input", path)  # no window: refused by name
    assert status == 2 and f"model {name} cannot stream" in err and "--window" in err


def test_stream_window_on_a_forecast_run_is_refused(tmp_path, capsys):
    """Only classifiers that cannot stream are read window by window; other tasks keep their own error."""
    out = tmp_path / "air"
    assert run_cli(capsys, "train", "--config", "airline", "--epochs", "1", "--quiet", "--out", out)[0] == 0
    path = tmp_path / "frames.csv"
    path.write_text("1\n2\n3\n")
    status, stdout, err = run_cli(capsys, "stream", "--run", out, "--input", path, "--window", "2", "--stride", "1")
    assert status == 2 and stdout == "" and "streaming covers classification runs; this one is a forecast run" in err


def test_stream_window_a_fixed_length_model_cannot_read_is_refused(tmp_path, capsys):
    run = make_run(tmp_path / "run", "cnn-gru", {})  # reads exactly T frames
    path = tmp_path / "frames.csv"
    path.write_text("\n".join(",".join("0.1" for _ in range(F)) for _ in range(T)) + "\n")
    status, out, err = run_cli(capsys, "stream", "--run", run, "--input", path, "--window", "5", "--stride", "5")
    assert status == 2 and out == ""
    assert f"--window 5: model cnn-gru cannot read windows of 5 frames: expected input of shape (B, {T}" in err
    run = make_run(tmp_path / "shuffled", "lstm-fcn", {"dimension_shuffle": True})  # the length is an input width
    status, out, err = run_cli(capsys, "stream", "--run", run, "--input", path, "--window", "5", "--stride", "5")
    assert status == 2 and f"--window 5: model lstm-fcn cannot read windows of 5 frames: expected input of shape (B, {T}" in err


def test_variable_lengths_are_an_input_of_recurrent_exports(tmp_path):
    import onnx

    run = make_run(tmp_path / "run", "bigru", {})
    report = export_run(run, "onnx", tmp_path / "m.onnx")
    assert "lengths" in report.note
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    assert [i.name for i in graph.input] == ["x", "lengths"]
    assert any(node.op_type == "GRU" and len(node.input) > 4 and node.input[4] for node in graph.node)  # sequence_lens


def test_fixed_length_export_has_no_lengths_input(tmp_path, capsys):
    import onnx
    import onnxruntime as ort

    run = make_run(tmp_path / "run", "lstm", {})
    status, out, _ = run_cli(capsys, "export", "--run", run, "--format", "onnx", "--fixed-length",
                             "--out", tmp_path / "m.onnx")
    assert status == 0 and "largest difference" in out
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    assert [i.name for i in graph.input] == ["x"]
    lstm = next(node for node in graph.node if node.op_type == "LSTM")
    assert len(lstm.input) <= 4 or not lstm.input[4]  # no sequence_lens
    eager = load_run(run).model.eval()
    x = torch.randn(5, 33, F)
    normalizer = load_run(run).normalizer
    with torch.no_grad():
        expected = eager((x - torch.as_tensor(normalizer.shift)) / torch.as_tensor(normalizer.scale)).numpy()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x.numpy()})[0], expected, atol=1e-5)


def test_forecast_and_language_model_runs_export(tmp_path, capsys):
    forecast = tmp_path / "air"
    assert run_cli(capsys, "train", "--config", "airline", "--epochs", "2", "--quiet", "--out", forecast)[0] == 0
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    lm = tmp_path / "lm"
    assert run_cli(capsys, "train", "--data", f"text:{text}", "--model", "lstm", "--hidden-size", "16",
                   "--epochs", "1", "--quiet", "--out", lm)[0] == 0
    for run in (forecast, lm):
        for fmt in ("onnx", "torchscript"):
            report = export_run(run, fmt, tmp_path / f"{run.name}.{fmt}")
            assert report.max_abs_diff <= 1e-4 and report.path.is_file()


def test_a_token_classifier_exports_on_token_ids_with_lengths(tmp_path):
    """text-lstm reads token ids: random floats as ids once crashed the export with IndexError."""
    from seqlab.serving import OnnxModel

    vocab = 30
    run_dir = make_run(tmp_path / "run", "text-lstm", {"embedding_dim": 8, "hidden_size": 4},
                       features=vocab)
    rng = np.random.default_rng(3)
    lengths = rng.integers(2, T + 1, size=9)
    ids = rng.integers(1, vocab, size=(9, T)) * (np.arange(T) < lengths[:, None])  # padding id 0
    with torch.no_grad():
        expected = load_run(run_dir).model.eval()(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    for fmt in ("onnx", "torchscript"):
        report = export_run(run_dir, fmt, tmp_path / f"m.{fmt}")
        assert report.max_abs_diff <= 1e-4 and "x (batch, time) token ids and lengths" in report.note
    got = OnnxModel(tmp_path / "m.onnx", workers=2, part_rows=2)(ids[..., None], lengths)  # (N, T, 1) as in .npz
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with torch.no_grad():
        traced = torch.jit.load(str(tmp_path / "m.torchscript"))(torch.from_numpy(ids), torch.from_numpy(lengths))
    np.testing.assert_allclose(traced.numpy(), expected, atol=1e-5)


def test_static_export_fixes_the_shapes_and_still_reads_lengths(tmp_path, capsys):
    import onnx
    import onnxruntime as ort

    run = make_run(tmp_path / "bigru", "bigru", {})
    status, out, err = run_cli(capsys, "export", "--run", run, "--format", "onnx", "--static",
                               "--out", tmp_path / "s.onnx")
    assert status == 0, err
    assert "static shapes: batch 1, time 20" in out and "exporter: TorchScript-based" in out
    graph = onnx.load(str(tmp_path / "s.onnx")).graph
    assert [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input] == [[1, T, F], [1]]
    session = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(1, T, F)).astype(np.float32)
    eager = load_run(run).model.eval()
    normalizer = load_run(run).normalizer
    for length in (T, 7):  # a static graph still packs: a short sequence padded to T
        with torch.no_grad():
            expected = eager(torch.from_numpy((x - normalizer.shift) / normalizer.scale).float(),
                             torch.tensor([length])).numpy()
        got = session.run(None, {"x": x, "lengths": np.array([length])})[0]
        np.testing.assert_allclose(got, expected, atol=1e-5)
    with pytest.raises(Exception, match="dimensions"):
        session.run(None, {"x": np.zeros((2, T, F), np.float32), "lengths": np.array([T, T])})
    # without lengths, a static graph goes through torch.export, which keeps PyTorch's GRU form
    gru = make_run(tmp_path / "gru", "gru", {})
    report = export_run(gru, "onnx", tmp_path / "d.onnx", fixed_length=True, static=(3, 9))
    assert "exporter: torch.export (dynamo)" in report.note and [c[:2] for c in report.cases] == [(3, 9)] * 3
    graph = onnx.load(str(tmp_path / "d.onnx")).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [3, 9, F]
    node = next(n for n in graph.node if n.op_type == "GRU")
    assert {a.name: a.i for a in node.attribute}["linear_before_reset"] == 1
    # torch.export refuses the packing of variable lengths, rather than freezing a branch
    with pytest.raises(SeqlabError, match=r"--exporter dynamo: torch.export refused this model"):
        export_run(run, "onnx", tmp_path / "r.onnx", exporter="dynamo")
    assert not list(tmp_path.glob("*r.onnx*"))
    for argv, message in ((["--static", "8by3"], "--static: expected BATCHxSTEPS such as 8x29"),
                          (["--static", "0x5"], "--static: expected a batch and a length of at least 1"),
                          (["--static", "--format", "torchscript"], "--static: applies to --format onnx")):
        fmt = [] if "--format" in argv else ["--format", "onnx"]
        status, _, err = run_cli(capsys, "export", "--run", run, *fmt, *argv, "--out", tmp_path / "bad.onnx")
        assert status == 2 and message in err, err


@pytest.mark.slow
def test_dynamo_with_dynamic_axes_exports_with_parity_or_refuses_a_frozen_axis(tmp_path):
    from seqlab.export.torch_export import export_onnx

    report = export_run(make_run(tmp_path / "gru", "gru", {}), "onnx", tmp_path / "gru.onnx", fixed_length=True,
                        exporter="dynamo")
    assert "torch.export (dynamo)" in report.note and {c[1] for c in report.cases} == {11, 20, 40}
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(20 * F, C))  # built around 20 steps
    axes = {"x": {0: "batch", 1: "time"}, "y": {0: "batch"}}
    with pytest.raises(SeqlabError, match=r"--exporter dynamo: torch.export (refused|fixed axes of x).*"
                                          r"use --exporter legacy"):
        export_onnx(flat, (torch.randn(2, 20, F),), ["x"], tmp_path / "flat.onnx", axes, "dynamo")


def test_int8_quantisation_reports_accuracy_and_speed_on_the_test_split(vowels, tmp_path, capsys):
    import json

    from seqlab.serving import OnnxModel
    from seqlab.export.quantize import held_out_split
    from seqlab.training.evaluate import predict_proba

    run_dir = vowels["bilstm", "attention"]
    status, out, err = run_cli(capsys, "export", "--run", run_dir, "--format", "onnx", "--quantize", "int8",
                               "--out", tmp_path / "q.onnx")
    assert status == 0, err
    assert "int8 (DynamicQuantizeLSTM, MatMulInteger) against float32 on the test split" in out
    report = json.loads((tmp_path / "q.quantization.json").read_text())
    run = load_run(run_dir)
    data = held_out_split(run)
    eager = predict_proba(run.model, run.normalizer.transform(data)).argmax(axis=1)
    assert report["accuracy"]["float32"] == pytest.approx(float((eager == data.y).mean()))  # the run's own figure
    assert report["bytes"]["int8"] < 0.9 * report["bytes"]["float32"]  # hidden 16: the head and overheads weigh
    assert (tmp_path / "q.onnx").stat().st_size == report["bytes"]["int8"]
    int8 = OnnxModel(tmp_path / "q.onnx", workers=1)
    assert int8.class_names == run.class_names
    logits = int8(data.X, data.lengths)
    assert float((logits.argmax(axis=1) == data.y).mean()) == pytest.approx(report["accuracy"]["int8"])
    with torch.no_grad():
        fp32 = run.model.eval()(torch.from_numpy(run.normalizer.transform(data).X),
                                torch.from_numpy(data.lengths)).numpy()
    change = np.abs(logits - fp32).max()
    assert 1e-6 < change < 0.1 and change == pytest.approx(report["max_abs_logit_change"], abs=1e-4)
    assert abs(report["accuracy_change"]) <= 0.05 and report["agreement"] >= 0.9
    # refused where int8 gains nothing or cannot be measured
    status, _, err = run_cli(capsys, "export", "--run", vowels["bigru", "last"], "--format", "onnx",
                             "--quantize", "int8", "--out", tmp_path / "g.onnx")
    assert status == 2 and "--quantize int8: the int8 graph would not be smaller" in err and "not for GRU" in err
    assert not list(tmp_path.glob("*g.onnx*")) and not (tmp_path / "g.quantization.json").exists()
    for argv, message in ((["--format", "torchscript"], "--quantize: applies to --format onnx"),
                          (["--format", "onnx", "--streaming"], "--quantize: applies to whole-sequence exports"),
                          (["--format", "onnx", "--static"], "--quantize: reads the run's test split")):
        status, _, err = run_cli(capsys, "export", "--run", run_dir, "--quantize", "int8", *argv,
                                 "--out", tmp_path / "x.onnx")
        assert status == 2 and message in err, err


@pytest.mark.skipif(not HAVE_NCNN, reason="ncnn and pnnx are not installed")
def test_keep_intermediate_keeps_pnnx_files_beside_the_ncnn_model(tmp_path, capsys):
    run = make_run(tmp_path / "run", "gru", {})
    status, out, err = run_cli(capsys, "export", "--run", run, "--format", "ncnn", "--out", tmp_path / "a.param")
    assert status == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.param", "run"]  # nothing else left
    status, out, err = run_cli(capsys, "export", "--run", run, "--format", "ncnn", "--keep-intermediate",
                               "--out", tmp_path / "b.param")
    assert status == 0, err
    kept = tmp_path / "b.pnnx"
    assert f"pnnx's files kept in {kept}" in out
    assert {"model.pt", "pnnx.param", "pnnx.bin", "pnnx.py", "pnnx.log"} <= {p.name for p in kept.iterdir()}
    assert (kept / "model.param").read_bytes() == (tmp_path / "b.param").read_bytes()
    status, _, err = run_cli(capsys, "export", "--run", run, "--format", "onnx", "--keep-intermediate",
                             "--out", tmp_path / "c.onnx")
    assert status == 2 and "--keep-intermediate: applies to --format ncnn" in err
