"""DEAP EEG emotion recognition (``deap:DIR``, the ``data_preprocessed_python`` folder).

Each ``sNN.dat`` is a pickle holding ``data`` (40 trials x 40 channels x 8064
samples at 128 Hz: 32 EEG channels, then 8 peripheral ones; the first 3 s of
each trial are a baseline) and ``labels`` (40 x 4 ratings, 1-9: valence,
arousal, dominance, liking). Files are read with a restricted unpickler that
admits only NumPy arrays and plain containers.

Each subject is preprocessed once (channels, baseline removal, band-pass,
downsampling) into a float32 cache laid out (trial, time, channel); windows
are then read lazily from it, one contiguous read per window, so training on
all 32 subjects keeps little in memory. What needs the split (the EOG
regression weights, the scaling statistics) is fitted on the training trials
and applied as each window is read (:class:`Cleaning`). Symbols: W window
samples, T' trial samples, C channels, E = 2 EOG channels.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from seqlab.data.dataset import DataBundle
from seqlab.data.safe_pickle import load_restricted
from seqlab.errors import SeqlabError
from seqlab.io import write_text
from seqlab.options import check

EEG_CHANNELS = ["Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "Oz", "Pz",
                "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2"]
PERIPHERAL = ["hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration", "Plethysmograph", "Temperature"]
CHANNELS = EEG_CHANNELS + PERIPHERAL
RATE, BASELINE_SECONDS, TRIALS, SAMPLES = 128, 3, 40, 8064
EOG_CHANNELS = ["hEOG", "vEOG"]
QUADRANTS = ["HVHA", "HVLA", "LVHA", "LVLA"]
RATINGS = ["valence", "arousal", "dominance", "liking"]


@dataclass
class DEAPOptions:
    """``data.options`` for ``deap:DIR`` (defaults in brackets in the README).

    Attributes:
        channels: channel names (default: the 32 EEG channels).
        subjects: subject numbers to use (default: every ``sNN.dat`` found).
        baseline: ``subtract`` the per-channel mean of the 3-s baseline, then
            drop it; ``drop`` only drops it.
        band: band-pass edges in Hz, e.g. [4, 45] (zero-phase Butterworth,
            order 4); [] disables it.
        downsample: keep every k-th sample after anti-alias filtering.
        window, stride: window length and step in seconds.
        scale: ``zscore`` or ``minmax`` per channel, statistics from the
            training windows' trials only; ``zscore-minmax``, the two chained
            as seed 004 does: each trial z-scored per channel over its own
            samples, then min-max scaled with the training trials' range;
            or ``none``.
        eog: ``regress``: remove eye artefacts by regressing the hEOG and
            vEOG channels out of every channel, x - EOG B, with B (E, C) the
            least-squares fit over all training trials; ``none`` (default).
        labels: ``valence``, ``arousal`` (2 classes: low, high) or
            ``quadrant`` (HVHA, HVLA, LVHA, LVLA). High means rating >= threshold.
            Task ``regression`` reads the continuous ratings instead (1..9):
            ``valence``, ``arousal``, or both (``quadrant``).
        threshold: the rating from which a score counts as high (5).
        split: ``trial`` (within each subject, whole trials go to train,
            validation or test), ``subject`` (leave subjects out), or
            ``random`` over windows (leaks: windows of one trial on both
            sides; allowed with a warning).
        test_subjects: subject numbers for the test side of ``subject``
            splits (default: ``data.test_fraction`` of them, seeded).
        cache: folder for the preprocessed cache (default ``DIR/.seqlab-cache``).
    """

    channels: list[str] = field(default_factory=list)
    subjects: list[int] = field(default_factory=list)
    baseline: Literal["subtract", "drop"] = "subtract"
    band: list[float] = field(default_factory=lambda: [4.0, 45.0])
    downsample: int = 1
    window: float = 2.0
    stride: float = 1.0
    scale: Literal["zscore", "minmax", "zscore-minmax", "none"] = "zscore"
    eog: Literal["none", "regress"] = "none"
    labels: Literal["valence", "arousal", "quadrant"] = "quadrant"
    threshold: float = 5.0
    split: Literal["trial", "subject", "random"] = "trial"
    test_subjects: list[int] = field(default_factory=list)
    cache: str = ""

    def validate(self) -> None:
        unknown = [c for c in self.channels if c not in CHANNELS]
        check(not unknown, "data.options.channels", "names from " + ", ".join(CHANNELS), unknown[:1] or None)
        eog = [c for c in self.channels if c in EOG_CHANNELS]
        check(self.eog == "none" or not eog, "data.options.channels", "no EOG channel with eog: regress "
              "(they are regressed out of the others)", eog[:1] or None)
        check(self.downsample >= 1, "data.options.downsample", "an integer >= 1", self.downsample)
        check(self.window > 0 and self.stride > 0, "data.options.window", "positive seconds", self.window)
        if self.band:
            ok = len(self.band) == 2 and 0 < self.band[0] < self.band[1] < RATE / 2
            check(ok, "data.options.band", f"[low, high] with 0 < low < high < {RATE // 2} Hz", self.band)

    @property
    def rate(self) -> float:
        return RATE / self.downsample


def class_names(options: DEAPOptions) -> list[str]:
    if options.labels == "quadrant":
        return list(QUADRANTS)
    return [f"low {options.labels}", f"high {options.labels}"]


def trial_ratings(ratings: np.ndarray, options: DEAPOptions) -> np.ndarray:
    """(40, 4) ratings -> (40, K) float32 regression targets: valence, arousal, or both (``quadrant``)."""
    columns = {"valence": [0], "arousal": [1], "quadrant": [0, 1]}[options.labels]
    return ratings[:, columns].astype(np.float32)


def trial_labels(ratings: np.ndarray, options: DEAPOptions) -> np.ndarray:
    """(40, 4) ratings -> (40,) class indices (see :func:`class_names`)."""
    high_valence = ratings[:, 0] >= options.threshold
    high_arousal = ratings[:, 1] >= options.threshold
    if options.labels == "valence":
        return high_valence.astype(np.int64)
    if options.labels == "arousal":
        return high_arousal.astype(np.int64)
    return np.where(high_valence, np.where(high_arousal, 0, 1), np.where(high_arousal, 2, 3)).astype(np.int64)


def read_subject(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load and check one ``sNN.dat``: (data (40, 40, 8064), labels (40, 4))."""
    content = load_restricted(path)
    if not isinstance(content, dict) or "data" not in content or "labels" not in content:
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise SeqlabError(f"{path}: expected a dict with 'data' and 'labels', found {found}")
    data, labels = np.asarray(content["data"]), np.asarray(content["labels"])
    if data.ndim != 3 or data.shape[0] != TRIALS or data.shape[1] != len(CHANNELS) or data.shape[2] < RATE * 4:
        raise SeqlabError(f"{path}: data: expected shape ({TRIALS}, {len(CHANNELS)}, {SAMPLES}), got {data.shape}")
    if labels.shape != (TRIALS, 4):
        raise SeqlabError(f"{path}: labels: expected shape ({TRIALS}, 4), got {labels.shape}")
    if data.dtype.kind not in "fiu" or labels.dtype.kind not in "fiu":
        raise SeqlabError(f"{path}: expected numeric data and labels, got {data.dtype} and {labels.dtype}")
    if not np.isfinite(labels).all():
        trial, rating = np.argwhere(~np.isfinite(labels))[0]
        raise SeqlabError(f"{path}: labels: trial {trial + 1} has a NaN or Inf {RATINGS[rating]} rating; "
                          "expected ratings in 1..9")
    if labels.min() < 1 or labels.max() > 9:
        raise SeqlabError(f"{path}: labels: expected ratings in 1..9, got {labels.min():g}..{labels.max():g}")
    bad = ~np.isfinite(data)
    if bad.any():
        trial, channel, sample = np.argwhere(bad)[0]
        raise SeqlabError(f"{path}: data: {int(bad.sum())} NaN or Inf samples (first in trial {trial + 1}, channel "
                          f"{CHANNELS[channel]}, sample {sample}); expected finite numbers")
    return data, labels


