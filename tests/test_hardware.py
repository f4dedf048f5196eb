"""Threads, accelerator, devices and precision: the policy, the checks and their CLI errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import lightning.pytorch as pl
import pytest
import torch

from conftest import run_cli
from seqlab.config import resolve_config
from seqlab.errors import SeqlabError
from seqlab.training.hardware import (competing_load, local_processes, thread_policy, trainer_arguments,
                                      training_threads)
from seqlab.training.pipeline import train


@pytest.mark.parametrize("requested, cores, processes, busy, expected", [
    (0, 2, 1, 0, 2),   # an idle 2-core machine: both cores
    (0, 2, 1, 1, 1),   # one other busy process: the free core only
    (0, 2, 1, 5, 1),   # never fewer than one
    (0, 2, 2, 0, 1),   # two DDP ranks share the cores
    (0, 8, 2, 0, 4),
    (0, 8, 2, 6, 2),   # the free cores cap the share
    (0, 8, 1, 3, 5),
    (0, 1, 4, 0, 1),
    (3, 2, 1, 1, 3),   # a count asked for is kept as it is
])
def test_thread_policy(requested, cores, processes, busy, expected):
    assert thread_policy(requested, cores, processes, busy) == expected


def test_competing_load_counts_running_tasks_besides_the_reader(tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("1.52 0.80 0.33 3/214 9999\n")
    assert competing_load(str(loadavg), interval=0) == 2
    loadavg.write_text("0.00 0.00 0.00 1/90 12\n")
    assert competing_load(str(loadavg), interval=0) == 0
    assert competing_load(str(tmp_path / "missing")) == 0


def test_local_processes_count_one_per_device(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert local_processes(resolve_config({"train": {"devices": 2}}).train) == 2
    assert local_processes(resolve_config({"train": {"devices": "auto"}}).train) == 1
    assert local_processes(resolve_config({"train": {"accelerator": "gpu", "devices": [0, 2, 3]}}).train) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun's count wins
    assert local_processes(resolve_config({}).train) == 4


def test_training_threads_sets_the_count_and_restores_the_callers():
    before = torch.get_num_threads()
    config = resolve_config({"train": {"threads": 1 if before != 1 else 2}})
    with training_threads(config.train) as threads:
        assert threads == config.train.threads == torch.get_num_threads()
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("argv, message", [
    (["--devices", "0"], "train.devices (--devices): expected a positive integer, a list of GPU indices such as "
                         "0,1, or auto, got 0"),
    (["--devices", "abc"], "train.devices (--devices): expected a positive integer"),
    (["--set", "train.devices=[]"], "train.devices (--devices): expected a positive integer"),
    (["--devices", "0,1"], "train.devices (--devices): expected a process count or auto on CPU"),
    (["--accelerator", "tpu"], "train.accelerator (--accelerator): expected one of cpu, gpu, cuda, mps, auto, "
                               "got 'tpu'"),
    (["--precision", "16"], "train.precision (--precision): expected one of 32, bf16-mixed, 16-mixed, got '16'"),
    (["--precision", "16-mixed"], "train.precision (--precision): expected 32 or bf16-mixed on CPU"),
    (["--threads", "-1"], "train.threads (--threads): expected an integer >= 0"),
    (["--num-nodes", "0"], "train.num_nodes (--num-nodes): expected an integer >= 1, got 0"),
])
def test_bad_device_flags_are_one_line_errors(argv, message, capsys, tmp_path):
    status, out, err = run_cli(capsys, "train", "--data", "digits", "--out", tmp_path / "run", *argv)
    assert status == 2
    assert err.startswith(f"seqlab train: error: {message}") and err.count("\n") == 1, err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_gpu_on_a_machine_without_one_says_how_to_get_the_cuda_build(capsys, tmp_path):
    status, _, err = run_cli(capsys, "train", "--data", "digits", "--accelerator", "gpu", "--out", tmp_path / "run")
    assert status == 2 and err.count("\n") == 1 and not (tmp_path / "run").exists()
    if torch.version.cuda is None:
        assert "is a CPU-only build" in err and "--index-url https://download.pytorch.org/whl/cu" in err
    else:
        assert "torch sees no CUDA device" in err


def test_trainer_arguments_choose_ddp_for_several_processes():
    single = trainer_arguments(resolve_config({}).train)
    assert single == {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "precision": "32", "strategy": "auto"}
    two = trainer_arguments(resolve_config({"train": {"devices": "2"}}).train)
    assert two["devices"] == 2 and two["strategy"] == "ddp"
    nodes = trainer_arguments(resolve_config({"train": {"num_nodes": 2}}).train)
    assert nodes["strategy"] == "ddp"
    assert trainer_arguments(resolve_config({"train": {"accelerator": "auto"}}).train)["accelerator"] == (
        "gpu" if torch.cuda.is_available() else "cpu")
    with pytest.raises(SeqlabError, match="train.devices"):
        resolve_config({"train": {"devices": [0, 0]}})


def test_bf16_mixed_trains_on_cpu_in_bfloat16_close_to_float32(tmp_path):
    """The linear layers run in bfloat16 under bf16-mixed, and the accuracy stays near float32's."""
    seen: dict[str, set] = {}

    class RecordDtypes(pl.Callback):
        """The output dtypes of the linear layers while Lightning trains and validates."""

        def __init__(self, dtypes: set):
            self.dtypes, self.hooks = dtypes, []

        def on_train_start(self, trainer, pl_module):
            self.hooks = [layer.register_forward_hook(lambda m, i, o: self.dtypes.add(o.dtype))
                          for layer in pl_module.model.modules() if isinstance(layer, torch.nn.Linear)]

        def on_train_end(self, trainer, pl_module):
            for hook in self.hooks:
                hook.remove()

    def run(precision: str):

        config = resolve_config({"data": {"spec": "digits"}, "model": {"name": "gru", "hidden_size": 32},
                                 "train": {"epochs": 4, "precision": precision, "threads": 1}})
        callback = RecordDtypes(seen.setdefault(precision, set()))
        return train(config, tmp_path / precision, quiet=True, callbacks=[callback]).metrics

    half, full = run("bf16-mixed"), run("32")
    assert seen["bf16-mixed"] == {torch.bfloat16} and seen["32"] == {torch.float32}
    assert full["test"]["accuracy"] > 0.6
    assert abs(half["test"]["accuracy"] - full["test"]["accuracy"]) < 0.05


