"""Forecasting: sliding windows over a series, direct or recursive multi-step forecasts.

Indexing is by raw time t = 0 .. N-1. After the transforms, z(t) exists for
t >= lag. The model's input at time t is [z(t-1), covariates(t)] and its
target is z(t), so a window ending at t reads z up to t-1 and the calendar
of t. ``recursive`` models output z at every step of the window (head
``step``) and forecast by feeding each prediction back with the recurrent
state carried from step to step; ``direct`` models output z(t .. t+H-1)
from the window ending at t. Validation rolls the model out over the
validation part exactly as the test does. Symbols: W window, H horizon,
C series, K covariates, F = C + K input features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from seqlab.baselines.forecast import forecast_report
from seqlab.config import ForecastConfig, RunConfig, from_dict
from seqlab.data.series import Series, frequency_of, handle_missing, load_series, months_of, season_of
from seqlab.data.transforms import SeriesTransform
from seqlab.errors import SeqlabError
from seqlab.io import check_output_path, write_csv
from seqlab.models.registry import build_model
from seqlab.reports.plots import plot_forecast, plot_learning_curves
from seqlab.runs import MODEL_FILE, Run, load_run, require_task, save_run_checkpoint
from seqlab.tasks.base import TaskRecipe, TrainingSetup, fingerprint, model_options
from seqlab.training.evaluate import forecast_metrics
from seqlab.training.module import SeqlabModule
from seqlab.training.recipe import resolve_recipe


# Longest ``seqlab forecast --horizon``: a rollout is one model step per point, and beyond this the
# run takes minutes and its output gigabytes, with nothing left of the data's signal.
MAX_HORIZON = 100_000


# ----------------------------------------------------------------------------
# Inputs by raw time


def covariates(series: Series, names: list[str], steps_after: int = 0) -> np.ndarray:
    """(N + steps_after, K) known-ahead inputs for the series and ``steps_after`` future points."""
    columns = []
    if "month" in names:
        if series.dates is None:
            raise SeqlabError(f"forecast.covariates: month needs dates; {series.name} has no date column")
        dates = series.dates if not steps_after else np.concatenate([series.dates, series.future_dates(steps_after)])
        angle = 2 * np.pi * (months_of(dates) - 1) / 12
        columns += [np.sin(angle), np.cos(angle)]
    total = len(series) + steps_after
    return np.stack(columns, axis=1) if columns else np.zeros((total, 0))


@dataclass
class Prepared:
    """A series ready for the model: z by raw time (NaN before lag) and covariates."""

    series: Series
    transform: SeriesTransform
    z: np.ndarray  # (N, C), NaN where t < lag
    cov: np.ndarray  # (N + extra, K)

    def inputs(self, start: int, stop: int) -> np.ndarray:
        """Model inputs for raw times start .. stop-1: [z(t-1), cov(t)] -> (stop - start, F)."""
        return np.concatenate([self.z[start - 1 : stop - 1], self.cov[start:stop]], axis=1)


def prepare(series: Series, transform: SeriesTransform, names: list[str], extra: int = 0) -> Prepared:
    z = np.full(series.values.shape, np.nan)
    z[transform.lag :] = transform.transform(series.values, series.name)
    return Prepared(series, transform, z, covariates(series, names, extra))


def split_sizes(n: int, cfg: ForecastConfig, lag: int, name: str) -> tuple[int, int, int]:
    n_test, n_val = cfg.test_steps, cfg.val_steps
    n_train = n - n_val - n_test
    needed = lag + cfg.window + (cfg.horizon if cfg.strategy == "direct" else 1) + 1
    if n_train < needed:
        raise SeqlabError(
            f"forecast: {name} has {n} points; test ({n_test}) and validation ({n_val}) leave {n_train} for "
            f"training, but window {cfg.window}, transform lag {lag}"
            + (f" and horizon {cfg.horizon}" if cfg.strategy == "direct" else "")
            + f" need at least {needed}; the horizon or window is longer than the data allows"
        )
    return n_train, n_val, n_test


def training_windows(data: Prepared, cfg: ForecastConfig, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows whose targets all lie before raw time ``end``."""
    lag, W, H = data.transform.lag, cfg.window, cfg.horizon
    xs, ys = [], []
    last = end - 1 if cfg.strategy == "recursive" else end - H
    for t in range(lag + W, last + 1):
        xs.append(data.inputs(t - W + 1, t + 1))  # (W, F)
        if cfg.strategy == "recursive":
            ys.append(data.z[t - W + 1 : t + 1])  # (W, C)
        else:
            ys.append(data.z[t : t + H].reshape(-1))  # (H*C,)
    return np.asarray(xs, np.float32), np.asarray(ys, np.float32)


