"""scikit-learn estimators over seqlab runs: ``SequenceClassifier``, ``SequenceRegressor``, ``SequenceForecaster``.

``fit`` writes the data to a file and runs :func:`seqlab.training.pipeline.train`,
the same pipeline as ``seqlab train``, into a run folder (``run_dir``, or a
temporary one that lives as long as the estimator); ``predict`` reads that
run. ``save(dir)`` copies it to a normal run folder, which every ``seqlab``
command reads; :func:`load` (and each class's ``load``) reads any run folder.

Constructor arguments are the config keys, all ``None`` (the config's or
the model's default) unless given: ``model`` (``model.name``), each model
option (``hidden_size``, ``num_layers``, ``head``, ...: ``model.KEY``), the
``train`` keys (``epochs``, ``steps``, ``batch_size``, ``lr``, ...),
``random_state`` (``train.seed``), the ``data`` split and scaling keys
(``val_fraction``, ``test_fraction``, ``normalize``) or, for the forecaster,
the ``forecast`` keys (``window``, ``horizon``, ``season``, ...); then how to
read the input (``id_column``, ``time_column``, ``feature_columns``,
``target_column``, ``channels_first``), ``run_dir`` and ``verbose``.

Sequence inputs ``X``: NumPy (N, T, F) (or (N, T), one feature); a list of
(T_i, F) arrays of different lengths; a long pandas DataFrame with one row
per time step (an id column, an optional time column that orders the rows,
numeric feature columns; the target column, if named, holds each sequence's
label); or aeon's (N, C, T) with ``channels_first=True``.
"""

from __future__ import annotations

import dataclasses
import inspect
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import r2_score

from seqlab.config import DataConfig, ForecastConfig, TrainConfig
from seqlab.data.dataset import SequenceSet, pad_sequences
from seqlab.errors import SeqlabError

# how the input is read, and where the run goes: the constructor arguments besides the config keys
READING = {"id_column": "id", "time_column": None, "feature_columns": None, "target_column": None,
           "channels_first": False}
RUN = {"run_dir": None, "verbose": False}


def _model_keys() -> list[str]:
    """The option keys of every registered model (``model.KEY``; their defaults belong to each model)."""
    from seqlab.models import get_model_entry, model_names

    keys: dict[str, None] = {}
    for name in model_names():
        keys.update(dict.fromkeys(f.name for f in dataclasses.fields(get_model_entry(name).options)))
    return list(keys)


def _section_keys(cls: type, leave_out: tuple[str, ...] = ()) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name not in leave_out]


TRAIN_KEYS = _section_keys(TrainConfig, ("seed",))
DATA_KEYS = _section_keys(DataConfig, ("spec", "options", "fold"))  # fold: set by seqlab cv per run
FORECAST_KEYS = _section_keys(ForecastConfig)


# ----------------------------------------------------------------------------
# Inputs


def _frame_sequences(frame, est: "_RunEstimator", need_target: bool):
    """Long DataFrame -> (list of (T_i, F) arrays, ids, per-sequence targets or None)."""
    import pandas as pd

    id_column, time_column, target = est.id_column, est.time_column, est.target_column
    for role, column in (("id_column", id_column), ("time_column", time_column), ("target_column", target)):
        if column is not None and column not in frame.columns:
            raise SeqlabError(f"{role}: the DataFrame has no column {column!r}; its columns are "
                              f"{[str(c) for c in frame.columns]}")
    features = list(est.feature_columns) if est.feature_columns is not None else \
        [c for c in frame.columns if c not in (id_column, time_column, target)]
    for column in features:
        if column not in frame.columns:
            raise SeqlabError(f"feature_columns: the DataFrame has no column {column!r}; its columns are "
                              f"{[str(c) for c in frame.columns]}")
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            raise SeqlabError(f"feature column {column!r}: expected numbers, got dtype {frame[column].dtype}; "
                              "name the feature columns with feature_columns=[...]")
    if not features:
        raise SeqlabError("feature_columns: the DataFrame has no feature columns besides the id, time and target")
    if need_target and target is None:
        raise SeqlabError("target_column: a DataFrame passed without y needs target_column naming the labels")
    ordered = frame.sort_values(time_column, kind="stable") if time_column is not None else frame
    groups = ordered.groupby(id_column, sort=False)
    ids = pd.unique(frame[id_column])  # the order in which the sequences first appear
    sequences = [groups.get_group(i)[features].to_numpy(np.float64) for i in ids]
    labels = None
    if target is not None:
        per_id = groups[target].nunique(dropna=False)
        if (per_id > 1).any():
            bad = per_id.index[per_id > 1][0]
            raise SeqlabError(f"target_column {target!r}: sequence {bad!r} has {per_id[bad]} different values; "
                              "expected one label per sequence")
        labels = groups[target].first().loc[ids].to_numpy()
    return sequences, np.asarray(ids), labels


