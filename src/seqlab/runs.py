"""Run folders: what ``seqlab train`` writes and everything else reads.

A run folder holds ``config.yaml`` (the resolved config), ``model.pt`` (the
self-describing best checkpoint), ``metrics.json``, ``history.csv``, PNG
plots, and ``checkpoints/`` (Lightning's, for resuming). ``model.pt``
carries the model's name and arguments, the data description (class names,
feature count) and the normaliser, so ``eval`` and ``predict`` need nothing
but the folder. It is loaded with ``weights_only=True``.
"""

from __future__ import annotations

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
             "learning_curves.png", "confusion_matrix.png")
RUN_DIRS = ("checkpoints",)


@dataclass
class Run:
    """A trained model loaded from its run folder."""

    path: Path
    model: nn.Module
    normalizer: Normalizer
    config: dict[str, Any]
    class_names: list[str]
    task: str
    checkpoint: dict[str, Any]


def save_run_checkpoint(
    path: Path,
    model: nn.Module,
    model_name: str,
    model_args: dict[str, Any],
    config: dict[str, Any],
    normalizer: Normalizer,
    data_info: dict[str, Any],
    task: str = "classification",
) -> None:
    save_torch(
        path,
        {
            "format": CHECKPOINT_FORMAT,
            "task": task,
            "model": {"name": model_name, **model_args},
            "config": config,
            "data": data_info,
            "normalizer": normalizer.state_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        },
    )


def load_run(path: str | Path) -> Run:
    """Rebuild the model of a run folder with no other input."""
    from seqlab.models.registry import build_model

    path = Path(path)
    if not path.is_dir():
        raise SeqlabError(f"run folder {path}: not found")
    file = path / MODEL_FILE
    if not file.is_file():
        raise SeqlabError(f"run folder {path}: no {MODEL_FILE}; expected a completed `seqlab train` run")
    try:
        checkpoint = load_torch(file)
    except Exception as error:  # noqa: BLE001 - any unpickling failure is a bad file
        raise SeqlabError(f"{file}: not a readable seqlab checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise SeqlabError(f"{file}: expected a seqlab checkpoint ({CHECKPOINT_FORMAT})")
    spec = dict(checkpoint["model"])
    name = spec.pop("name")
    input_size, output_size = spec.pop("input_size"), spec.pop("output_size")
    model = build_model(name, input_size, output_size, **spec["options"])
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    return Run(
        path=path,
        model=model,
        normalizer=Normalizer.from_state_dict(checkpoint["normalizer"]),
        config=checkpoint["config"],
        class_names=list(checkpoint["data"]["class_names"]),
        task=checkpoint["task"],
        checkpoint=checkpoint,
    )


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