def rollout(model: nn.Module, cfg: ForecastConfig, history: torch.Tensor, future_cov: torch.Tensor,
            steps: int, channels: int) -> torch.Tensor:
    """Forecast ``steps`` values of z after a window of inputs.

    ``history (W, F)`` are the inputs for the last W known times (the last
    one predicts the first forecast step); ``future_cov (steps, K)`` the
    covariates of the forecast times. Returns (steps, C).
    """
    if cfg.strategy == "recursive":
        out, state = model.forward_stateful(history[None])  # (1, W, C)
        predictions = [out[0, -1]]
        for k in range(1, steps):
            x = torch.cat([predictions[-1], future_cov[k]])[None, None]  # (1, 1, F)
            out, state = model.forward_stateful(x, state)
            predictions.append(out[0, -1])
        return torch.stack(predictions)
    inputs = history
    predictions = []
    while len(predictions) < steps:
        block = model(inputs[-cfg.window :][None])[0].view(cfg.horizon, channels)  # (H, C)
        for z in block:
            k = len(predictions)
            if k == steps:
                break
            predictions.append(z)
            if k + 1 < steps:
                inputs = torch.cat([inputs, torch.cat([z, future_cov[k + 1]])[None]])
    return torch.stack(predictions)


def forecast_from(model: nn.Module, cfg: ForecastConfig, data: Prepared, origin: int, steps: int) -> np.ndarray:
    """Raw-scale forecast of times origin .. origin+steps-1 from everything before ``origin``."""
    lag = data.transform.lag
    if origin - cfg.window < lag:
        raise SeqlabError(f"forecast: {origin} known points are too few for window {cfg.window} plus transform "
                          f"lag {lag}; the horizon is longer than the data allows")
    if data.cov.shape[0] < origin + steps:
        raise ValueError("covariates do not reach the end of the forecast")
    history = torch.tensor(data.inputs(origin - cfg.window + 1, origin + 1), dtype=torch.float32)
    future_cov = torch.tensor(data.cov[origin : origin + steps], dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        z = rollout(model, cfg, history, future_cov, steps, data.z.shape[1]).numpy()
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is found and named by the callers
        return data.transform.inverse(z, data.series.values[:origin])


# ----------------------------------------------------------------------------
# Training


class ForecastModule(SeqlabModule):
    """MSE on training windows; validation rolls the model out over the validation part like the test."""

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, cfg: ForecastConfig, channels: int):
        super().__init__(model, lr, weight_decay)
        self.cfg = cfg
        self.channels = channels

    def batch_loss(self, batch, stage):
        if stage == "train":
            x, y = batch
            prediction = self.model(x)  # (B, W, C) or (B, H*C)
            return nn.functional.mse_loss(prediction, y), y.numel(), {}
        history, future_cov, target = (b[0] for b in batch)
        prediction = rollout(self.model, self.cfg, history, future_cov, len(target), self.channels)  # (S, C)
        return nn.functional.mse_loss(prediction, target), target.numel(), {}


def resolve_series(config: RunConfig) -> Series:
    return handle_missing(load_series(config.data.spec), config.forecast.impute)


