"""Data sources: built-in sets, user files and ``aeon:NAME``, behind one spec string.

``load_data(DataConfig(spec=...), seed)`` returns a :class:`DataBundle` with
train / validation / test splits, stratified and seeded. A source with its
own test part (a ``NAME_TRAIN.ts`` / ``NAME_TEST.ts`` pair) keeps it; the
others are split with ``test_fraction``. Validation always comes out of the
training part.
"""

from __future__ import annotations

import csv
import importlib.util
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from seqlab.config import DataConfig, FoldSpec
from seqlab.data.dataset import (
    DataBundle,
    SequenceSet,
    MAX_ABS_VALUE,
    check_classes,
    check_finite,
    encode_labels,
    label_sort_key,
    pad_sequences,
    stratified_split,
)
from seqlab.data.folds import split_fold
from seqlab.data.ts_format import read_ts
from seqlab.errors import SeqlabError
from seqlab.options import from_dict


@dataclass
class LoadedFile:
    """Sequences read from one file, labels still raw (text or numbers)."""

    X: np.ndarray  # (N, T, F)
    lengths: np.ndarray | None  # (N,)
    labels: np.ndarray | None  # (N,) raw labels
    ids: np.ndarray | None = None
    class_names: list[str] | None = None  # declared order, when the format has one
    feature_names: list[str] | None = None
    targets: bool = False  # the labels are regression targets (a .ts file's @targetLabel true)
    groups: np.ndarray | None = None  # (N,) group of each sequence (subject, session), for grouped folds


# ----------------------------------------------------------------------------
# File readers


