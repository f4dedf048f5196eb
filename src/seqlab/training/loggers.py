"""Lightning loggers for ``train.logger``: ``csv`` (default), ``tensorboard``, ``mlflow`` or ``none``.

They write under ``RUN/logs/`` besides ``history.csv`` (which seqlab always
writes, one row per epoch, exact across resumes); a logger appends, so a
resumed run's logs may repeat the epochs replayed after the interruption.
With any logger a learning-rate monitor logs every optimiser group's rate
once per epoch.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger

from seqlab.errors import SeqlabError

LOGGERS = ("csv", "tensorboard", "mlflow", "none")
# logger -> (modules, any of which serves it; the package to install)
PACKAGES = {"tensorboard": (("tensorboard", "tensorboardX"), "tensorboardX"), "mlflow": (("mlflow",), "mlflow")}


def check_logger(kind: str) -> None:
    """Refuse a logger whose package is missing, before the run writes anything."""
    if kind not in PACKAGES:
        return
    modules, package = PACKAGES[kind]
    if not any(importlib.util.find_spec(name) for name in modules):
        raise SeqlabError(f"train.logger: {kind} needs the {package} package, which is not installed; "
                          f"pip install {package} (or use train.logger=csv)")


def make_logger(kind: str, out: Path) -> tuple[Logger | None, list]:
    """The logger writing into ``out/logs`` and its learning-rate monitor (none for ``none``)."""
    check_logger(kind)
    if kind == "none":
        return None, []
    if kind == "csv":
        logger = CSVLogger(save_dir=out, name="logs", version="")
    elif kind == "tensorboard":
        logger = TensorBoardLogger(save_dir=out, name="logs", version="", default_hp_metric=False)
    else:
        logger = MLFlowLogger(experiment_name="seqlab", tracking_uri=(out / "logs" / "mlruns").resolve().as_uri())
    return logger, [LearningRateMonitor(logging_interval="epoch")]
