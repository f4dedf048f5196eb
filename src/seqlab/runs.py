"""Run folders: what ``seqlab train`` writes and everything else reads.

A run folder holds ``config.yaml`` (the resolved config), ``model.pt`` (the
self-describing best checkpoint), ``metrics.json``, ``history.csv``, PNG
plots, and ``checkpoints/`` (Lightning's, for resuming). ``model.pt``
carries the model's name and arguments, the data description (class names,
feature count) and the normaliser, so ``eval`` and ``predict`` need nothing
but the folder. It is loaded with ``weights_only=True``.
"""

from __future__ import annotations

import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from seqlab.data.scaling import Normalizer
from seqlab.errors import SeqlabError
from seqlab.io import load_torch, save_torch

CHECKPOINT_FORMAT = "seqlab-run/1"
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
# Files a run writes: --overwrite removes these and nothing else.
RUN_FILES = (MODEL_FILE, CONFIG_FILE, METRICS_FILE, "history.csv", "eval.json",
             "learning_curves.png", "confusion_matrix.png", "attention.png", "forecast.png", "forecast.csv",
             "samples.txt")
RUN_DIRS = ("checkpoints",)


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
    try:
        model = build_from_spec(checkpoint["model"])
        model.load_state_dict(checkpoint["state_dict"])
    except SeqlabError as error:
        raise SeqlabError(f"{file}: damaged seqlab checkpoint: {error}") from None
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as error:
        # torch lists every missing key and wrong shape over many lines: keep the first
        detail = " ".join((str(error).strip().splitlines() or [""])[:2])
        raise SeqlabError(f"{file}: damaged seqlab checkpoint: the model cannot be rebuilt from it "
                          f"({type(error).__name__}: {detail[:300]})") from None
    model.eval()
    return Run(path=path, model=model, config=checkpoint["config"], task=checkpoint["task"], checkpoint=checkpoint)


def require_task(run: Run, task: str, command: str) -> None:
    if run.task != task:
        raise SeqlabError(f"run folder {run.path}: holds a {run.task} run; `seqlab {command}` needs a {task} run")


def prepare_out_dir(out: Path, config_yaml: str, overwrite: bool) -> bool:
    """Make ``out`` ready for a run; return True when an interrupted run can resume.

    A folder holding a different run is refused unless ``overwrite``; a
    folder that does not look like a seqlab run is never emptied.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SeqlabError(f"--out {out}: exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return False
    config_file = out / CONFIG_FILE
    if not config_file.is_file():
        raise SeqlabError(f"--out {out}: folder is not empty and holds no seqlab run; choose another folder")
    same = config_file.read_text(encoding="utf-8") == config_yaml
    complete = (out / METRICS_FILE).is_file()
    if overwrite:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        for name in RUN_DIRS:
            shutil.rmtree(out / name, ignore_errors=True)
        return False
    if not same:
        raise SeqlabError(
            f"--out {out}: already holds a different run (its {CONFIG_FILE} differs); "
            "use --overwrite to replace it or choose another folder"
        )
    if complete:
        raise SeqlabError(f"--out {out}: already holds this run, completed; use --overwrite to train it again")
    return (out / "checkpoints" / "last.ckpt").is_file()
