"""Property-based fuzzing of every reader and every command's flags (Hypothesis).

Each example must end in success, or in a :class:`SeqlabError` / exit status 2 with one line on
stderr: never another exception, never a traceback, never a hang (each example has a wall-clock
bound), and never a change to a file outside the command's ``--out``.

The default suite runs a few deterministic examples per property (``derandomize``), in a few
seconds. ``SEQLAB_FUZZ_EXAMPLES=N`` sets the number of examples per property; the ``long``
variants (markers ``slow`` and ``fuzz``, run by ``make test-slow`` or ``pytest -m fuzz``) draw
200 random ones each.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_waves
from seqlab.cli.main import main
from seqlab.config import read_config_file, resolve_config
from seqlab.data import deap
from seqlab.data.series import read_series_csv
from seqlab.data.sources import read_file
from seqlab.errors import SeqlabError

QUICK = int(os.environ.get("SEQLAB_FUZZ_EXAMPLES", "5"))
BUDGETS = [pytest.param(QUICK, id="quick"),
           pytest.param(200, id="long", marks=[pytest.mark.slow, pytest.mark.fuzz])]
SECONDS_PER_EXAMPLE = 30  # a tiny 1-epoch training run takes about one second


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_bound(seconds: int = SECONDS_PER_EXAMPLE):
    def expired(signum, frame):
        raise Hang(f"example ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_property(budget: int, strategy, check) -> None:
    """Run ``check(example)`` on ``budget`` examples of ``strategy``, each within the time bound."""

    @settings(max_examples=budget, deadline=None, database=None, derandomize=budget <= QUICK,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(strategy)
    def run(example):
        with time_bound():
            check(example)

    run()


def refused_cleanly(call) -> None:
    """``call()`` returns, or raises SeqlabError with a one-line message."""
    try:
        call()
    except SeqlabError as error:
        assert "\n" not in str(error) and str(error), repr(str(error))


def snapshot(folder: Path, skip: Path | None = None) -> dict[str, str]:
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not (skip is not None and (path == skip or skip in path.parents)):
            files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def run_command(argv: list[str], root: Path, out: Path | None) -> None:
    """``seqlab ARGV``: exit 0, or exit 2 and one line; nothing under ``root`` changes outside ``out``."""
    before = snapshot(root, out)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as exit:  # argparse refusing a flag: its usage line, then status 2
            status = exit.code
    err = stderr.getvalue()
    assert status in (0, 2), (argv, status, err)
    if status == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines and "Traceback" not in err, (argv, err)
        assert lines[-1].startswith(("seqlab ", "usage:")) or ": error: " in lines[-1], (argv, err)
        assert len([line for line in lines if "error:" in line]) == 1, (argv, err)
    assert snapshot(root, out) == before, (argv, "a file outside --out changed")


# ----------------------------------------------------------------------------
# Readers

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.integers(-10**6, 10**6),
                    st.sampled_from([0.0, 1e38, -1e300, 1e15]))
cells = st.one_of(numbers.map(repr), st.sampled_from(["", " ", "x", "nan", "inf", "NA", "?", "1e999", "é", '"', "1,2"]))


@st.composite
def npz_bytes(draw) -> bytes:
    n, t, f = draw(st.integers(0, 4)), draw(st.integers(0, 5)), draw(st.integers(0, 3))
    dtype = draw(st.sampled_from(["float32", "float64", "int64", "uint8", "bool", "complex64", "U3"]))
    shape = draw(st.sampled_from([(n, t, f), (n, t), (n,), (n, t, f, 1)]))
    values = draw(st.lists(numbers, min_size=1, max_size=4))
    X = np.resize(np.array(values, dtype=np.float64), shape)
    with np.errstate(all="ignore"), contextlib.suppress(ValueError, OverflowError):
        X = X.astype(dtype)
    arrays = {draw(st.sampled_from(["X", "x", "data"])): X}
    if draw(st.booleans()):
        arrays["y"] = np.resize(np.array(draw(st.lists(st.one_of(numbers, st.text(max_size=3)), min_size=1,
                                                        max_size=3)), dtype=object).astype(str), draw(st.integers(0, 5)))
    if draw(st.booleans()):
        arrays["lengths"] = np.array(draw(st.lists(st.integers(-2, 7), max_size=5)))
    if draw(st.booleans()):
        arrays["y"] = np.array([object()], dtype=object)  # pickled on save: must be refused, not loaded
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    if cut is not None:
        data = data[:cut] + draw(st.binary(max_size=8))
    return data


def csv_text(header: list[str]):
    rows = st.lists(st.lists(cells, min_size=len(header) - 1, max_size=len(header) + 1), max_size=6)
    return rows.map(lambda body: "\n".join([",".join(header)] + [",".join(r) for r in body]) + "\n")


sequence_csv = st.one_of(
    st.sampled_from([["id", "label", "a"], ["id", "a", "b"], ["label", "a"], ["id"], ["id", "label"]]).flatmap(csv_text),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)
series_csv = st.sampled_from([["date", "y"], ["y"], ["month", "a", "b"], ["date"]]).flatmap(csv_text)

ts_header = st.lists(st.sampled_from([
    "@problemName p", "@timeStamps false", "@timeStamps true", "@missing false", "@univariate true",
    "@univariate maybe", "@dimensions 2", "@dimensions two", "@equalLength true", "@seriesLength 3",
    "@seriesLength eight", "@classLabel true a b", "@classLabel true", "@classLabel false", "@unknown 1", "# note",
]), max_size=7)
ts_case = st.lists(st.lists(cells, min_size=1, max_size=4).map(",".join), min_size=1, max_size=3).map(":".join)
ts_text = st.tuples(ts_header, st.booleans(), st.lists(st.tuples(ts_case, st.sampled_from(["a", "b", "c", ""])),
                                                       max_size=5)).map(
    lambda p: "\n".join(p[0] + (["@data"] if p[1] else []) + [f"{case}:{label}" for case, label in p[2]]) + "\n")


def _write(folder: Path, name: str, content) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    return path


@pytest.mark.parametrize("budget", BUDGETS)
def test_fuzz_sequence_files(budget, tmp_path):
    example = st.one_of(npz_bytes().map(lambda b: ("x.npz", b)), sequence_csv.map(lambda t: ("x.csv", t)),
                        ts_text.map(lambda t: ("x.ts", t)))
    check_property(budget, example, lambda e: refused_cleanly(lambda: read_file(_write(tmp_path, *e))))


@pytest.mark.parametrize("budget", BUDGETS)
def test_fuzz_series_csv(budget, tmp_path):
    check_property(budget, series_csv, lambda text: refused_cleanly(
        lambda: read_series_csv(_write(tmp_path, "s.csv", text))))


@st.composite
def ut_har_folder(draw):
    shape = draw(st.sampled_from([(2, 250, 90), (2, 90, 250), (2, 1, 250, 90), (2, 22500), (0, 250, 90), (3,)]))
    fill = draw(st.sampled_from([0.0, np.nan, 1e38, 1.0]))
    labels = draw(st.lists(st.sampled_from([0.0, 1.0, 6.0, 7.0, -1.0, 0.5, np.nan]), min_size=0, max_size=3))
    garbage = draw(st.one_of(st.none(), st.binary(max_size=16)))
    return shape, fill, labels, garbage


def _write_ut_har(folder: Path, example) -> Path:
    shape, fill, labels, garbage = example
    for split in ("train", "val", "test"):
        for path, value in ((folder / "data" / f"X_{split}.csv", np.full(shape, fill, np.float32)),
                            (folder / "label" / f"y_{split}.csv", np.array(labels))):
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as handle:
                np.save(handle, value)
    if garbage is not None:
        (folder / "data" / "X_val.csv").write_bytes(garbage)
    return folder


@pytest.mark.parametrize("budget", BUDGETS)
def test_fuzz_ut_har(budget, tmp_path):
    from seqlab.data.ut_har import UTHAROptions, load_ut_har

    check_property(budget, ut_har_folder(), lambda e: refused_cleanly(
        lambda: load_ut_har(_write_ut_har(tmp_path / "ut", e), UTHAROptions())))


@st.composite
def deap_file(draw) -> bytes:
    samples = deap.RATE * 4 + draw(st.integers(0, 3))
    data = np.zeros((deap.TRIALS, draw(st.sampled_from([40, 32])), samples))
    data[0, 0, draw(st.integers(0, samples - 1))] = draw(numbers)
    labels = np.full((deap.TRIALS, draw(st.sampled_from([4, 3]))), 5.0)
    labels[draw(st.integers(0, deap.TRIALS - 1)), 0] = draw(numbers)
    content = draw(st.sampled_from(["dict", "list", "missing labels"]))
    value = {"dict": {"data": data, "labels": labels}, "list": [data], "missing labels": {"data": data}}[content]
    raw = pickle.dumps(value, protocol=draw(st.sampled_from([2, 4])))
    cut = draw(st.one_of(st.none(), st.integers(0, 200)))
    return raw if cut is None else raw[:cut]


@pytest.mark.parametrize("budget", BUDGETS)
def test_fuzz_deap(budget, tmp_path):
    from seqlab.config import DataConfig
    from seqlab.data import load_data

    def check(raw):
        _write(tmp_path, "s01.dat", raw)
        refused_cleanly(lambda: load_data(DataConfig(spec=f"deap:{tmp_path}", options={"window": 1.0, "band": []})))

    check_property(budget, deap_file(), check)


yaml_scalar = st.one_of(numbers.map(repr), st.sampled_from(["gru", "lstm", "true", "null", "[1, 2]", "{a: 1}", "'x'",
                                                             ".nan", "-.inf", "*a", "&a 3", "[*a, *a]", "0x10"]))
yaml_text = st.lists(st.tuples(
    st.sampled_from(["task", "data", "model", "train", "forecast", "lm", "trian", "modle", "- x", "  name", "  spec",
                     "  epochs", "  lr", "  hidden_size", "  options", "  seed", "  normalize"]),
    yaml_scalar), max_size=8).map(lambda pairs: "\n".join(f"{k}: {v}" for k, v in pairs) + "\n")


@pytest.mark.parametrize("budget", BUDGETS)
def test_fuzz_yaml_configs(budget, tmp_path):
    def check(text):
        refused_cleanly(lambda: resolve_config(read_config_file(_write(tmp_path, "c.yaml", text))))

    check_property(budget, st.one_of(yaml_text, st.binary(max_size=40).map(lambda b: b.decode("latin-1"))), check)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny 1-epoch runs of each task, and the files their commands read."""
    root = tmp_path_factory.mktemp("fuzz")
    cases, labels = make_waves(24, 6, 2)
    np.savez(root / "waves.npz", X=np.stack(cases), y=labels)
    (root / "frames.csv").write_text("a,b\n0.1,0.2\n0.3,0.4\n0.5,0.6\n")
    (root / "text.txt").write_text("the cat sat on the mat. " * 40)
    tiny = ["--epochs", "1", "--hidden-size", "8", "--quiet"]
    for name, data, extra in (("cls", root / "waves.npz", []), ("fc", "airline", ["--set", "train.baselines=false"]),
                              ("lm", f"text:{root / 'text.txt'}", ["--set", "lm.bptt=20"])):
        assert main(["train", "--data", str(data), "--model", "gru", *tiny, *extra, "--out", str(root / name)]) == 0
    return root