def preprocess(data: np.ndarray, options: DEAPOptions, channel_index: list[int]) -> np.ndarray:
    """(40, 40, S) raw -> (40, T', C) float32: channels, baseline, band-pass, downsampling."""
    from scipy import signal

    x = data[:, channel_index, :].astype(np.float64)  # (40, C, S)
    base = RATE * BASELINE_SECONDS
    if options.baseline == "subtract":
        x = x[:, :, base:] - x[:, :, :base].mean(axis=2, keepdims=True)
    else:
        x = x[:, :, base:]
    if options.band:
        sos = signal.butter(4, options.band, btype="bandpass", fs=RATE, output="sos")
        x = signal.sosfiltfilt(sos, x, axis=2)
    if options.downsample > 1:
        x = signal.decimate(x, options.downsample, axis=2, zero_phase=True)
    return np.ascontiguousarray(x.transpose(0, 2, 1), dtype=np.float32)  # (40, T', C)


@dataclass
class CachedSubject:
    """A preprocessed subject on disk: float32 (40, T', C), read window by window."""

    path: Path
    shape: tuple[int, int, int]
    offset: int  # bytes before the array in the .npy file
    labels: np.ndarray  # (40, 4)

    def read(self, trial: int, start: int, length: int, fd: int) -> np.ndarray:
        _, steps, channels = self.shape
        position = self.offset + ((trial * steps + start) * channels) * 4
        buffer = os.pread(fd, length * channels * 4, position)
        return np.frombuffer(buffer, dtype=np.float32).reshape(length, channels)