def to_sequences(X, est: "_RunEstimator", need_target: bool = False) -> tuple[SequenceSet, np.ndarray | None]:
    """Any accepted input -> a SequenceSet (X (N, T, F), lengths, ids) and the DataFrame's targets, if any."""
    labels = None
    if hasattr(X, "groupby") and hasattr(X, "columns"):  # a pandas DataFrame
        sequences, ids, labels = _frame_sequences(X, est, need_target)
    elif isinstance(X, (list, tuple)):
        sequences = [np.asarray(s, dtype=np.float64) for s in X]
        for i, s in enumerate(sequences):
            if s.ndim != 2:
                raise SeqlabError(f"X[{i}]: expected a (T_i, F) array per sequence, got shape {s.shape}")
        if est.channels_first:
            sequences = [s.T for s in sequences]  # (C, T_i) -> (T_i, C)
        ids = np.arange(len(sequences))
    else:
        array = np.asarray(X)
        if array.dtype.kind not in "fiub":
            raise SeqlabError(f"X: expected numbers, got dtype {array.dtype}")
        if array.ndim == 2:
            array = array[:, :, None] if not est.channels_first else array[:, None, :]
        if array.ndim != 3:
            raise SeqlabError(f"X: expected an array of shape (N, T, F) (or (N, C, T) with channels_first=True), "
                              f"a list of (T_i, F) arrays or a long DataFrame, got shape {array.shape}")
        if est.channels_first:
            array = array.transpose(0, 2, 1)  # aeon's (N, C, T) -> (N, T, C)
        sequences, ids = list(array.astype(np.float64)), np.arange(len(array))
    padded, lengths = pad_sequences(sequences, "X")
    return SequenceSet(padded, None, lengths, ids), labels


def _write_npz(path: Path, data: SequenceSet, y: np.ndarray) -> None:
    arrays = {"X": data.X, "y": y}
    if data.lengths is not None:
        arrays["lengths"] = data.lengths
    np.savez(path, **arrays)


# ----------------------------------------------------------------------------
# The estimators


class _RunEstimator(BaseEstimator):
    """Constructor arguments -> a config tree; fit -> a run folder; the fitted run in ``run_``."""

    task: ClassVar[str]
    config_keys: ClassVar[dict[str, list[str]]]  # section -> keys the constructor takes

    def __init__(self, **params: Any):
        for name in self._param_names():
            setattr(self, name, params.pop(name, self._defaults().get(name)))
        if params:
            raise TypeError(f"{type(self).__name__}: unknown argument {sorted(params)[0]!r}; valid: "
                            f"{', '.join(self._param_names())}")

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        return {"model": "gru", **READING, **RUN}

    @classmethod
    def _param_names(cls) -> list[str]:
        keys = [key for section in cls.config_keys.values() for key in section]
        return ["model", *keys, "random_state", *READING, *RUN]

    def config_tree(self) -> dict[str, Any]:
        """The config these arguments describe (``None`` leaves a key at its default)."""
        tree: dict[str, Any] = {"task": self.task, "model": {"name": self.model}, "train": {}}
        for section, keys in self.config_keys.items():
            for key in keys:
                if getattr(self, key) is not None:
                    tree.setdefault(section, {})[key] = getattr(self, key)
        if self.random_state is not None:
            tree["train"]["seed"] = int(self.random_state)
        return tree

    def _train(self, spec: str) -> None:
        from seqlab.config import resolve_config
        from seqlab.runs import load_run
        from seqlab.training.pipeline import train

        tree = self.config_tree()
        tree.setdefault("data", {})["spec"] = spec
        config = resolve_config(tree)
        out = Path(self.run_dir) if self.run_dir is not None else Path(self._workspace.name) / "run"
        result = train(config, out, overwrite=True, quiet=not self.verbose)
        self.metrics_ = result.metrics
        self.run_ = load_run(out)

    def _new_workspace(self) -> Path:
        """A fresh temporary folder for the data file (and the run, without run_dir), removed with the estimator."""
        self._workspace = tempfile.TemporaryDirectory(prefix="seqlab-")
        return Path(self._workspace.name)

    def _fitted_run(self):
        if not hasattr(self, "run_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first (or load a run "
                                 "folder)")
        return self.run_

    def save(self, folder: str | Path) -> Path:
        """Copy the fitted run to ``folder`` (a normal run folder: ``seqlab eval``, ``predict``, ``export`` read it)."""
        run = self._fitted_run()
        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()):
            raise SeqlabError(f"save: {folder} exists and is not empty; expected a new or empty folder")
        shutil.copytree(run.path, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".seqlab.lock"))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "_RunEstimator":
        """The estimator of a run folder's task, fitted with its model (``seqlab train`` runs included)."""
        from seqlab.runs import load_run

        run = load_run(folder)
        kind = ESTIMATORS.get(run.task)
        if kind is None or (cls is not _RunEstimator and kind is not cls):
            wanted = cls.__name__ if cls is not _RunEstimator else "an estimator"
            raise SeqlabError(f"run folder {folder}: holds a {run.task} run; {wanted} cannot load it")
        params = {"model": run.config["model"]["name"],
                  "random_state": run.config["train"].get("seed")}
        for section, keys in kind.config_keys.items():
            values = run.config.get(section, {})
            if section == "model":
                params.update({k: v for k, v in values.items() if k in keys})
            else:
                params.update({k: values[k] for k in keys if k in values})
        estimator = kind(**params)
        estimator.run_ = run
        estimator._loaded(run)
        return estimator

    def _loaded(self, run) -> None:
        """Fitted attributes a run folder implies."""