# Runs the CLI with its arguments after the first (a folder for the write logs), recording every file this process
# creates, opens for writing, renames or removes; Lightning's DDP launcher starts rank 1 with the same command.
WRITE_LOGGER = '''
import atexit, json, os, sys
log_dir, argv = sys.argv[1], sys.argv[2:]
writes = []

def record(event, args):
    if event == "open":
        path, mode, flags = args
        if mode is None and not flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            return
        if mode is not None and not set(str(mode)) & set("wax+"):
            return
    elif event not in ("os.rename", "os.remove", "os.mkdir", "os.rmdir"):
        return
    writes.append([event, *(os.fspath(a) for a in args if isinstance(a, (str, os.PathLike)))])

sys.addaudithook(record)
rank = os.environ.get("LOCAL_RANK", "0")
atexit.register(lambda: open(os.path.join(log_dir, f"rank{rank}.json"), "w").write(json.dumps(writes)))
from seqlab.cli.main import main
raise SystemExit(main(argv))
'''


def run_logged(tmp_path, *argv: str) -> tuple[subprocess.CompletedProcess, dict[str, list]]:
    """Run ``seqlab ARGV`` under WRITE_LOGGER; return the process and each rank's writes."""
    logs = tmp_path / "logs"
    logs.mkdir()
    script = tmp_path / "seqlab_logged.py"
    script.write_text(WRITE_LOGGER)
    done = subprocess.run([sys.executable, str(script), str(logs), *argv], capture_output=True, text=True,
                          timeout=600)
    return done, {path.stem: json.loads(path.read_text()) for path in logs.glob("rank*.json")}


def test_ddp_on_two_cpu_processes_writes_once_and_syncs_validation(tmp_path):
    """Rank 1 trains but writes nothing in the run folder and prints nothing; history's validation covers both
    processes' halves of the validation set: at the best epoch it equals rank 0's loss on the whole set."""
    out = tmp_path / "run"
    done, writes = run_logged(tmp_path, "train", "--data", "digits", "--model", "gru", "--hidden-size", "16",
                              "--epochs", "2", "--devices", "2", "--set", "train.baselines=false",
                              "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "sync_dist" not in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    heads = [line.split()[0] for line in lines if line.split()[0] in ("epoch", "gru", "Run")]
    assert heads == ["epoch", "epoch", "gru", "Run"], done.stdout  # one rank prints: each line once
    assert sorted(writes) == ["rank0", "rank1"]
    into_run = {rank: [w for w in entries if any(p.startswith(str(out)) for p in w[1:])]
                for rank, entries in writes.items()}
    assert into_run["rank1"] == [], into_run["rank1"][:5]
    renamed = [w[-1] for w in into_run["rank0"] if w[0] == "os.rename"]
    assert {str(out / name) for name in ("metrics.json", "history.csv", "model.pt", "config.yaml")} <= set(renamed)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["threads"] >= 1
    with open(out / "history.csv") as handle:
        history = list(csv.DictReader(handle))
    assert len(history) == 2
    best = history[metrics["best_epoch"] - 1]
    assert float(best["val_loss"]) == pytest.approx(metrics["val"]["loss"], rel=1e-5)


@pytest.mark.parametrize("mode", ["gru", "lstm"])
def test_fast_backend_under_bf16_autocast_runs_float32_like_torch(mode):
    """Inside bf16-mixed's autocast the fast layers step outside it, in float32: equal to torch.nn in float32."""
    from seqlab.kernels.dispatch import fast_forward

    torch.manual_seed(0)
    layer = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[mode](8, 16, batch_first=True)
    x = torch.randn(4, 12, 8, requires_grad=True)  # (B, T, F)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = fast_forward(layer, x)  # (B, T, H)
    expected, _ = layer(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    (grad,) = torch.autograd.grad(out.sum(), x)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_is_as_accurate_as_one(tmp_path):
    """digits GRU, 15 epochs: 0.9721 test accuracy in one process, 0.9666 in two (BENCHMARKS.md)."""
    accuracy = {}
    for devices in ("1", "2"):
        out = tmp_path / devices
        done = subprocess.run([sys.executable, "-m", "seqlab", "train", "--data", "digits", "--model", "gru",
                               "--epochs", "15", "--quiet", "--devices", devices, "--out", str(out)],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["world_size"] == int(devices)
        accuracy[devices] = metrics["test"]["accuracy"]
    assert accuracy["1"] >= 0.95 and abs(accuracy["1"] - accuracy["2"]) <= 0.03, accuracy