def check_model(config: RunConfig) -> None:
    head, strategy = config.model.get("head"), config.forecast.strategy
    if strategy == "recursive" and (head != "step" or config.model.get("bidirectional")):
        raise SeqlabError(
            f"forecast.strategy recursive needs a unidirectional model with model.head=step, got head={head}, "
            f"bidirectional={config.model.get('bidirectional')}; use forecast.strategy=direct otherwise"
        )
    if strategy == "direct" and head == "step":
        raise SeqlabError("forecast.strategy direct needs a sequence head (last, mean or attention), got model.head=step")


@dataclass
class ForecastData:
    """The prepared series of a forecast run: transformed values, covariates, split sizes, training windows."""

    series: Series
    transform: SeriesTransform
    prepared: Prepared
    split: tuple[int, int, int]  # train, val, test points
    x: np.ndarray  # (N_windows, W, F)
    y: np.ndarray  # (N_windows, W, C) recursive or (N_windows, H*C) direct

    @property
    def channels(self) -> int:
        return self.series.values.shape[1]

    @property
    def input_size(self) -> int:
        return self.channels + self.prepared.cov.shape[1]


class ForecastTask(TaskRecipe):
    """Sliding-window forecasting: MAPE, sMAPE, RMSE and MAE of the test forecast, beside its baselines."""

    name = "forecast"

    def prepare(self, config: RunConfig) -> ForecastData:
        cfg = config.forecast
        check_model(config)
        series = resolve_series(config)
        season = season_of(series) if cfg.season == "auto" else cfg.season
        transform = SeriesTransform(cfg.transforms, season, cfg.scale)
        n_train, n_val, n_test = split_sizes(len(series), cfg, transform.lag, series.name)
        transform.fit(series.values[:n_train])
        prepared = prepare(series, transform, cfg.covariates)
        x, y = training_windows(prepared, cfg, n_train)
        return ForecastData(series, transform, prepared, (n_train, n_val, n_test), x, y)

    def fingerprint(self, config: RunConfig, data: ForecastData) -> str:
        return fingerprint(config, data.series.values, data.transform.state_dict(), data.prepared.cov, data.x,
                           data.y)

    def output_size(self, config: RunConfig, data: ForecastData) -> int:
        return data.channels if config.forecast.strategy == "recursive" else config.forecast.horizon * data.channels

    def build(self, config: RunConfig, data: ForecastData) -> TrainingSetup:
        cfg = config.forecast
        model = build_model(config.model["name"], data.input_size, self.output_size(config, data),
                            **model_options(config))
        module = ForecastModule(model, config.train.lr, config.train.weight_decay, cfg, data.channels)
        generator = torch.Generator().manual_seed(config.train.seed)
        train_loader = DataLoader(TensorDataset(torch.from_numpy(data.x), torch.from_numpy(data.y)),
                                  batch_size=resolve_recipe(config.train, "forecast").batch_size, shuffle=True,
                                  generator=generator)
        n_train, n_val, _ = data.split
        z, cov = data.prepared.z, data.prepared.cov
        val_item = (torch.tensor(data.prepared.inputs(n_train - cfg.window + 1, n_train + 1), dtype=torch.float32),
                    torch.tensor(cov[n_train : n_train + n_val], dtype=torch.float32),
                    torch.tensor(z[n_train : n_train + n_val], dtype=torch.float32))
        return TrainingSetup(model, module, train_loader, DataLoader([val_item], batch_size=1), generator)

    def evaluate(self, config: RunConfig, data: ForecastData, model: nn.Module) -> dict[str, Any]:
        cfg, series = config.forecast, data.series
        n_train, n_val, n_test = data.split
        origin = n_train + n_val
        truth = series.values[origin:]
        prediction = forecast_from(model, cfg, data.prepared, origin, n_test)
        val_prediction = forecast_from(model, cfg, data.prepared, n_train, n_val)
        test = forecast_metrics(prediction, truth)
        return {
            "data": {"spec": config.data.spec, "points": len(series), "train": n_train, "val": n_val, "test": n_test,
                     "columns": series.columns, "windows": len(data.x), "strategy": cfg.strategy,
                     "frequency": frequency_of(series.dates), "season": data.transform.season},
            "val": forecast_metrics(val_prediction, series.values[n_train:origin]),
            "test": test,
            **forecast_report(series.values[:origin], truth, data.transform, data.transform.season, test,
                              config.train.baselines),
        }

    def save(self, config: RunConfig, data: ForecastData, model: nn.Module, metrics: dict[str, Any],
             history: list[dict[str, float]], out: Path) -> None:
        cfg, series = config.forecast, data.series
        n_train, n_val, n_test = data.split
        origin = n_train + n_val
        extras = {"transform": data.transform.state_dict(), "columns": series.columns, "split": list(data.split),
                  "covariates": list(cfg.covariates), "frequency": frequency_of(series.dates)}
        save_run_checkpoint(
            out / MODEL_FILE, model,
            {"name": config.model["name"], "builder": "zoo", "input_size": data.input_size,
             "output_size": self.output_size(config, data), "options": model_options(config)},
            config.to_dict(), "forecast", extras,
        )
        prediction = forecast_from(model, cfg, data.prepared, origin, n_test)
        _write_forecast(out, series, origin, prediction, series.values[origin:],
                        f"{config.model['name']} on {series.name}: test forecast")
        plot_learning_curves(history, out / "learning_curves.png", f"{config.model['name']} on {series.name}")

    def evaluate_run(self, run: Run, data_spec: str | None, split: str) -> dict[str, Any]:
        return evaluate_forecast(run, data_spec, split)


