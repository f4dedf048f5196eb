"""Where training runs: CPU threads, accelerator, devices, precision, processes.

``train.threads: 0`` (the default) picks torch's thread count with
:func:`thread_policy`; the device settings (``train.accelerator``,
``devices``, ``num_nodes``, ``precision``) are checked against this machine
and this torch build by :func:`trainer_arguments` before anything is
written, and become Lightning ``Trainer`` arguments (DDP when there is more
than one process).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from seqlab.config import TrainConfig, describe_key
from seqlab.errors import SeqlabError
from seqlab.kernels.parallel import usable_cores

CUDA_INSTALL = (f"install torch's CUDA build: `pip install torch=={torch.__version__.split('+')[0]} --index-url "
                "https://download.pytorch.org/whl/cuXXX` with cuXXX your CUDA version, as listed at "
                "https://pytorch.org/get-started/locally/")


def competing_load(loadavg: str = "/proc/loadavg", samples: int = 3, interval: float = 0.01) -> int:
    """Tasks of other processes running or ready to run on this machine now (Linux; 0 elsewhere).

    The running count of ``/proc/loadavg`` (the 1-minute load average would
    lag a process started seconds ago) less this process's own running
    threads, the smallest of ``samples`` readings ``interval`` seconds apart,
    so that a task that runs for a moment does not count: a busy process is
    ready to run at every reading.
    """
    readings = []
    for i in range(samples):
        if i:
            time.sleep(interval)
        try:
            with open(loadavg, encoding="ascii") as handle:
                running = int(handle.read().split()[3].split("/")[0])
        except (OSError, IndexError, ValueError):
            return 0
        readings.append(running - _own_running_threads())
    return max(0, min(readings))


def _own_running_threads() -> int:
    """This process's threads in state R (at least the one reading)."""
    count = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        with contextlib.suppress(OSError):
            count += stat.read_text(encoding="ascii").rsplit(")", 1)[1].split()[0] == "R"
    return max(1, count)


def thread_policy(requested: int, cores: int, processes: int = 1, busy: int = 0) -> int:
    """torch's intra-op threads for one training process.

    Args:
        requested: ``train.threads``; a positive count is taken as it is.
        cores: cores this process may run on.
        processes: training processes sharing those cores (DDP ranks on one machine).
        busy: other runnable tasks competing for the cores (:func:`competing_load`).

    Returns the process's share of the cores, less one per competing busy
    task, and at least 1: torch's parallel regions end in a barrier, so a
    thread whose core another process holds stalls all the others.
    """
    if requested > 0:
        return requested
    share = max(1, cores // max(1, processes))
    return max(1, min(share, cores - busy))


def local_processes(train: TrainConfig) -> int:
    """Training processes on this machine (one per CPU device or GPU): torchrun's LOCAL_WORLD_SIZE, else
    the devices asked for."""
    if "LOCAL_WORLD_SIZE" in os.environ:
        return int(os.environ["LOCAL_WORLD_SIZE"])
    if isinstance(train.devices, list):
        return len(train.devices)
    if train.devices == "auto":
        return max(1, torch.cuda.device_count()) if train.accelerator in ("gpu", "cuda", "auto") else 1
    return train.devices


@contextlib.contextmanager
def training_threads(train: TrainConfig) -> Iterator[int]:
    """Set torch's threads for a run (``train.threads``, or the policy's choice) and restore them after."""
    before = torch.get_num_threads()
    threads = thread_policy(train.threads, usable_cores(), local_processes(train), competing_load())
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def _refuse(key: str, message: str) -> None:
    raise SeqlabError(f"{describe_key(key)}: {message}")


def resolved_accelerator(train: TrainConfig) -> str:
    """``cpu`` or ``gpu`` (``auto``: gpu when torch sees a CUDA device), after checking torch can use it."""
    accelerator = train.accelerator
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator in ("gpu", "cuda"):
        if torch.version.cuda is None:
            _refuse("train.accelerator", f"{accelerator} asked, but torch {torch.__version__} is a CPU-only "
                    f"build; {CUDA_INSTALL}")
        if torch.cuda.device_count() == 0:
            _refuse("train.accelerator", f"{accelerator} asked, but torch sees no CUDA device "
                    "(torch.cuda.device_count() is 0; check the NVIDIA driver and CUDA_VISIBLE_DEVICES)")
        return "gpu"
    if accelerator == "mps" and not torch.backends.mps.is_available():
        _refuse("train.accelerator", "mps asked, but torch sees no Apple GPU (torch.backends.mps.is_available() "
                "is False)")
    return accelerator


def trainer_arguments(train: TrainConfig) -> dict[str, Any]:
    """Lightning ``Trainer`` arguments for the device settings; SeqlabError for what this machine cannot do."""
    accelerator = resolved_accelerator(train)
    devices = train.devices
    if accelerator == "cpu" and isinstance(devices, list):
        _refuse("train.devices", f"expected a process count or auto on CPU (a list names GPUs), got {devices}")
    if accelerator == "gpu":
        visible = torch.cuda.device_count()
        wanted = max(devices) + 1 if isinstance(devices, list) else devices
        if isinstance(wanted, int) and wanted > visible:
            _refuse("train.devices", f"expected at most the {visible} visible GPU(s), got {devices}")
        if train.precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
            _refuse("train.precision", "bf16-mixed asked, but this GPU has no bfloat16 support; use 16-mixed or 32")
    if accelerator == "cpu" and train.precision == "16-mixed":
        _refuse("train.precision", "expected 32 or bf16-mixed on CPU (float16 autocast needs a GPU), "
                "got 16-mixed")
    count = len(devices) if isinstance(devices, list) else devices
    processes = (count if isinstance(count, int) else 1) * train.num_nodes
    return {"accelerator": accelerator, "devices": devices, "num_nodes": train.num_nodes,
            "precision": train.precision, "strategy": "ddp" if processes > 1 else "auto"}


RANK_VARIABLES = ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK")  # torchrun, SLURM, Lightning's launcher


def is_rank_zero() -> bool:
    """Whether this process is DDP rank 0 (or alone), from the variables its launcher sets.

    Known before the process group exists, so that only rank 0 prepares and
    writes the run folder and prints.
    """
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)
