"""Forecasting baselines from the same origin as the model, each a (steps, C) raw-scale forecast.

* ``naive``: the last known value, repeated.
* ``seasonal_naive``: the last season, repeated.
* ``transformed_naive``: "no change" in the run's own transformed space:
  zero at the deepest differencing level (before scaling), inverted through
  the run's :class:`~seqlab.data.transforms.SeriesTransform`. With
  ``[log, diff, seasonal_diff]`` that is
  x_t = exp(l_{t-1} + l_{t-12} - l_{t-13}), l = log x: what a model that
  learnt nothing beyond the transforms predicts. Only when the transforms
  difference the series (otherwise zero is no forecast at all).
* ``ets``: exponential smoothing (statsmodels' ``ETSModel``), the model of
  lowest AICc among additive or multiplicative error, no / additive / damped
  trend and no / additive / multiplicative season at the run's season, as
  R's ``forecast::ets`` chooses.
* ``arima``: pmdarima's ``auto_arima`` (Hyndman-Khandakar stepwise search,
  seasonal with the run's season, the differencing orders chosen by KPSS and
  OCSB tests), as sktime's ``AutoARIMA`` runs it.

ETS and ARIMA are fitted on the raw values before the origin, one column at
a time (they pick their own differencing, or a multiplicative season, rather
than the run's transforms). Seasonal terms need two full seasons of history;
shorter series get non-seasonal fits.
Symbols: n known points, h forecast steps, C series.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np

from seqlab.baselines import losing_warnings
from seqlab.data.transforms import SeriesTransform
from seqlab.training.evaluate import forecast_metrics


def naive(history: np.ndarray, steps: int) -> np.ndarray:
    """(n, C) -> (steps, C): the last value repeated."""
    return np.repeat(history[-1:], steps, axis=0)


def seasonal_naive(history: np.ndarray, steps: int, season: int) -> np.ndarray:
    """(n, C) -> (steps, C): the last ``season`` values repeated (the whole history if shorter)."""
    last = history[-season:] if len(history) >= season else history
    return np.concatenate([last] * (steps // len(last) + 1))[:steps]


def transformed_naive(history: np.ndarray, steps: int, transform: SeriesTransform) -> np.ndarray | None:
    """(n, C) -> (steps, C): zero in the fitted ``transform``'s unscaled space, inverted; None without differencing."""
    if not any(step in ("diff", "seasonal_diff") for step in transform.steps):
        return None
    zero = -transform.shift / transform.factor  # the scaled value of an unscaled 0, (C,)
    return transform.inverse(np.broadcast_to(zero, (steps, history.shape[1])), history)


def _per_column(history: np.ndarray, steps: int, fit_one) -> np.ndarray:
    values = np.asarray(history, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of the optimisers
        columns = [np.asarray(fit_one(values[:, c], steps), dtype=np.float64) for c in range(values.shape[1])]
    return np.stack(columns, axis=1)  # (steps, C)


def _seasonal(history_length: int, season: int) -> bool:
    return season > 1 and history_length >= 2 * season


ETS_MODELS = [(error, trend, damped, season) for error in ("add", "mul") for trend, damped in
              ((None, False), ("add", False), ("add", True)) for season in (None, "add", "mul")
              if not (error == "add" and season == "mul")]  # additive error with multiplicative season can explode


def ets(history: np.ndarray, steps: int, season: int) -> np.ndarray:
    """(n, C) -> (steps, C): the statsmodels ETS model of lowest AICc per column (see ``ETS_MODELS``)."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    def fit_one(y: np.ndarray, h: int) -> np.ndarray:
        seasonal = _seasonal(len(y), season)
        best = None
        for error, trend, damped, season_kind in ETS_MODELS:
            multiplicative = error == "mul" or season_kind == "mul"
            if (season_kind and not seasonal) or (multiplicative and np.any(y <= 0)):
                continue
            try:
                fit = ETSModel(y, error=error, trend=trend, damped_trend=damped, seasonal=season_kind,
                               seasonal_periods=season if season_kind else None).fit(disp=False)
            except (ValueError, np.linalg.LinAlgError):
                continue
            if np.isfinite(fit.aicc) and (best is None or fit.aicc < best.aicc):
                best = fit
        if best is None:
            raise ValueError("no ETS model could be fitted to the series")
        return best.forecast(h)

    return _per_column(history, steps, fit_one)


def arima(history: np.ndarray, steps: int, season: int) -> np.ndarray:
    """(n, C) -> (steps, C): pmdarima's auto_arima per column."""
    import pmdarima

    def fit_one(y: np.ndarray, h: int) -> np.ndarray:
        seasonal = _seasonal(len(y), season)
        model = pmdarima.auto_arima(y, seasonal=seasonal, m=season if seasonal else 1, suppress_warnings=True,
                                    error_action="ignore")
        return model.predict(h)

    return _per_column(history, steps, fit_one)


def forecast_baselines(history: np.ndarray, steps: int, transform: SeriesTransform, season: int,
                       fitted: bool = True) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every baseline's (steps, C) forecast after ``history (n, C)``, and a note for each one that failed.

    ``fitted=False`` leaves ETS and ARIMA out; their forecasts are remembered for the same history.
    """
    out = {"naive": naive(history, steps), "seasonal_naive": seasonal_naive(history, steps, season)}
    in_transformed_space = transformed_naive(history, steps, transform)
    if in_transformed_space is not None:
        out["transformed_naive"] = in_transformed_space
    notes = []
    for name, fit in (("ets", ets), ("arima", arima)) if fitted else ():
        key = hashlib.sha256(f"{name} {steps} {season} {history.shape}".encode() + history.tobytes()).hexdigest()
        try:
            if key not in _FITTED:
                _FITTED[key] = fit(history, steps, season)
            out[name] = _FITTED[key].copy()
        except (ValueError, np.linalg.LinAlgError) as error:  # e.g. a series too short or too regular
            notes.append(f"the {name} baseline could not be fitted: {error}")
    return out, notes


_FITTED: dict[str, np.ndarray] = {}  # runs on the same history (seeds, models) fit ETS and ARIMA once


def forecast_report(history: np.ndarray, truth: np.ndarray, transform: SeriesTransform, season: int,
                    model_metrics: dict, fitted: bool = True) -> dict:
    """``{"baselines": {name: metrics}, "warnings": [...]}`` for a forecast of ``truth (h, C)`` after ``history``.

    The model is compared on MAPE, or on RMSE where MAPE is undefined.
    """
    forecasts, notes = forecast_baselines(history, len(truth), transform, season, fitted)
    scores = {name: forecast_metrics(values, truth) for name, values in forecasts.items()}
    key = "mape" if model_metrics.get("mape") is not None else "rmse"
    what = "MAPE %" if key == "mape" else "RMSE"
    return {"baselines": scores, "warnings": notes + losing_warnings(model_metrics[key], scores, key, what, False)}
