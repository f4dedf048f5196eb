"""The one dataset abstraction: padded sequences, labels, lengths, splits.

Symbols: N sequences, T time steps (the longest), F features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import train_test_split

from seqlab.errors import SeqlabError


@dataclass
class SequenceSet:
    """A block of sequences.

    Attributes:
        X: (N, T, F) float32; steps at or after a sequence's length are zero.
        y: (N,) int64 class indices, (N, K) float32 regression targets, or None
            when unlabelled.
        lengths: (N,) int64 valid steps per sequence, or None when every
            sequence has all T steps.
        ids: (N,) identifiers carried into predictions (row numbers or the
            ``id`` column of a CSV file).
    """

    X: np.ndarray
    y: np.ndarray | None = None
    lengths: np.ndarray | None = None
    ids: np.ndarray | None = None

    def __post_init__(self):
        if self.ids is None:
            self.ids = np.arange(len(self.X))

    def __len__(self) -> int:
        return len(self.X)

    @property
    def steps(self) -> int:
        return self.X.shape[1]

    @property
    def features(self) -> int:
        return self.X.shape[2]

    def subset(self, index: np.ndarray) -> "SequenceSet":
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return SequenceSet(self.X[index], pick(self.y), pick(self.lengths), pick(self.ids))

    def valid_mask(self) -> np.ndarray:
        """(N, T) bool, True on valid steps."""
        if self.lengths is None:
            return np.ones(self.X.shape[:2], dtype=bool)
        return np.arange(self.steps)[None, :] < self.lengths[:, None]


@dataclass
class DataBundle:
    """Train / validation / test splits plus what is needed to read them.

    Attributes:
        name: the data spec it was loaded from.
        class_names: label of each class index (empty for regression).
        feature_names: name of each of the F features.
        target_names: name of each of the K regression targets (empty for classification).
    """

    name: str
    train: SequenceSet
    val: SequenceSet
    test: SequenceSet
    class_names: list[str]
    feature_names: list[str] = field(default_factory=list)
    target_names: list[str] = field(default_factory=list)

    @property
    def input_size(self) -> int:
        return self.train.features

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def pad_sequences(sequences: list[np.ndarray], source: str) -> tuple[np.ndarray, np.ndarray | None]:
    """List of (T_i, F) arrays -> (N, T_max, F) float32 and lengths (None if all equal)."""
    if not sequences:
        raise SeqlabError(f"{source}: no sequences found")
    features = {s.shape[1] for s in sequences}
    if len(features) != 1:
        raise SeqlabError(f"{source}: sequences have different feature counts {sorted(features)}; expected one")
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    if lengths.min() == 0:
        raise SeqlabError(f"{source}: sequence {int(np.argmin(lengths))} is empty")
    X = np.zeros((len(sequences), int(lengths.max()), features.pop()), dtype=np.float32)
    for i, seq in enumerate(sequences):
        X[i, : len(seq)] = seq
    return X, (None if lengths.min() == lengths.max() else lengths)


def encode_labels(raw: np.ndarray, source: str, class_names: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Map raw labels (numbers or strings) to indices 0..C-1.

    Integer-valued labels sort numerically, others as strings; a given
    ``class_names`` list fixes the order (a .ts ``@classLabel`` header).
    """
    raw = np.asarray(raw)
    if raw.ndim != 1:
        raise SeqlabError(f"{source}: expected labels of shape (N,), got {raw.shape}")
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)):
            raise SeqlabError(f"{source}: labels contain NaN or Inf")
        if np.all(raw == np.round(raw)):
            raw = raw.astype(np.int64)
    as_text = [str(v) for v in raw]
    if class_names is None:
        class_names = sorted(set(as_text), key=label_sort_key)
    lookup = {name: i for i, name in enumerate(class_names)}
    missing = sorted(set(as_text) - set(lookup))
    if missing:
        raise SeqlabError(f"{source}: label {missing[0]!r} is not among the declared classes {class_names}")
    return np.array([lookup[v] for v in as_text], dtype=np.int64), list(class_names)


def label_sort_key(label: str):
    """Numeric labels sort as numbers ("2" before "10"), the rest as text after them."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


# Largest magnitude accepted in inputs. Squares of larger values (> 1e30), summed over the up to
# 1e8 values of a data set, leave float32's range (3.4e38), so normalising or training on them
# ends in Inf and NaN; real measurements sit far below it.
MAX_ABS_VALUE = 1e15


def check_finite(X: np.ndarray, source: str) -> None:
    """Refuse NaN, Inf and magnitudes above :data:`MAX_ABS_VALUE`, naming the first one."""
    bad = ~np.isfinite(X)
    if bad.any():
        n, t, f = np.argwhere(bad)[0]
        raise SeqlabError(
            f"{source}: X contains {int(bad.sum())} NaN or Inf values "
            f"(first at sequence {n}, step {t}, feature {f}); expected finite numbers"
        )
    huge = np.abs(X) > MAX_ABS_VALUE
    if huge.any():
        n, t, f = np.argwhere(huge)[0]
        raise SeqlabError(
            f"{source}: X contains {int(huge.sum())} values beyond +-{MAX_ABS_VALUE:g} (first {X[n, t, f]:g} at "
            f"sequence {n}, step {t}, feature {f}); expected magnitudes float32 arithmetic can square and sum"
        )


def check_classes(y: np.ndarray, class_names: list[str], source: str) -> None:
    """Refuse labels a classifier cannot be trained and tested on: one class, or a class of one sequence."""
    counts = np.bincount(y, minlength=len(class_names))
    found = ", ".join(f"{name}: {int(c)}" for name, c in zip(class_names, counts) if c)
    if np.count_nonzero(counts) < 2:
        raise SeqlabError(f"{source}: every sequence has the same label ({found}); classification needs at "
                          "least 2 classes")
    if counts[counts > 0].min() < 2:
        raise SeqlabError(f"{source}: some classes have a single sequence ({found}); expected at least 2 "
                          "sequences per class, so that each class can be both trained on and held out")


def stratified_split(
    data: SequenceSet, fraction: float, seed: int, source: str
) -> tuple[SequenceSet, SequenceSet]:
    """Split off ``fraction`` of ``data``, stratified by class label when possible (targets: shuffled)."""
    index = np.arange(len(data))
    held = max(1, int(round(fraction * len(data))))
    if len(data) - held < 1:
        raise SeqlabError(f"{source}: {len(data)} sequences are too few to split")
    stratify = data.y if data.y is not None and data.y.dtype.kind in "iu" else None
    if stratify is not None:
        counts = np.bincount(stratify)
        counts = counts[counts > 0]
        if counts.min() < 2 or held < len(counts) or len(data) - held < len(counts):
            stratify = None  # too few per class to stratify; fall back to a seeded shuffle
    keep, hold = train_test_split(index, test_size=held, random_state=seed, shuffle=True, stratify=stratify)
    return data.subset(np.sort(keep)), data.subset(np.sort(hold))