def build_cache(folder: Path, options: DEAPOptions) -> list[CachedSubject]:
    files = sorted(folder.glob("s[0-9][0-9].dat"))
    if options.subjects:
        wanted = {f"s{n:02d}.dat" for n in options.subjects}
        missing = sorted(wanted - {f.name for f in files})
        if missing:
            raise SeqlabError(f"deap:{folder}: data.options.subjects asks for {missing[0]}, which is not there")
        files = [f for f in files if f.name in wanted]
    if not files:
        raise SeqlabError(f"deap:{folder}: no sNN.dat files found; expected DEAP's data_preprocessed_python folder")
    channels = (options.channels or EEG_CHANNELS) + (EOG_CHANNELS if options.eog == "regress" else [])
    channel_index = [CHANNELS.index(c) for c in channels]  # the EOG channels last, for the regression
    settings = {k: v for k, v in asdict(options).items() if k in ("baseline", "band", "downsample")}
    settings["channels"] = channels
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    cache = Path(options.cache) if options.cache else folder / ".seqlab-cache"
    cache = cache / key
    cache.mkdir(parents=True, exist_ok=True)
    index_path = cache / "index.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = {}
    subjects = []
    for file in files:
        digest = _content_hash(file, index)
        array_path, label_path = cache / f"{file.stem}-{digest}.npy", cache / f"{file.stem}-{digest}-labels.npy"
        if not (array_path.is_file() and label_path.is_file()):
            data, labels = read_subject(file)
            x = preprocess(data, options, channel_index)
            del data
            for target, value in ((array_path, x), (label_path, labels.astype(np.float64))):
                tmp = target.with_suffix(".tmp.npy")
                np.save(tmp, value)
                os.replace(tmp, target)
            del x
        array = np.load(array_path, mmap_mode="r")
        subjects.append(CachedSubject(array_path, array.shape, array.offset, np.load(label_path)))
        del array
    write_text(index_path, json.dumps(index, indent=1, sort_keys=True) + "\n")
    return subjects