def read_npz(path: Path) -> LoadedFile:
    """``.npz`` with ``X`` (N, T, F) or (N, T), ``y`` (N,) (or (N, K) regression targets), optional
    ``lengths`` (N,) and ``groups`` (N,)."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise SeqlabError(f"{path}: a single .npy array; expected an .npz archive of arrays X, y[, lengths]")
        with archive:
            names = set(archive.files)
            if "X" not in names:
                raise SeqlabError(f"{path}: expected an array named 'X' (N, T, F); found arrays {sorted(names)}")
            X = archive["X"]
            y = archive["y"] if "y" in names else None
            lengths = archive["lengths"] if "lengths" in names else None
            groups = archive["groups"] if "groups" in names else None
    except SeqlabError:
        raise
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise SeqlabError(f"{path}: holds object arrays or pickles; expected plain numeric arrays") from None
        raise SeqlabError(f"{path}: not a readable .npz archive ({' '.join(str(error).split())})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, MemoryError) as error:
        # a zero-byte, truncated or damaged archive, or one declaring an array larger than memory
        raise SeqlabError(f"{path}: not a readable .npz archive ({type(error).__name__}: "
                          f"{' '.join(str(error).split()) or 'damaged'})") from None
    if X.ndim == 2:
        X = X[:, :, None]
    if X.ndim != 3 or X.dtype.kind not in "fiu":
        raise SeqlabError(f"{path}: X: expected a numeric array of shape (N, T, F), got {X.dtype} {X.shape}")
    if 0 in X.shape:
        raise SeqlabError(f"{path}: X: expected at least one sequence of one step and one feature, got shape {X.shape}")
    X = X.astype(np.float32)
    if y is not None and (y.ndim not in (1, 2) or (y.ndim == 2 and y.dtype.kind not in "fiu")):
        raise SeqlabError(f"{path}: y: expected one label per sequence, shape ({len(X)},), or K numeric targets, "
                          f"shape ({len(X)}, K), got {y.dtype} {y.shape}")
    if y is not None and len(y) != len(X):
        raise SeqlabError(f"{path}: X has {len(X)} sequences but y has {len(y)}; expected equal counts")
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (len(X),) or lengths.dtype.kind not in "iu":
            raise SeqlabError(f"{path}: lengths: expected {len(X)} integers, got {lengths.dtype} {lengths.shape}")
        if lengths.min() < 1 or lengths.max() > X.shape[1]:
            raise SeqlabError(f"{path}: lengths: expected values in 1..{X.shape[1]}, got {lengths.min()}..{lengths.max()}")
        lengths = lengths.astype(np.int64)
        X = np.where(np.arange(X.shape[1])[None, :, None] < lengths[:, None, None], X, 0.0).astype(np.float32)
    if groups is not None and (groups.shape != (len(X),) or groups.dtype.kind not in "iuU"):
        raise SeqlabError(f"{path}: groups: expected {len(X)} integers or strings, one per sequence, got "
                          f"{groups.dtype} {groups.shape}")
    return LoadedFile(X, lengths, y, groups=None if groups is None else groups.astype(str))


def read_csv(path: Path) -> LoadedFile:
    """Long-format CSV: a header, then one row per time step.

    Column ``id`` groups rows into sequences (rows in time order, a
    sequence's rows need not be adjacent); an optional ``label`` column holds
    the class of the sequence (the same on each of its rows), an optional
    ``group`` column its group for grouped folds; every other column is a
    numeric feature. Sequences may differ in length.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise SeqlabError(f"{path}: empty file; expected a header row with an 'id' column") from None
            if "id" not in header:
                raise SeqlabError(f"{path}: expected a header with an 'id' column (see README, CSV layout); found {header}")
            id_col = header.index("id")
            label_col = header.index("label") if "label" in header else None
            group_col = header.index("group") if "group" in header else None
            feature_cols = [i for i, h in enumerate(header) if i not in (id_col, label_col, group_col)]
            if not feature_cols:
                raise SeqlabError(f"{path}: expected at least one feature column besides id and label")
            rows: dict[str, list[list[float]]] = {}
            labels: dict[str, str] = {}
            groups: dict[str, str] = {}
            for line_no, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise SeqlabError(f"{path}:{line_no}: expected {len(header)} fields, got {len(row)}")
                key = row[id_col].strip()
                try:
                    values = [float(row[i]) for i in feature_cols]
                except ValueError:
                    raise SeqlabError(f"{path}:{line_no}: expected numbers in the feature columns") from None
                rows.setdefault(key, []).append(values)
                if label_col is not None:
                    label = row[label_col].strip()
                    if labels.setdefault(key, label) != label:
                        raise SeqlabError(f"{path}:{line_no}: sequence {key!r} changes label from {labels[key]!r} to {label!r}")
                if group_col is not None:
                    group = row[group_col].strip()
                    if groups.setdefault(key, group) != group:
                        raise SeqlabError(f"{path}:{line_no}: sequence {key!r} changes group from {groups[key]!r} to "
                                          f"{group!r}; expected one group per sequence")
    except UnicodeDecodeError as error:
        raise SeqlabError(f"{path}: not UTF-8 text (found byte {error.object[error.start]:#04x}); "
                          "save it as UTF-8") from None
    except csv.Error as error:
        raise SeqlabError(f"{path}: not a readable CSV file ({error})") from None
    X, lengths = pad_sequences([np.asarray(v, dtype=np.float64) for v in rows.values()], str(path))
    y = np.array([labels[k] for k in rows]) if label_col is not None else None
    return LoadedFile(X, lengths, y, ids=np.array(list(rows)), feature_names=[header[i] for i in feature_cols],
                      groups=np.array([groups[k] for k in rows]) if group_col is not None else None)


def read_ts_file(path: Path) -> LoadedFile:
    content = read_ts(path)
    X, lengths = pad_sequences(content.series, str(path))
    labels = np.array(content.labels) if content.labels is not None else None
    return LoadedFile(X, lengths, labels, class_names=content.class_names, targets=content.targets)


READERS: dict[str, Callable[[Path], LoadedFile]] = {".npz": read_npz, ".csv": read_csv, ".ts": read_ts_file}


def read_file(path: str | Path) -> LoadedFile:
    """Read one ``.npz``, ``.csv`` or ``.ts`` file and check its values."""
    path = Path(path)
    if path.suffix.lower() not in READERS:
        raise SeqlabError(f"{path}: unsupported file type {path.suffix!r}; expected one of {', '.join(READERS)}")
    if not path.is_file():
        raise SeqlabError(f"{path}: file not found")
    loaded = READERS[path.suffix.lower()](path)
    check_finite(loaded.X, str(path))
    return loaded


# ----------------------------------------------------------------------------
# Built-in and package data


def load_digits_sequences() -> LoadedFile:
    """scikit-learn's 8x8 handwritten digits, each image read row by row (T=8, F=8)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = digits.images.astype(np.float32)  # (1797, 8, 8): rows are time steps
    return LoadedFile(X, None, digits.target, class_names=[str(c) for c in range(10)],
                      feature_names=[f"col{i}" for i in range(8)])


def aeon_data_dir() -> Path:
    spec = importlib.util.find_spec("aeon")
    if spec is None or spec.origin is None:
        raise SeqlabError("aeon:NAME needs the aeon package, which ships UEA/UCR files: pip install aeon")
    return Path(spec.origin).parent / "datasets" / "data"


def aeon_names() -> list[str]:
    root = aeon_data_dir()
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}_TRAIN.ts").is_file())


BUILTIN: dict[str, tuple[Callable[[], LoadedFile], str]] = {
    "digits": (load_digits_sequences, "scikit-learn handwritten digits, rows as steps: 1797 x (8 steps, 8 features), 10 classes"),
}

PREFIXES = {
    "aeon:NAME": "a UEA/UCR pair shipped inside the aeon package (for example aeon:BasicMotions, aeon:JapaneseVowels)",
    "ut-har:DIR": "UT-HAR WiFi CSI in SenseFi's layout (data/X_*.csv, label/y_*.csv): 250 x 90, 7 activities",
    "deap:DIR": "DEAP data_preprocessed_python (s01.dat ... s32.dat): EEG windows, valence/arousal/quadrant labels",
    "ntu-fi-har:DIR": "NTU-Fi HAR in SenseFi's layout (train_amp/, test_amp/ of CLASS/*.mat with CSIamp 3 x 114 x "
                      "2000): 500 x 342, 6 activities",
    "ntu-fi-humanid:DIR": "NTU-Fi HumanID in the same layout: 500 x 342, 14 people (gait)",
    "widar:DIR": "Widar BVP in SenseFi's layout (train/, test/ of CLASS/*.csv, 22 x 20 x 20 each): 22 x 400, "
                 "22 gestures",
}

FILE_FORMATS = {
    "PATH.npz": "arrays X (N, T, F), y (N,) (task regression: float y (N,) or (N, K)), optional lengths (N,) "
                "and groups (N,)",
    "PATH.csv": "one row per time step: columns id, optional label, then features",
    "NAME_TRAIN.ts": "UEA/UCR format (@classLabel, or @targetLabel for regression); pairs with NAME_TEST.ts "
                     "beside it as the test split",
}


def _paired_ts(path: Path) -> tuple[LoadedFile, LoadedFile]:
    test_path = path.with_name(path.name[: -len("_TRAIN.ts")] + "_TEST.ts")
    if not test_path.is_file():
        raise SeqlabError(f"{path}: expected its test split {test_path.name} beside it; not found")
    return read_file(path), read_file(test_path)


def _open_spec(spec: str) -> tuple[LoadedFile, LoadedFile | None]:
    if spec in BUILTIN:
        loaded = BUILTIN[spec][0]()
        check_finite(loaded.X, spec)
        return loaded, None
    if spec.startswith("aeon:"):
        name = spec[len("aeon:"):]
        folder = aeon_data_dir() / name
        if not (folder / f"{name}_TRAIN.ts").is_file():
            raise SeqlabError(f"data {spec!r}: aeon ships no {name}_TRAIN.ts; available: {', '.join(aeon_names())}")
        return _paired_ts(folder / f"{name}_TRAIN.ts")
    path = Path(spec)
    if path.suffix.lower() in READERS or path.exists():
        if path.name.upper().endswith("_TRAIN.TS"):
            if not path.is_file():
                raise SeqlabError(f"{path}: file not found")
            return _paired_ts(path)
        return read_file(path), None
    raise SeqlabError(
        f"data {spec!r}: unknown data set; expected one of {', '.join(BUILTIN)}, aeon:NAME, "
        f"or a file ending in {', '.join(READERS)}"
    )


def _merge_train_test(train: LoadedFile, test: LoadedFile, source: str) -> tuple[LoadedFile, LoadedFile]:
    """Pad both parts to one T; check their feature counts agree."""
    if train.X.shape[2] != test.X.shape[2]:
        raise SeqlabError(f"{source}: train has {train.X.shape[2]} features but test has {test.X.shape[2]}; expected equal")
    steps = max(train.X.shape[1], test.X.shape[1])
    for part in (train, test):
        if part.X.shape[1] < steps:
            if part.lengths is None:
                part.lengths = np.full(len(part.X), part.X.shape[1], dtype=np.int64)
            pad = np.zeros((len(part.X), steps - part.X.shape[1], part.X.shape[2]), np.float32)
            part.X = np.concatenate([part.X, pad], axis=1)
    if (train.lengths is None) != (test.lengths is None):
        for part in (train, test):
            if part.lengths is None:
                part.lengths = np.full(len(part.X), steps, dtype=np.int64)
    return train, test


def load_data(config: DataConfig, seed: int = 0) -> DataBundle:
    """Load ``config.spec`` and split it into train / validation / test."""
    if config.fold and config.spec.startswith(("ut-har:", "deap:")):
        raise SeqlabError(f"data.fold: {config.spec.split(':')[0]}: data splits by its own options; seqlab cv "
                          "folds deap: by subject through data.options.test_subjects, and ut-har: not at all")
    if config.spec.startswith("ut-har:"):
        from seqlab.data.ut_har import UTHAROptions, load_ut_har

        return load_ut_har(config.spec[len("ut-har:"):], from_dict(UTHAROptions, config.options, "data.options"))
    if config.spec.startswith("deap:"):
        from seqlab.data.deap import DEAPOptions, load_deap

        options = from_dict(DEAPOptions, config.options, "data.options")
        return load_deap(config.spec[len("deap:"):], options, config.val_fraction, config.test_fraction, seed)
    if config.spec.startswith(("ntu-fi-har:", "ntu-fi-humanid:", "widar:")):
        from seqlab.data.sensefi import SenseFiOptions, load_ntu_fi, load_widar

        options = from_dict(SenseFiOptions, config.options, "data.options")
        loader = load_widar if config.spec.startswith("widar:") else load_ntu_fi
        return loader(config.spec, options, config.val_fraction, seed)
    if config.options:
        raise SeqlabError(f"data.options: {config.spec!r} takes no source options, got {sorted(config.options)}")
    train_file, test_file = _open_spec(config.spec)
    groups = train_file.groups
    if train_file.labels is None:
        raise SeqlabError(f"data {config.spec!r}: no labels found; classification needs y / a label column / @classLabel true")
    _refuse_targets(train_file, config.spec)
    if test_file is not None:
        train_file, test_file = _merge_train_test(train_file, test_file, config.spec)
        if test_file.labels is None:
            raise SeqlabError(f"data {config.spec!r}: the test file has no labels")
        all_labels = [str(v) for v in np.concatenate([train_file.labels, test_file.labels])]
        names = train_file.class_names or sorted(set(all_labels), key=label_sort_key)
        y_train, names = encode_labels(train_file.labels, config.spec, names)
        y_test, _ = encode_labels(test_file.labels, config.spec + " (test)", names)
        check_classes(y_train, names, f"data {config.spec!r} (train)")
        pool = SequenceSet(train_file.X, y_train, train_file.lengths, train_file.ids)
        test = SequenceSet(test_file.X, y_test, test_file.lengths, test_file.ids)
        if config.fold:  # cross-validation folds cover both parts
            pool = SequenceSet(np.concatenate([pool.X, test.X]), np.concatenate([pool.y, test.y]),
                               None if pool.lengths is None else np.concatenate([pool.lengths, test.lengths]),
                               np.concatenate([pool.ids.astype(str), test.ids.astype(str)]))
            groups = None if groups is None or test_file.groups is None else np.concatenate([groups, test_file.groups])
    else:
        y, names = encode_labels(train_file.labels, config.spec, train_file.class_names)
        check_classes(y, names, f"data {config.spec!r}")
        pool = SequenceSet(train_file.X, y, train_file.lengths, train_file.ids)
        if not config.fold:
            pool, test = stratified_split(pool, config.test_fraction, seed, config.spec)
    if config.fold:
        pool, test = split_fold(pool, groups, from_dict(FoldSpec, config.fold, "data.fold"), seed, names,
                                f"data {config.spec!r}")
    train, val = stratified_split(pool, config.val_fraction, seed, config.spec)
    return DataBundle(config.spec, train, val, test, names, train_file.feature_names or [])


def _refuse_targets(loaded: LoadedFile, spec: str) -> None:
    """Classification of regression targets: a .ts file's @targetLabel, or y with fractional values."""
    labels = np.asarray(loaded.labels)
    fractional = labels.dtype.kind == "f" and bool(np.any(np.isfinite(labels) & (labels != np.round(labels))))
    if loaded.targets or fractional or labels.ndim != 1:
        what = "@targetLabel true" if loaded.targets else ("fractional values in y" if fractional
                                                              else f"y of shape {labels.shape}")
        raise SeqlabError(f"data {spec!r}: holds regression targets ({what}); expected class labels for "
                          "classification, or set task: regression (--set task=regression)")


def _targets(loaded: LoadedFile, source: str) -> np.ndarray:
    """Raw labels -> (N, K) float32 regression targets, refusing text and NaN or Inf."""
    if loaded.labels is None:
        raise SeqlabError(f"{source}: no targets found; regression needs y / a label column / @targetLabel true")
    if loaded.class_names is not None:
        raise SeqlabError(f"{source}: holds class labels (@classLabel true); regression needs numeric targets "
                          "(@targetLabel true)")
    raw = np.asarray(loaded.labels)
    try:
        y = raw.astype(np.float64)
    except ValueError:
        first = next(v for v in raw.reshape(-1) if not _is_number(v))
        raise SeqlabError(f"{source}: target {str(first)[:40]!r} is not a number; regression needs numeric "
                          "targets") from None
    y = y.reshape(len(y), -1)  # (N, K)
    bad = ~np.isfinite(y) | (np.abs(y) > MAX_ABS_VALUE)
    if bad.any():
        n, k = np.argwhere(bad)[0]
        raise SeqlabError(f"{source}: target of sequence {n} (column {k}) is {y[n, k]:g}; expected finite "
                          f"values within +-{MAX_ABS_VALUE:g}")
    return y.astype(np.float32)


def _is_number(value) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def load_regression_data(config: DataConfig, seed: int = 0) -> DataBundle:
    """Load ``config.spec`` with numeric targets y (N, K) and split it (seeded, not stratified).

    ``bundle.class_names`` stays empty; ``bundle.target_names`` names the K targets.
    """
    if config.spec.startswith("deap:"):
        from seqlab.data.deap import DEAPOptions, load_deap

        options = from_dict(DEAPOptions, config.options, "data.options")
        return load_deap(config.spec[len("deap:"):], options, config.val_fraction, config.test_fraction, seed,
                         regression=True)
    if config.options:
        raise SeqlabError(f"data.options: {config.spec!r} takes no source options for regression, got "
                          f"{sorted(config.options)}")
    train_file, test_file = _open_spec(config.spec)
    y = _targets(train_file, f"data {config.spec!r}")
    pool = SequenceSet(train_file.X, y, train_file.lengths, train_file.ids)
    if test_file is not None:
        train_file, test_file = _merge_train_test(train_file, test_file, config.spec)
        y_test = _targets(test_file, f"data {config.spec!r} (test)")
        if y_test.shape[1] != y.shape[1]:
            raise SeqlabError(f"data {config.spec!r}: train has {y.shape[1]} targets but test has "
                              f"{y_test.shape[1]}; expected equal")
        pool = SequenceSet(train_file.X, y, train_file.lengths, train_file.ids)
        test = SequenceSet(test_file.X, y_test, test_file.lengths, test_file.ids)
    else:
        pool, test = stratified_split(pool, config.test_fraction, seed, config.spec)
    train, val = stratified_split(pool, config.val_fraction, seed, config.spec)
    names = ["target"] if y.shape[1] == 1 else [f"target{k}" for k in range(y.shape[1])]
    return DataBundle(config.spec, train, val, test, [], train_file.feature_names or [], names)


def source_groups(spec: str) -> np.ndarray | None:
    """(N,) the group of every sequence of ``spec`` (both parts of a train/test pair), or None without groups."""
    train_file, test_file = _open_spec(spec)
    if test_file is None or train_file.groups is None:
        return train_file.groups
    return None if test_file.groups is None else np.concatenate([train_file.groups, test_file.groups])


def read_inputs(path: str | Path) -> tuple[SequenceSet, np.ndarray | None]:
    """Read sequences to predict on; returns them and their raw labels, if any."""
    loaded = read_file(path)
    return SequenceSet(loaded.X, None, loaded.lengths, loaded.ids), loaded.labels
