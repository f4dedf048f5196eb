"""Generated stand-ins for data sets that cannot ship: UT-HAR, NTU-Fi, Widar and DEAP files in their real layouts.

The tests, the memory benchmark and anyone without the real downloads use
these to exercise the real loaders. The classes are learnable: each class
shapes the signal differently, under noise.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from seqlab.data import deap, sensefi, ut_har


def _activity(rng, label: int, steps: int, features: int) -> np.ndarray:
    t = np.arange(steps)[:, None]
    carriers = np.arange(features)[None, :]
    wave = np.sin(2 * np.pi * (label + 1) * t / steps + carriers * 0.1)
    return 10 + 2 * wave * (1 + label / 3) + rng.normal(scale=0.5, size=(steps, features))


def write_ut_har(folder: str | Path, sizes=(70, 14, 21), seed: int = 0,
                 steps: int = ut_har.STEPS, features: int = ut_har.FEATURES) -> Path:
    """SenseFi's layout: NumPy binaries named .csv, X flattened as (N, 250, 90), labels as floats."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for split, n in zip(ut_har.SPLITS, sizes):
        y = np.arange(n) % ut_har.CLASSES
        X = np.stack([_activity(rng, int(label), steps, features) for label in y]).astype(np.float32)
        for path, value in ((folder / "data" / f"X_{split}.csv", X), (folder / "label" / f"y_{split}.csv",
                                                                      y.astype(np.float64))):
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as handle:  # np.save would append .npy to the name
                np.save(handle, value)
    return folder


def deap_subject(rng, samples: int = deap.SAMPLES) -> dict:
    """One subject: ratings drawn in 1..9; high valence raises 10 Hz power, high arousal 20 Hz."""
    ratings = rng.uniform(1, 9, size=(deap.TRIALS, 4))
    t = np.arange(samples) / deap.RATE
    data = rng.normal(scale=1.0, size=(deap.TRIALS, len(deap.CHANNELS), samples))
    for trial, (valence, arousal) in enumerate(ratings[:, :2]):
        boost = (2.0 if valence >= 5 else 0.3) * np.sin(2 * np.pi * 10 * t) + \
                (2.0 if arousal >= 5 else 0.3) * np.sin(2 * np.pi * 20 * t)
        data[trial, :32, deap.RATE * deap.BASELINE_SECONDS:] += boost[deap.RATE * deap.BASELINE_SECONDS:]
    return {"labels": ratings, "data": data}


def write_deap(folder: str | Path, subjects: int = 2, samples: int = deap.SAMPLES, seed: int = 0,
               protocol: int = 4) -> Path:
    """``sNN.dat`` pickles holding ``data`` (40, 40, samples) float64 and ``labels`` (40, 4).

    Protocol 4 stores the arrays' bytes as they are (103 MB per full-size
    subject, as DEAP's files); protocol 2 writes them the way Python 2 did.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for number in range(1, subjects + 1):
        with (folder / f"s{number:02d}.dat").open("wb") as handle:
            pickle.dump(deap_subject(rng, samples), handle, protocol=protocol)
    return folder


def write_ntu_fi(folder: str | Path, classes=("box", "walk"), sizes=(3, 1), seed: int = 0) -> Path:
    """SenseFi's NTU-Fi layout: ``train_amp/CLASS/*.mat`` and ``test_amp/CLASS/*.mat`` of ``CSIamp`` (342, 2000),
    ``sizes`` files per class in each."""
    from scipy.io import savemat

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for part, n in zip(("train_amp", "test_amp"), sizes):
        for label, name in enumerate(classes):
            (folder / part / name).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                x = _activity(rng, label, sensefi.PACKETS, sensefi.NTU_FI_FEATURES).T * 4 + 20  # (342, 2000)
                savemat(folder / part / name / f"{name}_{k}.mat", {"CSIamp": x.astype(np.float32)})
    return folder


def write_widar(folder: str | Path, classes=("push", "sweep"), sizes=(3, 1), seed: int = 0) -> Path:
    """SenseFi's Widar layout: ``train/CLASS/*.csv`` and ``test/CLASS/*.csv``, 22 rows of 400 BVP values each."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for part, n in zip(("train", "test"), sizes):
        for label, name in enumerate(classes):
            (folder / part / name).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                x = _activity(rng, label, sensefi.WIDAR_STEPS, sensefi.WIDAR_FEATURES) * 1e-3  # (22, 400)
                np.savetxt(folder / part / name / f"{name}_{k}.csv", x, delimiter=",", fmt="%.6g")
    return folder