def _content_hash(file: Path, index: dict) -> str:
    """SHA-256 (first 16 hex digits) of ``file``'s bytes, read once per version of the file.

    ``index`` remembers each file's hash with its inode, size, mtime and ctime, all in
    nanoseconds. A replaced file (``cp -p`` and ``rsync -t`` keep the size and mtime) has a
    new ctime, which no copy tool can set, so it is hashed again; an untouched file is not.
    """
    stat = file.stat()
    stamp = [stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
    known = index.get(file.name)
    if isinstance(known, dict) and known.get("stat") == stamp and isinstance(known.get("sha256"), str):
        return known["sha256"]
    with file.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()[:16]
    index[file.name] = {"stat": stamp, "sha256": digest}
    return digest


@dataclass
class Cleaning:
    """What is applied to a cached trial's samples before scaling: EOG regression, per-trial z-score.

    ``eog_weights (E, C)``: x[:, :C] - x[:, C:] @ B removes the EOG channels'
    share of each channel (and drops the EOG channels); ``trial_mean`` and
    ``trial_std (subjects, 40, C)``: the per-trial z-score of ``zscore-minmax``.
    """

    eog_weights: np.ndarray | None = None
    trial_mean: np.ndarray | None = None
    trial_std: np.ndarray | None = None

    def apply(self, x: np.ndarray, subject: int, trial: int) -> np.ndarray:
        """(W, C [+ E]) cached samples of one trial -> (W, C)."""
        if self.eog_weights is not None:
            channels = x.shape[1] - len(EOG_CHANNELS)
            x = x[:, :channels] - x[:, channels:] @ self.eog_weights  # (W, C)
        if self.trial_mean is not None:
            x = (x - self.trial_mean[subject, trial]) / self.trial_std[subject, trial]
        return x


def _trials(subjects: list[CachedSubject], pairs):
    """(subject, trial, samples (T', C [+ E]) float64) for each (subject, trial), one subject open at a time."""
    by_subject: dict[int, list[int]] = {}
    for s, t in pairs:
        by_subject.setdefault(int(s), []).append(int(t))
    for s, trials in sorted(by_subject.items()):
        array = np.load(subjects[s].path, mmap_mode="r")
        for t in sorted(set(trials)):
            yield s, t, np.asarray(array[t], dtype=np.float64)
        del array


def fit_cleaning(subjects: list[CachedSubject], train_pairs, options: DEAPOptions) -> Cleaning:
    """The EOG regression weights from the training trials, then (``zscore-minmax``) every trial's own
    mean and standard deviation, of the regressed signal."""
    cleaning = Cleaning()
    if options.eog == "regress":
        eog = len(EOG_CHANNELS)
        gram, cross = np.zeros((eog, eog)), None
        for _, _, x in _trials(subjects, train_pairs):
            e = x[:, -eog:]  # (T', E)
            gram += e.T @ e
            cross = e.T @ x[:, :-eog] + (0.0 if cross is None else cross)  # (E, C)
        if cross is None:
            raise SeqlabError("data.options.eog: regress needs training trials to fit the EOG weights on")
        cleaning.eog_weights = np.linalg.lstsq(gram, cross, rcond=None)[0]  # (E, C): EOG B ~ x
    if options.scale == "zscore-minmax":
        channels = subjects[0].shape[2] - (len(EOG_CHANNELS) if options.eog == "regress" else 0)
        mean, std = np.zeros((len(subjects), TRIALS, channels)), np.ones((len(subjects), TRIALS, channels))
        every = [(s, t) for s in range(len(subjects)) for t in range(TRIALS)]
        for s, t, x in _trials(subjects, every):  # a trial's own statistics: no labels, nothing shared
            x = cleaning.apply(x, s, t)
            mean[s, t], sd = x.mean(axis=0), x.std(axis=0)
            std[s, t] = np.where(sd > 1e-12, sd, 1.0)
        cleaning.trial_mean, cleaning.trial_std = mean, std
    return cleaning


class DEAPWindows(Dataset):
    """Windows read lazily from the cache: items (x (W, C) float32, W, class index)."""

    def __init__(self, subjects: list[CachedSubject], index: np.ndarray, window: int, y: np.ndarray,
                 shift: np.ndarray, scale: np.ndarray, cleaning: Cleaning | None = None):
        self.subjects, self.index, self.window = subjects, index, window
        self.y = y
        self.shift, self.scale = shift.astype(np.float32), scale.astype(np.float32)
        self.cleaning = cleaning or Cleaning()
        self.lengths = None
        self._fds: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.index)

    @property
    def steps(self) -> int:
        return self.window

    @property
    def features(self) -> int:
        return len(self.shift)

    def window_array(self, i: int) -> np.ndarray:
        s, trial, start = (int(v) for v in self.index[i])
        if s not in self._fds:
            self._fds[s] = os.open(self.subjects[s].path, os.O_RDONLY)
        x = self.cleaning.apply(self.subjects[s].read(trial, start, self.window, self._fds[s]), s, trial)
        return ((x - self.shift) / self.scale).astype(np.float32)  # (W, C)

    def __getitem__(self, i: int):
        target = torch.from_numpy(self.y[i]) if self.y.dtype.kind == "f" else int(self.y[i])  # (K,) or a class
        return torch.from_numpy(self.window_array(i)), self.window, target

    def __getstate__(self):  # file descriptors do not travel to worker processes
        state = dict(self.__dict__)
        state["_fds"] = {}
        return state

    def __del__(self):
        for fd in getattr(self, "_fds", {}).values():
            os.close(fd)


def _split_trials(subjects: int, options: DEAPOptions, val_fraction: float, test_fraction: float,
                  seed: int, test_subjects: list[int]) -> tuple[list, list, list]:
    """(subject, trial) pairs per side; each trial lands wholly on one side."""
    rng = np.random.default_rng(seed)
    sides: tuple[list, list, list] = ([], [], [])
    if options.split == "subject":
        order = [int(s) for s in rng.permutation(subjects)]
        n_test = max(1, round(test_fraction * subjects))
        n_val = max(1, round(val_fraction * subjects))
        test = test_subjects or order[:n_test]
        rest = [s for s in order if s not in test]
        val, train = rest[:n_val], rest[n_val:]
        if not train:
            raise SeqlabError(f"data.options.split subject: {subjects} subjects leave none for training")
        for side, chosen in zip(sides, (train, val, test)):
            side.extend((s, t) for s in sorted(chosen) for t in range(TRIALS))
        return sides
    n_test = max(1, round(test_fraction * TRIALS))
    n_val = max(1, round(val_fraction * TRIALS))
    for s in range(subjects):
        order = rng.permutation(TRIALS)
        for side, chosen in zip(sides, (order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test])):
            side.extend((s, int(t)) for t in sorted(chosen))
    return sides