def _write_forecast(out_csv_dir: Path, series: Series, origin: int, prediction: np.ndarray,
                    truth: np.ndarray | None, title: str, csv_path: Path | None = None,
                    png_path: Path | None = None) -> None:
    steps = len(prediction)
    dates = series.dates
    if dates is not None:
        all_dates = np.concatenate([dates, series.future_dates(max(0, origin + steps - len(series)))])
        future_dates = [str(d) for d in all_dates[origin : origin + steps]]
    else:
        future_dates = [str(origin + k) for k in range(steps)]
    header = ["step", "time"] + [f"{c}_forecast" for c in series.columns]
    known = 0 if truth is None else len(truth)
    if known:
        header += [f"{c}_truth" for c in series.columns]
    rows = []
    for k in range(steps):
        row = [k + 1, future_dates[k]] + [f"{v:.6g}" for v in prediction[k]]
        if known:
            row += [f"{v:.6g}" for v in truth[k]] if k < known else [""] * len(series.columns)
        rows.append(row)
    write_csv(csv_path or out_csv_dir / "forecast.csv", header, rows)
    plot_forecast(series, origin, prediction, truth, png_path or out_csv_dir / "forecast.png", title)


# ----------------------------------------------------------------------------
# Saved runs


def run_parts(run: Run, spec: str | None) -> tuple[ForecastConfig, Series]:
    """The run's forecast section and the series of ``spec`` (default: the run's own), checked against the run."""
    cfg = from_dict(ForecastConfig, run.config["forecast"], "forecast")
    series = handle_missing(load_series(spec or run.config["data"]["spec"]), cfg.impute)
    if series.columns != list(run.extras["columns"]):
        raise SeqlabError(f"data {series.name!r}: has columns {series.columns}; the run forecasts "
                          f"{list(run.extras['columns'])}; expected the same columns")
    expected, found = run.extras.get("frequency"), frequency_of(series.dates)
    if expected is not None and found != expected:
        found_text = f"{found} dates" if found else ("dates of another spacing" if series.dates is not None
                                                     else "no dates")
        raise SeqlabError(f"data {series.name!r}: has {found_text}; the run was trained on {expected} data; "
                          f"expected {expected} dates")
    return cfg, series