@pytest.mark.parametrize("budget", BUDGETS)
def test_fuzz_run_folders(budget, runs, tmp_path):
    import shutil

    good = torch.load(runs / "cls" / "model.pt", weights_only=True)

    @st.composite
    def damaged(draw):
        raw = (runs / "cls" / "model.pt").read_bytes()
        kind = draw(st.sampled_from(["cut", "flip", "entry"]))
        if kind == "cut":
            return raw[:draw(st.integers(0, len(raw)))]
        if kind == "flip":
            position = draw(st.integers(0, len(raw) - 1))
            return raw[:position] + bytes([raw[position] ^ draw(st.integers(1, 255))]) + raw[position + 1:]
        checkpoint = {k: (dict(v) if isinstance(v, dict) else v) for k, v in good.items()}
        section = draw(st.sampled_from(["model", "state_dict", "extras", "top"]))
        target = checkpoint if section == "top" else checkpoint[section]
        key = draw(st.sampled_from(sorted(target)))
        target[key] = draw(st.sampled_from([None, 3, "x", [], {}, torch.zeros(2)]))
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        return buffer.getvalue()

    def check(raw):
        folder = tmp_path / "run"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(runs / "cls", folder)
        (folder / "model.pt").write_bytes(raw)
        run_command(["predict", "--run", folder, "--input", runs / "waves.npz", "--out", tmp_path / "p.csv"],
                    tmp_path, tmp_path / "p.csv")

    check_property(budget, damaged(), check)


