"""Classification baselines: the majority class and MiniRocket, scored like the model on the test split.

* ``majority``: always the most frequent class of the training split, the
  floor every model must clear on imbalanced data.
* ``minirocket``: aeon's MiniRocket transform (Dempster et al. 2021), then
  scikit-learn's ``StandardScaler(with_mean=False)`` and
  ``RidgeClassifierCV(alphas=logspace(-3, 3, 10))``, the pipeline of aeon's
  ``MiniRocketClassifier``. It is fitted on the training and validation
  splits together (the ridge picks its penalty by leave-one-out on them, so
  it needs no separate validation split; the model sees the same sequences,
  training on one and selecting its checkpoint on the other). MiniRocket
  needs one length: every sequence is zero-padded at the end (as seqlab pads)
  or cut to the longest training sequence, and to at least 9 steps, its
  shortest kernel. Multivariate input goes in as it is (MiniRocket mixes
  channels itself). Lazily read data (DEAP windows) gets only the majority.

Symbols: N sequences, T steps, F features.
"""

from __future__ import annotations

import hashlib

import numpy as np

from seqlab.baselines import losing_warnings
from seqlab.data.dataset import SequenceSet
from seqlab.training.evaluate import classification_metrics

MINIROCKET_MIN_STEPS = 9  # MiniRocket's kernels span 9 steps


def majority_class(y_train: np.ndarray, num_classes: int) -> int:
    """The most frequent class index of ``y_train`` (the lowest index on ties)."""
    return int(np.argmax(np.bincount(y_train, minlength=num_classes)))


def to_channels_first(data: SequenceSet, steps: int) -> np.ndarray:
    """(N, T, F) padded sequences -> (N, F, steps) float64, zero-padded at the end or cut."""
    X = np.asarray(data.X, dtype=np.float64)[:, :steps]  # (N, min(T, steps), F)
    if X.shape[1] < steps:
        X = np.concatenate([X, np.zeros((len(X), steps - X.shape[1], X.shape[2]))], axis=1)
    return np.ascontiguousarray(X.transpose(0, 2, 1))  # (N, F, steps)


def longest_steps(data: SequenceSet) -> int:
    return int(data.lengths.max()) if data.lengths is not None else data.steps


_PREDICTIONS: dict[str, np.ndarray] = {}  # several models on one data set (the demo) fit MiniRocket once


def _fingerprint(parts: list[SequenceSet], *settings) -> str:
    digest = hashlib.sha256(repr(settings).encode())
    for part in parts:
        for array in (part.X, part.y, part.lengths):
            digest.update(b"-" if array is None else repr(array.shape).encode() + np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def minirocket_predict(fit_parts: list[SequenceSet], test: SequenceSet, seed: int = 0,
                       n_kernels: int = 10_000) -> np.ndarray:
    """(N_test,) classes predicted by MiniRocket + ridge fitted on the sequences of ``fit_parts``.

    The same data and settings again return the remembered prediction.
    """
    key = _fingerprint([*fit_parts, test], seed, n_kernels, len(fit_parts))
    if key not in _PREDICTIONS:
        _PREDICTIONS[key] = _fit_predict(fit_parts, test, seed, n_kernels)
    return _PREDICTIONS[key].copy()


def _fit_predict(fit_parts: list[SequenceSet], test: SequenceSet, seed: int, n_kernels: int) -> np.ndarray:
    from aeon.transformations.collection.convolution_based import MiniRocket
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    steps = max(MINIROCKET_MIN_STEPS, *(longest_steps(part) for part in fit_parts))
    pipeline = make_pipeline(MiniRocket(n_kernels=n_kernels, random_state=seed), StandardScaler(with_mean=False),
                             RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)))
    X = np.concatenate([to_channels_first(part, steps) for part in fit_parts])  # (N, F, steps)
    pipeline.fit(X, np.concatenate([part.y for part in fit_parts]))
    return pipeline.predict(to_channels_first(test, steps)).astype(np.int64)


def _scores(predicted: np.ndarray, y: np.ndarray, num_classes: int) -> dict:
    one_hot = np.eye(num_classes)[predicted]  # (N, C)
    metrics = classification_metrics(one_hot, y, num_classes)
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


def classification_baselines(train, val, test, num_classes: int, seed: int = 0, fitted: bool = True) -> dict:
    """``{name: {"accuracy", "macro_f1"}}`` on ``test``; ``fitted=False`` leaves MiniRocket out."""
    y_test = np.asarray(test.y)
    majority = majority_class(np.asarray(train.y), num_classes)
    out = {"majority": _scores(np.full(len(test), majority), y_test, num_classes)}
    if fitted and all(isinstance(part, SequenceSet) for part in (train, val, test)):
        out["minirocket"] = _scores(minirocket_predict([train, val], test, seed), y_test, num_classes)
    return out


def classification_report(train, val, test, num_classes: int, model_test: dict, seed: int = 0,
                          fitted: bool = True) -> dict:
    """``{"baselines": ..., "warnings": [...]}``: the model's test accuracy against :func:`classification_baselines`."""
    baselines = classification_baselines(train, val, test, num_classes, seed, fitted)
    return {"baselines": baselines,
            "warnings": losing_warnings(model_test["accuracy"], baselines, "accuracy", "test accuracy", True)}
