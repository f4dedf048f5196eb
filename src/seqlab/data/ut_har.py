"""UT-HAR WiFi CSI activity recognition, in SenseFi's layout.

``DIR/data/X_{train,val,test}.csv`` and ``DIR/label/y_{train,val,test}.csv``:
despite the extension these are NumPy binary files (``np.load``, no
pickles allowed). X reshapes to (N, 250, 90): 250 time stamps x 90 CSI
amplitudes (3 antennas x 30 subcarriers); y holds the 7 activity labels
0..6 as floats. Paths are joined with pathlib, so they work on every OS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from seqlab.data.dataset import DataBundle, SequenceSet, check_finite
from seqlab.errors import SeqlabError

STEPS, FEATURES, CLASSES = 250, 90, 7
SPLITS = ("train", "val", "test")


@dataclass
class UTHAROptions:
    """``data.options`` for ``ut-har:DIR``.

    Attributes:
        normalize: ``train`` (the default: ``data.normalize`` statistics fitted
            on the training split) or ``per-file-minmax`` (SenseFi's: each file
            scaled by its own min and max, so the test file's statistics are
            used on the test file itself).
    """

    normalize: Literal["train", "per-file-minmax"] = "train"


def _load_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise SeqlabError(f"{path}: file not found; a UT-HAR folder holds data/X_{{train,val,test}}.csv and "
                          "label/y_{train,val,test}.csv")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise SeqlabError(f"{path}: expected a NumPy binary array (SenseFi's format), could not read it ({error})") from None


def load_ut_har(folder: str | Path, options: UTHAROptions) -> DataBundle:
    folder = Path(folder)
    if not folder.is_dir():
        raise SeqlabError(f"ut-har:{folder}: folder not found")
    parts = {}
    for split in SPLITS:
        x_path, y_path = folder / "data" / f"X_{split}.csv", folder / "label" / f"y_{split}.csv"
        X, y = _load_array(x_path), _load_array(y_path).reshape(-1)
        if X.dtype.kind not in "fiu" or y.dtype.kind not in "fiu":
            raise SeqlabError(f"{x_path}, {y_path}: expected numeric arrays, got {X.dtype} and {y.dtype}")
        if X.ndim not in (3, 4) or X.shape[-2:] != (STEPS, FEATURES) or (X.ndim == 4 and X.shape[1] != 1):
            # (N, 90, 250) holds the same number of values but transposed: reshaping it would scramble it
            raise SeqlabError(f"{x_path}: expected an array of shape (N, {STEPS}, {FEATURES}) or "
                              f"(N, 1, {STEPS}, {FEATURES}), got {X.shape}")
        X = X.reshape(-1, STEPS, FEATURES).astype(np.float32)
        if len(X) != len(y):
            raise SeqlabError(f"{x_path} holds {len(X)} samples but {y_path} holds {len(y)} labels; expected equal counts")
        check_finite(X, str(x_path))
        if not len(X):
            raise SeqlabError(f"{x_path}: holds no samples; expected (N >= 1, {STEPS}, {FEATURES})")
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)) or y.min() < 0 or y.max() >= CLASSES:
            raise SeqlabError(f"{y_path}: expected labels 0..{CLASSES - 1}, got values {y.min():g}..{y.max():g}")
        if options.normalize == "per-file-minmax":
            X = (X - X.min()) / max(float(X.max() - X.min()), 1e-12)
        parts[split] = SequenceSet(X, y.astype(np.int64))
    return DataBundle(f"ut-har:{folder}", parts["train"], parts["val"], parts["test"],
                      [str(c) for c in range(CLASSES)], [f"csi{i}" for i in range(FEATURES)])
