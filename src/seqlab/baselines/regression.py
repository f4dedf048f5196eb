"""Regression baselines, scored like the model on the test split, in the targets' own units.

* ``mean``: always the training split's mean of each target, the floor a
  model must clear (its R² on the test split is at most about 0).
* ``minirocket``: aeon's MiniRocket transform, then scikit-learn's
  ``StandardScaler(with_mean=False)`` and ``RidgeCV(alphas=logspace(-3, 3, 10))``,
  the pipeline of aeon's ``MiniRocketRegressor``, fitted on the training and
  validation splits together; sequences padded or cut to one length as for
  the classification baseline. Lazily read data (DEAP windows) gets only the mean.

Symbols: N sequences, T steps, F features, K targets.
"""

from __future__ import annotations

import numpy as np

from seqlab.baselines import losing_warnings
from seqlab.baselines.classification import MINIROCKET_MIN_STEPS, longest_steps, to_channels_first
from seqlab.data.dataset import SequenceSet
from seqlab.training.evaluate import regression_metrics


def minirocket_regress(fit_parts: list[SequenceSet], fit_targets: np.ndarray, test: SequenceSet,
                       seed: int = 0, n_kernels: int = 10_000) -> np.ndarray:
    """(N_test, K) targets predicted by MiniRocket + ridge fitted on ``fit_parts`` and ``fit_targets`` (N, K)."""
    from aeon.transformations.collection.convolution_based import MiniRocket
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    steps = max(MINIROCKET_MIN_STEPS, *(longest_steps(part) for part in fit_parts))
    transform = MiniRocket(n_kernels=n_kernels, random_state=seed)  # fitted without y: aeon takes 1-D y only
    features = transform.fit_transform(np.concatenate([to_channels_first(part, steps) for part in fit_parts]))
    ridge = make_pipeline(StandardScaler(with_mean=False), RidgeCV(alphas=np.logspace(-3, 3, 10)))
    ridge.fit(features, fit_targets)
    prediction = ridge.predict(transform.transform(to_channels_first(test, steps)))
    return np.asarray(prediction).reshape(len(test), -1)


def regression_baselines(train, val, test, raw: dict[str, np.ndarray], seed: int = 0, fitted: bool = True) -> dict:
    """``{name: {"rmse", "mae", "r2", "n"}}`` on ``test``; ``raw`` holds each split's (N, K) targets in their
    own units; ``fitted=False`` leaves MiniRocket out."""
    truth = raw["test"]
    mean = np.broadcast_to(raw["train"].mean(axis=0), truth.shape)
    out = {"mean": regression_metrics(mean, truth)}
    if fitted and all(isinstance(part, SequenceSet) for part in (train, val, test)):
        fit_targets = np.concatenate([raw["train"], raw["val"]])
        out["minirocket"] = regression_metrics(minirocket_regress([train, val], fit_targets, test, seed), truth)
    return out


def regression_report(train, val, test, raw: dict[str, np.ndarray], model_test: dict, seed: int = 0,
                      fitted: bool = True) -> dict:
    """``{"baselines": ..., "warnings": [...]}``: the model's test RMSE against :func:`regression_baselines`."""
    baselines = regression_baselines(train, val, test, raw, seed, fitted)
    return {"baselines": baselines,
            "warnings": losing_warnings(model_test["rmse"], baselines, "rmse", "test RMSE", False)}