# ----------------------------------------------------------------------------
# Command flags

ints = st.one_of(st.integers(-3, 3), st.sampled_from([10**12, -(2**63), 2**64]))
floats = st.one_of(st.sampled_from(["nan", "inf", "-inf", "0", "-1", "1e-300", "1e300", "x"]),
                   st.floats(-10, 10).map(repr))
paths = st.sampled_from(["{root}/waves.npz", "{root}/frames.csv", "{root}/missing.npz", "{root}", "{root}/cls",
                         "{root}/cls/model.pt", "{root}/text.txt", "-"])


def flag_sets(flags: dict[str, st.SearchStrategy]):
    return st.lists(st.sampled_from(sorted(flags)), unique=True, max_size=4).flatmap(
        lambda names: st.tuples(*[st.tuples(st.just(n), flags[n]) for n in names]))


SLOW_COMMANDS = ("export", "sine")
COMMANDS = {
    "predict": (["--run", "{root}/cls", "--input", "{root}/waves.npz"],
                {"--run": paths, "--input": paths, "--workers": ints, "--onnx": paths}),
    "eval": (["--run", "{root}/cls"], {"--run": paths, "--data": paths, "--split": st.sampled_from(["test", "x", "all"])}),
    "forecast": (["--run", "{root}/fc", "--horizon", "3"],
                 {"--horizon": ints, "--holdout": ints, "--input": paths, "--run": paths}),
    "generate": (["--run", "{root}/lm", "--prompt", "the", "--length", "5"],
                 {"--length": ints, "--temperature": floats, "--top-k": ints, "--seed": ints,
                  "--prompt": st.text(max_size=4), "--run": paths}),
    "stream": (["--run", "{root}/cls", "--input", "{root}/frames.csv"],
               {"--window": ints, "--stride": ints, "--backend": st.sampled_from(["compiled", "eager", "x"]),
                "--input": paths, "--run": paths}),
    "export": (["--run", "{root}/cls", "--format", "onnx"],
               {"--format": st.sampled_from(["onnx", "torchscript", "x"]), "--tolerance": floats,
                "--streaming": st.none(), "--fixed-length": st.none(), "--run": paths,
                "--static": st.sampled_from(["0x5", "ax", "3x"]),  # valid sizes with --fixed-length: a slow dynamo export
                "--exporter": st.sampled_from(["legacy", "x"]), "--keep-intermediate": st.none(),
                "--quantize": st.sampled_from(["int8", "x"])}),
    "sine": (["--iterations", "2", "--hidden-size", "2"], {"--iterations": ints, "--hidden-size": ints, "--seed": ints}),
    "train": (["--data", "{root}/waves.npz", "--epochs", "1", "--hidden-size", "4", "--quiet"],
              {"--model": st.sampled_from(["gru", "lstm", "tcn", "x"]), "--lr": floats, "--batch-size": ints,
               "--num-layers": st.integers(-1, 2), "--dropout": floats, "--clip": floats, "--seed": ints,
               "--set": st.sampled_from(["train.seed=-1", "model.head=attention", "data.normalize=x", "trian.x=1",
                                         "data.options.a=1", "task=lm", "x", "model.x.y=1", "train.epochs=0",
                                         "data.val_fraction=.nan", "model.hidden_size=&a [*a]"]),
               "--data": paths, "--config": paths}),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("budget", BUDGETS)
def test_fuzz_command_flags(budget, command, runs, tmp_path):
    import shutil

    base, flags = COMMANDS[command]
    root = runs

    def check(chosen):
        argv = [command, *[a.replace("{root}", str(root)) for a in base]]
        for flag, value in chosen:
            argv += [flag] if value is None else [flag, str(value).replace("{root}", str(root))]
        shutil.rmtree(tmp_path / "out", ignore_errors=True)  # each example starts from no output
        out = tmp_path / "out" / "result.csv"
        if command == "eval":
            out = None  # writes RUN/eval.json: the run folder is its output
            argv_run = argv[argv.index("--run") + 1]
            scope = Path(argv_run) / "eval.json"
        else:
            argv += ["--out", out.parent if command in ("train", "sine") else out]
            scope = out.parent
        run_command(argv, root, scope)

    if command in SLOW_COMMANDS and budget == QUICK:
        budget = max(1, QUICK // 3)  # an export with its parity check, or three models trained: ~2 s each
    check_property(budget, flag_sets(flags), check)