def load_deap(folder: str | Path, options: DEAPOptions, val_fraction: float, test_fraction: float,
              seed: int, regression: bool = False) -> DataBundle:
    folder = Path(folder)
    if not folder.is_dir():
        raise SeqlabError(f"deap:{folder}: folder not found")
    subjects = build_cache(folder, options)
    steps = subjects[0].shape[1]
    window, stride = round(options.window * options.rate), round(options.stride * options.rate)
    if window > steps:
        raise SeqlabError(f"data.options.window: {options.window} s = {window} samples is longer than a trial "
                          f"({steps} samples after the baseline at {options.rate:g} Hz)")
    starts = np.arange(0, steps - window + 1, max(1, stride))
    numbers = [int(s.path.name[1:3]) for s in subjects]
    unknown = sorted(set(options.test_subjects) - set(numbers))
    if unknown:
        raise SeqlabError(f"data.options.test_subjects: subject {unknown[0]} is not among {numbers}")
    test_subjects = [numbers.index(n) for n in options.test_subjects]
    labels = [(trial_ratings if regression else trial_labels)(s.labels, options) for s in subjects]

    def windows(pairs):
        index = np.array([(s, t, start) for s, t in pairs for start in starts], dtype=np.int64).reshape(-1, 3)
        return index, np.array([labels[s][t] for s, t, _ in index], dtype=np.float32 if regression else np.int64)

    if options.split == "random":
        message = ("data.options.split=random: windows of one trial land on both sides of the split, so test "
                   "scores are optimistic (leakage); use split trial or subject for honest figures")
        print(f"seqlab: warning: {message}", file=sys.stderr)
        index, y = windows([(s, t) for s in range(len(subjects)) for t in range(TRIALS)])
        order = np.random.default_rng(seed).permutation(len(index))
        n_test, n_val = round(test_fraction * len(index)), round(val_fraction * len(index))
        parts = [order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test]]
        sides = [(index[p], y[p]) for p in parts]
    else:
        pairs = _split_trials(len(subjects), options, val_fraction, test_fraction, seed, test_subjects)
        sides = [windows(side) for side in pairs]
    train_pairs = {(int(s), int(t)) for s, t, _ in sides[0][0]}
    cleaning = fit_cleaning(subjects, train_pairs, options)
    shift, scale = _scaling(subjects, train_pairs, options, cleaning)
    sets = [DEAPWindows(subjects, index, window, y, shift, scale, cleaning) for index, y in sides]
    channels = options.channels or EEG_CHANNELS
    if regression:
        names = ["valence", "arousal"] if options.labels == "quadrant" else [options.labels]
        return DataBundle(f"deap:{folder}", sets[0], sets[1], sets[2], [], list(channels), names)
    return DataBundle(f"deap:{folder}", sets[0], sets[1], sets[2], class_names(options), list(channels))


def _scaling(subjects: list[CachedSubject], train_pairs, options: DEAPOptions, cleaning: Cleaning):
    """Per-channel statistics over the training trials (whole trials, cleaned, read subject by subject)."""
    channels = subjects[0].shape[2] - (len(EOG_CHANNELS) if options.eog == "regress" else 0)
    if options.scale == "none" or not train_pairs:
        return np.zeros(channels), np.ones(channels)
    total, total_sq, count = np.zeros(channels), np.zeros(channels), 0
    low, high = np.full(channels, np.inf), np.full(channels, -np.inf)
    for s, t, x in _trials(subjects, train_pairs):
        x = cleaning.apply(x, s, t)  # (T', C)
        total += x.sum(axis=0)
        total_sq += (x**2).sum(axis=0)
        count += len(x)
        low, high = np.minimum(low, x.min(axis=0)), np.maximum(high, x.max(axis=0))
    if options.scale == "zscore":
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
        return mean, np.where(std > 1e-12, std, 1.0)
    return low, np.where(high - low > 1e-12, high - low, 1.0)