def _with_signature(cls: type) -> type:
    """Give ``cls.__init__`` an explicit signature of its keyword arguments, which scikit-learn inspects."""
    defaults = cls._defaults()
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(name))
                   for name in cls._param_names()]

    def __init__(self, **params):
        _RunEstimator.__init__(self, **params)

    __init__.__signature__ = inspect.Signature(parameters)
    __init__.__doc__ = f"{cls.__name__}(**config keys); see the seqlab.estimators module docstring."
    cls.__init__ = __init__
    return cls


class _SequenceEstimator(_RunEstimator):
    """Classifier and regressor: sequences in, one label or target vector per sequence out."""

    def _fit_sequences(self, X, y, encode) -> None:
        data, labels = to_sequences(X, self, need_target=y is None)
        if y is None:
            y = labels
        elif hasattr(y, "loc") and hasattr(X, "groupby"):  # a Series indexed by the DataFrame's ids
            y = y.loc[data.ids]
        y = np.asarray(y)
        if len(y) != len(data):
            raise SeqlabError(f"y: {len(y)} labels for {len(data)} sequences; expected one per sequence")
        self.n_features_in_ = data.features
        folder = self._new_workspace()
        _write_npz(folder / "data.npz", data, encode(y))
        self._train(str(folder / "data.npz"))

    def _sequences(self, X) -> SequenceSet:
        run = self._fitted_run()
        data, _ = to_sequences(X, self)
        if data.features != run.extras["features"]:
            raise SeqlabError(f"X: sequences have {data.features} features; the run was trained on "
                              f"{run.extras['features']}")
        return data


@_with_signature
class SequenceClassifier(ClassifierMixin, _SequenceEstimator):
    """A seqlab classification run as a scikit-learn classifier: ``classes_``, ``predict_proba``, accuracy ``score``."""

    task = "classification"
    config_keys = {"model": _model_keys(), "train": TRAIN_KEYS, "data": DATA_KEYS}

    def fit(self, X, y=None):
        """Train on sequences ``X`` and labels ``y`` (any values; with a DataFrame, or its ``target_column``)."""
        def encode(labels):
            self.classes_ = np.unique(labels)
            return np.array([str(v) for v in self.classes_])[np.searchsorted(self.classes_, labels)]

        self._fit_sequences(X, y, encode)
        self._order = self._class_order(self.run_)
        return self

    def _class_order(self, run) -> np.ndarray:
        """The run's class index of each of ``classes_``."""
        names = [str(v) for v in self.classes_]
        return np.array([run.class_names.index(name) for name in names])

    def _loaded(self, run) -> None:
        self.classes_ = np.array(run.class_names)
        self._order = np.arange(len(self.classes_))
        self.n_features_in_ = run.extras["features"]

    def predict_proba(self, X) -> np.ndarray:
        """(N, C) class probabilities, columns in the order of ``classes_``."""
        from seqlab.training.evaluate import predict_proba

        run = self._fitted_run()
        probabilities = predict_proba(run.model, run.normalizer.transform(self._sequences(X)))
        return probabilities[:, self._order]

    def predict(self, X) -> np.ndarray:
        """(N,) labels, of the values ``y`` held."""
        probabilities = self.predict_proba(X)
        return self.classes_[probabilities.argmax(axis=1)]


