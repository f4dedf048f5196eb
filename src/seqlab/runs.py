"""Run folders: what ``seqlab train`` writes and everything else reads.

A run folder holds ``seqlab-run.json`` (the marker that makes it a run:
fingerprints of the config and the data), ``config.yaml`` (the resolved
config), ``model.pt`` (the self-describing best checkpoint),
``metrics.json``, ``history.csv``, PNG plots, ``checkpoints/last.ckpt``
(for resuming) and ``logs/`` (the Lightning logger's files). ``model.pt``
carries the model's name and arguments, the data description (class names,
feature count) and the normaliser, so ``eval`` and ``predict`` need nothing
but the folder. It is loaded with ``weights_only=True``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from seqlab.data.scaling import Normalizer
from seqlab.errors import SeqlabError
from seqlab.io import file_mode, load_torch, save_torch, write_json

CHECKPOINT_FORMAT = "seqlab-run/1"
RUN_FOLDER_FORMAT = "seqlab-run-folder/1"
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
MARKER_FILE = "seqlab-run.json"  # marks a folder as a seqlab run; holds the config and data fingerprints
LOCK_FILE = ".seqlab.lock"
LAST_CHECKPOINT = "checkpoints/last.ckpt"
# Files a run writes: --overwrite removes these and nothing else.
RUN_FILES = (MODEL_FILE, CONFIG_FILE, METRICS_FILE, MARKER_FILE, "history.csv", "eval.json",
             "learning_curves.png", "confusion_matrix.png", "attention.png", "forecast.png", "forecast.csv",
             "samples.txt")
RUN_DIRS = ("checkpoints", "logs")


@dataclass
class Run:
    """A trained model loaded from its run folder.

    ``checkpoint["extras"]`` holds what the task needs besides the weights:
    the normaliser and class names (classification), the series transforms
    (forecast) or the vocabulary (lm).
    """

    path: Path
    model: nn.Module
    config: dict[str, Any]
    task: str
    checkpoint: dict[str, Any]

    @property
    def extras(self) -> dict[str, Any]:
        return self.checkpoint["extras"]

    @property
    def normalizer(self) -> Normalizer:
        return Normalizer.from_state_dict(self.extras["normalizer"])

    @property
    def class_names(self) -> list[str]:
        return list(self.extras["class_names"])


def save_run_checkpoint(
    path: Path,
    model: nn.Module,
    model_spec: dict[str, Any],
    config: dict[str, Any],
    task: str,
    extras: dict[str, Any],
) -> None:
    """Write ``model.pt``: ``model_spec`` = name, builder (zoo or lm), input_size, output_size, options."""
    save_torch(
        path,
        {
            "format": CHECKPOINT_FORMAT,
            "task": task,
            "model": model_spec,
            "config": config,
            "extras": extras,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        },
    )


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    from seqlab.models.language import RecurrentLM
    from seqlab.models.registry import build_model

    options = dict(spec["options"])
    if spec.get("builder", "zoo") == "lm":
        return RecurrentLM(spec["output_size"], cell=spec["name"], **options)
    return build_model(spec["name"], spec["input_size"], spec["output_size"], steps=spec.get("steps"), **options)


def load_run(path: str | Path) -> Run:
    """Rebuild the model of a run folder with no other input."""
    path = Path(path)
    if not path.is_dir():
        raise SeqlabError(f"run folder {path}: not found")
    file = path / MODEL_FILE
    if not file.is_file():
        raise SeqlabError(f"run folder {path}: no {MODEL_FILE}; expected a completed `seqlab train` run")
    try:
        checkpoint = load_torch(file)
    except Exception as error:  # noqa: BLE001 - any unpickling failure is a bad file
        # torch's own message runs to many lines and suggests weights_only=False, which would run code
        # from the file: say what happened instead
        if isinstance(error, pickle.UnpicklingError):
            reason = ("torch.load with weights_only=True refused it: the file is damaged, or holds objects "
                      "beyond tensors and plain data, which seqlab does not load")
        else:
            reason = f"{type(error).__name__}: " + (str(error).strip().splitlines() or [""])[0]
        raise SeqlabError(f"{file}: not a readable seqlab checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise SeqlabError(f"{file}: expected a seqlab checkpoint ({CHECKPOINT_FORMAT})")
    from seqlab.config import TASKS

    missing = [key for key in ("task", "model", "config", "extras", "state_dict") if key not in checkpoint]
    if missing:
        raise SeqlabError(f"{file}: damaged seqlab checkpoint: no {missing[0]!r} entry")
    if checkpoint["task"] not in TASKS:
        raise SeqlabError(f"{file}: damaged seqlab checkpoint: unknown task {checkpoint['task']!r}; "
                          f"expected one of {', '.join(TASKS)}")
    _check_extras(file, checkpoint)
    try:
        model = build_from_spec(checkpoint["model"])
        model.load_state_dict(checkpoint["state_dict"])
    except SeqlabError as error:
        raise SeqlabError(f"{file}: damaged seqlab checkpoint: {error}") from None
    except (LookupError, TypeError, ValueError, AttributeError, RuntimeError) as error:
        # torch lists every missing key and wrong shape over many lines: keep the first
        detail = " ".join((str(error).strip().splitlines() or [""])[:2])
        raise SeqlabError(f"{file}: damaged seqlab checkpoint: the model cannot be rebuilt from it "
                          f"({type(error).__name__}: {detail[:300]})") from None
    model.eval()
    return Run(path=path, model=model, config=checkpoint["config"], task=checkpoint["task"], checkpoint=checkpoint)


# What each task's commands read from ``checkpoint["extras"]``, with its type.
TASK_EXTRAS = {
    "classification": {"normalizer": dict, "class_names": list, "features": int},
    "regression": {"normalizer": dict, "targets": dict, "target_names": list, "features": int},
    "forecast": {"transform": dict, "columns": list},
    "lm": {"vocab": list},
}


def _check_extras(file: Path, checkpoint: dict[str, Any]) -> None:
    """Refuse a checkpoint whose config or task extras are missing or of the wrong type."""
    extras = checkpoint["extras"]
    if not isinstance(checkpoint["config"], dict) or not isinstance(extras, dict):
        raise SeqlabError(f"{file}: damaged seqlab checkpoint: config and extras must be mappings")
    for key, kind in TASK_EXTRAS[checkpoint["task"]].items():
        if not isinstance(extras.get(key), kind) or isinstance(extras.get(key), bool):
            raise SeqlabError(f"{file}: damaged seqlab checkpoint: extras.{key}: expected a {kind.__name__}, "
                              f"got {type(extras.get(key)).__name__}")
    if checkpoint["task"] == "classification":
        outputs = checkpoint["model"].get("output_size") if isinstance(checkpoint["model"], dict) else None
        if not isinstance(outputs, int) or outputs != len(extras["class_names"]):
            raise SeqlabError(f"{file}: damaged seqlab checkpoint: {len(extras['class_names'])} class names for a "
                              f"model of {outputs if isinstance(outputs, int) else 'unknown'} outputs")
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                normalizer = Normalizer.from_state_dict(extras["normalizer"])
            ok = normalizer.shift.shape == normalizer.scale.shape == (extras["features"],)
            ok = ok and bool(np.isfinite(normalizer.shift).all() and (normalizer.scale > 0).all())
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise SeqlabError(f"{file}: damaged seqlab checkpoint: extras.normalizer: expected finite shift and "
                              f"positive scale, {extras['features']} values each")


def require_task(run: Run, task: str, command: str) -> None:
    if run.task != task:
        raise SeqlabError(f"run folder {run.path}: holds a {run.task} run; `seqlab {command}` needs a {task} run")


class RunFolder:
    """A run folder opened for training: locked against other processes until :meth:`close`.

    ``resume`` says whether ``checkpoints/last.ckpt`` holds an interrupted
    run of the same config and data to continue.
    """

    def __init__(self, path: Path, resume: bool, lock: int):
        self.path = path
        self.resume = resume
        self._lock = lock

    def close(self) -> None:
        if self._lock >= 0:
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = -1

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _entries(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE) if out.is_dir() else []


def _lock(out: Path) -> int:
    """Hold ``out/.seqlab.lock`` (flock, released when the process ends); refuse if another process holds it."""
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, file_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "another process"
        os.close(fd)
        raise SeqlabError(f"--out {out}: another seqlab process (pid {holder}) is training into this folder; "
                          "wait for it or choose another folder") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def _remove_own_files(out: Path, everything: bool) -> None:
    """Delete seqlab's temporary files left by a killed process and, with ``everything``, all its files."""
    folders = [out, *(out / name for name in RUN_DIRS)]
    for folder in folders:
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
    if not everything:
        return
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for name in RUN_DIRS:
        shutil.rmtree(out / name, ignore_errors=True)


