"""SenseFi's other WiFi sensing sets: NTU-Fi HAR, NTU-Fi HumanID (CSI amplitude) and Widar (BVP), in its layout.

NTU-Fi (``ntu-fi-har:DIR``, ``ntu-fi-humanid:DIR``): ``DIR/train_amp/CLASS/*.mat``
and ``DIR/test_amp/CLASS/*.mat``, each MATLAB file holding ``CSIamp``, 3
antennas x 114 subcarriers x 2000 packets (stored as (342, 2000) or
(3, 114, 2000)). As SenseFi's ``CSI_Dataset`` does, every 4th packet is kept
(2000 -> 500) and the 3 x 114 amplitudes of a packet are its features,
antenna-major, so a sample is (T=500, F=342): SenseFi's recurrent models read
``x.view(-1, 342, 500).permute(2, 0, 1)``, the same steps and features.

Widar (``widar:DIR``): ``DIR/train/CLASS/*.csv`` and ``DIR/test/CLASS/*.csv``
(SenseFi's ``Widardata``), each CSV 22 x 400 numbers: 22 time steps of a
20 x 20 body-velocity profile, read as (T=22, F=400) as SenseFi's ``Widar_*``
recurrent models read them; 22 gestures.

Classes are the folder names, sorted (SenseFi numbers them in the file
system's listing order, which differs between machines); the test folder's
classes must be among the training folder's. ``train_amp`` trains and
``test_amp`` tests for both NTU-Fi sets (SenseFi's HumanID loader swaps the
two); validation comes out of the training folder (``data.val_fraction``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from seqlab.data.dataset import DataBundle, SequenceSet, check_finite, stratified_split
from seqlab.errors import SeqlabError

ANTENNAS, SUBCARRIERS, PACKETS, STRIDE = 3, 114, 2000, 4
NTU_FI_STEPS, NTU_FI_FEATURES = PACKETS // STRIDE, ANTENNAS * SUBCARRIERS  # 500, 342
WIDAR_STEPS, WIDAR_FEATURES = 22, 400  # 22 steps of a 20 x 20 velocity profile
# SenseFi's fixed scaling, x' = (x - mean) / std, for data.options.normalize: sensefi
SENSEFI_SCALING = {"ntu-fi": (42.3199, 4.9802), "widar": (0.0025, 0.0119)}


@dataclass
class SenseFiOptions:
    """``data.options`` for ``ntu-fi-har:DIR``, ``ntu-fi-humanid:DIR`` and ``widar:DIR``.

    Attributes:
        normalize: ``train`` (the default: ``data.normalize`` statistics fitted
            on the training split) or ``sensefi`` (SenseFi's fixed constants:
            (x - 42.3199) / 4.9802 for NTU-Fi, (x - 0.0025) / 0.0119 for Widar,
            before ``data.normalize``; set that to ``none`` to keep SenseFi's alone).
    """

    normalize: Literal["train", "sensefi"] = "train"


def read_csi_mat(path: Path) -> np.ndarray:
    """One NTU-Fi sample: ``CSIamp`` (342, 2000) or (3, 114, 2000) -> (500, 342) float32, as SenseFi reads it."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        content = loadmat(path)
    except (MatReadError, ValueError, OSError, TypeError, NotImplementedError) as error:
        raise SeqlabError(f"{path}: not a readable MATLAB .mat file ({' '.join(str(error).split())[:200]})") from None
    if "CSIamp" not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise SeqlabError(f"{path}: expected a variable 'CSIamp' ({ANTENNAS} x {SUBCARRIERS} x {PACKETS} CSI "
                          f"amplitudes); found {found}")
    amplitude = np.asarray(content["CSIamp"])
    if amplitude.shape not in ((NTU_FI_FEATURES, PACKETS), (ANTENNAS, SUBCARRIERS, PACKETS)) or \
            amplitude.dtype.kind not in "fiu":
        raise SeqlabError(f"{path}: CSIamp: expected numbers of shape ({NTU_FI_FEATURES}, {PACKETS}) or "
                          f"({ANTENNAS}, {SUBCARRIERS}, {PACKETS}), got {amplitude.dtype} {amplitude.shape}")
    kept = amplitude.reshape(NTU_FI_FEATURES, PACKETS)[:, ::STRIDE]  # (342, 500): every 4th packet
    return np.ascontiguousarray(kept.T, dtype=np.float32)  # (T=500, F=342)


def read_bvp_csv(path: Path) -> np.ndarray:
    """One Widar sample: a CSV of 22 x 400 numbers -> (22, 400) float32."""
    try:
        values = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except (ValueError, UnicodeDecodeError) as error:
        raise SeqlabError(f"{path}: expected comma-separated numbers ({' '.join(str(error).split())[:200]})") from None
    if values.size != WIDAR_STEPS * WIDAR_FEATURES:
        raise SeqlabError(f"{path}: expected {WIDAR_STEPS} x {WIDAR_FEATURES} numbers (22 steps of a 20 x 20 "
                          f"velocity profile), got shape {values.shape}")
    return values.reshape(WIDAR_STEPS, WIDAR_FEATURES).astype(np.float32)


def _read_folder(folder: Path, suffix: str, reader: Callable[[Path], np.ndarray],
                 classes: list[str] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Samples of ``folder/CLASS/*suffix``: X (N, T, F), y (N,), ids (N,) and the class names."""
    if not folder.is_dir():
        raise SeqlabError(f"{folder}: folder not found; expected one folder of {suffix} files per class")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not found:
        raise SeqlabError(f"{folder}: no class folders; expected one folder of {suffix} files per class")
    names = found if classes is None else classes
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise SeqlabError(f"{folder}: class folder {unknown[0]!r} is not among the training classes {names}")
    samples, labels, ids = [], [], []
    for label, name in enumerate(names):
        for path in sorted((folder / name).glob(f"*{suffix}")) if (folder / name).is_dir() else []:
            samples.append(reader(path))
            labels.append(label)
            ids.append(f"{name}/{path.name}")
    if not samples:
        raise SeqlabError(f"{folder}: no {suffix} files in its class folders")
    X = np.stack(samples)  # (N, T, F)
    check_finite(X, str(folder))
    return X, np.array(labels, dtype=np.int64), np.array(ids), names


def _load(spec: str, folder: Path, parts: tuple[str, str], suffix: str, reader, kind: str,
          options: SenseFiOptions, val_fraction: float, seed: int) -> DataBundle:
    if not folder.is_dir():
        raise SeqlabError(f"{spec}: folder not found")
    X, y, ids, names = _read_folder(folder / parts[0], suffix, reader, None)
    X_test, y_test, ids_test, _ = _read_folder(folder / parts[1], suffix, reader, names)
    if options.normalize == "sensefi":
        mean, std = SENSEFI_SCALING[kind]
        X, X_test = (X - mean) / std, (X_test - mean) / std
    train, val = stratified_split(SequenceSet(X, y, None, ids), val_fraction, seed, spec)
    features = [f"a{a}s{s}" for a in range(ANTENNAS) for s in range(SUBCARRIERS)] if kind == "ntu-fi" else \
        [f"v{i}_{j}" for i in range(20) for j in range(20)]
    return DataBundle(spec, train, val, SequenceSet(X_test, y_test, None, ids_test), names, features)


def load_ntu_fi(spec: str, options: SenseFiOptions, val_fraction: float, seed: int) -> DataBundle:
    """``ntu-fi-har:DIR`` or ``ntu-fi-humanid:DIR``: ``train_amp/`` trains, ``test_amp/`` tests."""
    folder = Path(spec.split(":", 1)[1])
    return _load(spec, folder, ("train_amp", "test_amp"), ".mat", read_csi_mat, "ntu-fi", options, val_fraction,
                 seed)


def load_widar(spec: str, options: SenseFiOptions, val_fraction: float, seed: int) -> DataBundle:
    """``widar:DIR``: ``train/`` trains, ``test/`` tests."""
    folder = Path(spec.split(":", 1)[1])
    return _load(spec, folder, ("train", "test"), ".csv", read_bvp_csv, "widar", options, val_fraction, seed)