@_with_signature
class SequenceRegressor(RegressorMixin, _SequenceEstimator):
    """A seqlab regression run as a scikit-learn regressor: one value, or K, per sequence; R² ``score``."""

    task = "regression"
    config_keys = {"model": _model_keys(), "train": TRAIN_KEYS, "data": DATA_KEYS}

    def fit(self, X, y=None):
        """Train on sequences ``X`` and numeric targets ``y`` (N,) or (N, K)."""
        def encode(targets):
            if targets.dtype.kind not in "fiub":
                raise SeqlabError(f"y: expected numeric targets, got dtype {targets.dtype}")
            self._single = targets.ndim == 1
            return targets.astype(np.float64)

        self._fit_sequences(X, y, encode)
        return self

    def _loaded(self, run) -> None:
        self._single = len(run.extras["target_names"]) == 1
        self.n_features_in_ = run.extras["features"]

    def predict(self, X) -> np.ndarray:
        """(N,) predictions, or (N, K) for several targets, in the targets' units."""
        from seqlab.tasks.regression import predict_sequences

        prediction = predict_sequences(self._fitted_run(), self._sequences(X))
        return prediction[:, 0] if self._single else prediction


@_with_signature
class SequenceForecaster(_RunEstimator):
    """A seqlab forecast run: ``fit(y)`` on a series, ``predict(horizon)`` the steps after it; R² ``score``."""

    task = "forecast"
    config_keys = {"model": _model_keys(), "train": TRAIN_KEYS, "forecast": FORECAST_KEYS}

    def fit(self, y, X=None):
        """Train on the series ``y``: a pandas Series or DataFrame (a DatetimeIndex gives the dates, so the
        season and the month covariate follow from them), or an array (N,) or (N, C). ``X`` is not used."""
        import pandas as pd

        frame = y.to_frame() if isinstance(y, pd.Series) else y
        if not isinstance(frame, pd.DataFrame):
            values = np.asarray(y, dtype=np.float64)
            values = values[:, None] if values.ndim == 1 else values
            frame = pd.DataFrame(values, columns=[f"y{c}" if values.shape[1] > 1 else "y"
                                                  for c in range(values.shape[1])])
        self._returns = "series" if isinstance(y, pd.Series) else "frame" if isinstance(y, pd.DataFrame) else "array"
        frame = frame.copy()
        frame.columns = [str(c) if c is not None else "y" for c in frame.columns]
        dated = isinstance(frame.index, pd.DatetimeIndex)
        folder = self._new_workspace()
        if dated:
            frame.index.name = "date"
        frame.to_csv(folder / "series.csv", index=dated)
        self._train(f"series:{folder / 'series.csv'}")
        return self

    def _loaded(self, run) -> None:
        self._returns = "array"

    def predict(self, horizon: int | None = None):
        """The ``horizon`` steps (default ``forecast.horizon``) after the training series: an array (H,) or
        (H, C), or pandas indexed by the forecast dates when fitted on pandas."""
        import pandas as pd

        from seqlab.tasks.forecast import forecast_after, run_parts

        run = self._fitted_run()
        cfg, series = run_parts(run, None)
        steps = int(horizon if horizon is not None else cfg.horizon)
        _, prediction = forecast_after(run, cfg, series, steps)
        if self._returns == "array":
            return prediction[:, 0] if prediction.shape[1] == 1 else prediction
        dates = series.future_dates(steps)
        frame = pd.DataFrame(prediction, columns=series.columns,
                             index=pd.DatetimeIndex(dates) if dates is not None else None)
        return frame.iloc[:, 0] if self._returns == "series" else frame

    def score(self, y, X=None) -> float:
        """R² of the forecast of ``len(y)`` steps after the training series against ``y``."""
        truth = np.asarray(y, dtype=np.float64)
        prediction = np.asarray(self.predict(len(truth)), dtype=np.float64)
        return float(r2_score(truth, prediction))


ESTIMATORS: dict[str, type] = {"classification": SequenceClassifier, "regression": SequenceRegressor,
                               "forecast": SequenceForecaster}


def load(folder: str | Path) -> _RunEstimator:
    """The fitted estimator of any run folder: a classifier, regressor or forecaster, by the run's task."""
    return _RunEstimator.load(folder)