def open_run_folder(out: Path, config_yaml: str, fingerprint: str, overwrite: bool) -> RunFolder:
    """Make ``out`` ready for a run, locked for this process; say whether an interrupted run resumes.

    A folder is a seqlab run when it holds ``seqlab-run.json`` (the config's
    and the data's fingerprints). A run of another config is refused unless
    ``overwrite``, which deletes seqlab's own files only; a non-empty folder
    that is not a run is never written to; an interrupted run whose data
    changed is refused.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SeqlabError(f"--out {out}: exists and is not a folder")
    foreign = f"--out {out}: folder is not empty and holds no seqlab run ({MARKER_FILE}); choose another folder"
    entries = _entries(out)
    if entries and MARKER_FILE not in entries:
        raise SeqlabError(foreign)
    out.mkdir(parents=True, exist_ok=True)
    lock = _lock(out)
    try:
        resume = _claim(out, config_yaml, fingerprint, overwrite, foreign)
    except BaseException:
        os.close(lock)
        raise
    return RunFolder(out, resume, lock)


def _claim(out: Path, config_yaml: str, fingerprint: str, overwrite: bool, foreign: str) -> bool:
    marker = {"format": RUN_FOLDER_FORMAT, "config_sha256": hashlib.sha256(config_yaml.encode()).hexdigest(),
              "data_fingerprint": fingerprint}
    entries = _entries(out)  # again, now that no other process can change them
    if not entries:
        write_json(out / MARKER_FILE, marker)
        return False
    if MARKER_FILE not in entries:
        raise SeqlabError(foreign)
    try:
        found = json.loads((out / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        found = {}
    if not isinstance(found, dict) or found.get("format") != RUN_FOLDER_FORMAT:
        raise SeqlabError(f"--out {out}: {MARKER_FILE} is not a seqlab run marker ({RUN_FOLDER_FORMAT}); "
                          "choose another folder")
    _remove_own_files(out, everything=overwrite)
    if overwrite:
        write_json(out / MARKER_FILE, marker)
        return False
    if found.get("config_sha256") != marker["config_sha256"]:
        raise SeqlabError(
            f"--out {out}: already holds a different run (its config differs); "
            "use --overwrite to replace it or choose another folder"
        )
    if (out / METRICS_FILE).is_file():
        raise SeqlabError(f"--out {out}: already holds this run, completed; use --overwrite to train it again")
    resume = (out / LAST_CHECKPOINT).is_file()
    if found.get("data_fingerprint") != fingerprint:
        if resume:
            raise SeqlabError(
                f"--out {out}: the data differs from the data this interrupted run started with (fingerprint "
                f"{fingerprint[:12]}, the run's {str(found.get('data_fingerprint'))[:12]}); resuming would mix "
                "the two; restore the data or use --overwrite to start again"
            )
        write_json(out / MARKER_FILE, marker)
    return resume


def slug(spec: str) -> str:
    """A folder name for a data spec: ``aeon:BasicMotions`` -> ``aeon-BasicMotions``; a file -> its stem."""
    name = spec
    for prefix in ("series:", "text:", "ut-har:", "deap:"):
        if spec.startswith(prefix) and "/" in spec:
            name = prefix[:-1] + "-" + Path(spec[len(prefix):].rstrip("/")).stem
    if "/" in name or name.endswith((".npz", ".csv", ".ts")):
        name = Path(name).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "data"