def evaluate_forecast(run: Run, data_spec: str | None, split: str) -> dict[str, Any]:
    cfg, series = run_parts(run, data_spec)
    transform = SeriesTransform.from_state_dict(run.extras["transform"])
    n_train, n_val, n_test = split_sizes(len(series), cfg, transform.lag, series.name)
    data = prepare(series, transform, cfg.covariates)
    origin = {"test": n_train + n_val, "val": n_train}.get(split)
    if origin is None:
        raise SeqlabError(f"--split {split}: a forecast run evaluates test or val")
    steps = n_test if split == "test" else n_val
    truth = series.values[origin : origin + steps]
    scores = forecast_metrics(forecast_from(run.model, cfg, data, origin, steps), truth)
    return {"task": "forecast", "model": run.checkpoint["model"]["name"], "data": series.name, "split": split,
            split: scores, **forecast_report(series.values[:origin], truth, transform, transform.season, scores,
                                             run.config["train"].get("baselines", True))}


def forecast_after(run: Run, cfg: ForecastConfig, series: Series, horizon: int, holdout: int = 0
                   ) -> tuple[int, np.ndarray]:
    """The origin and the raw-scale (horizon, C) forecast after all but the last ``holdout`` points of ``series``."""
    transform = SeriesTransform.from_state_dict(run.extras["transform"])
    origin = len(series) - holdout
    if holdout >= len(series) or origin - cfg.window < transform.lag:
        need = cfg.window + transform.lag
        advice = (f"--holdout at most {len(series) - need}" if len(series) >= need
                  else "a longer series: this one is too short for the run even without a holdout")
        raise SeqlabError(f"--holdout {holdout}: the series has {len(series)} points, so {max(origin, 0)} would "
                          f"remain before the forecast; expected at least {need} (window {cfg.window} plus "
                          f"transform lag {transform.lag}), so {advice}")
    known = series.values[: origin]
    visible = Series(series.name, known, series.columns, None if series.dates is None else series.dates[:origin])
    data = prepare(visible, transform, cfg.covariates, extra=horizon)
    prediction = forecast_from(run.model, cfg, data, origin, horizon)
    overflow = ~np.isfinite(prediction).all(axis=1)
    if overflow.any():
        step = int(np.argmax(overflow)) + 1
        raise SeqlabError(f"--horizon {horizon}: the forecast leaves the range of numbers from step {step} on "
                          f"(values overflow once the transforms {cfg.transforms or 'none'} are inverted); "
                          f"expected a horizon of at most {step - 1} for this run")
    return origin, prediction


def forecast_file(run_dir: str | Path, horizon: int, out: str | Path, input_spec: str | None = None,
                  holdout: int = 0) -> dict[str, Any]:
    """``seqlab forecast``: ``horizon`` steps after the series (or after all but its last ``holdout``).

    Writes the CSV ``out`` and a plot beside it (same name, ``.png``).
    Returns the metrics against the held-out truth when there is some.
    """
    run = load_run(run_dir)
    require_task(run, "forecast", "forecast")
    if not 1 <= horizon <= MAX_HORIZON:
        raise SeqlabError(f"--horizon: expected an integer in 1..{MAX_HORIZON}, got {horizon}")
    check_output_path(Path(out), "--out", [Path(run_dir) / MODEL_FILE, Path(input_spec.removeprefix("series:"))
                                           if input_spec else None])
    if holdout < 0:
        raise SeqlabError(f"--holdout: expected an integer >= 0, got {holdout}")
    if input_spec and not input_spec.startswith("series:") and input_spec not in ("sine", "airline"):
        input_spec = f"series:{input_spec}"
    cfg, series = run_parts(run, input_spec)
    origin, prediction = forecast_after(run, cfg, series, horizon, holdout)
    truth = series.values[origin : origin + horizon] if holdout else None
    out = Path(out)
    _write_forecast(out.parent, series, origin, prediction, truth,
                    f"{run.checkpoint['model']['name']}: {horizon}-step forecast", csv_path=out,
                    png_path=out.with_suffix(".png"))
    result = {"horizon": horizon, "origin": origin, "csv": str(out), "plot": str(out.with_suffix(".png"))}
    if truth is not None and len(truth):
        result["metrics"] = forecast_metrics(prediction[: len(truth)], truth)
    return result
