"""Invertible series transforms: log, differencing, seasonal differencing, scaling.

Fitted on the training part only; applied to the whole series (each step
looks only backwards in time, so nothing leaks from the future); inverted
for reporting with the raw history before the forecast origin. Symbols:
N time points, C series, h forecast steps.
"""

from __future__ import annotations

import numpy as np

from seqlab.errors import SeqlabError


class SeriesTransform:
    """``steps`` (``log``, ``diff``, ``seasonal_diff``) in order, then per-column scaling.

    ``transform(raw (N, C)) -> z (N - lag, C)``: element j of z belongs to
    raw time j + lag, where lag counts the points differencing consumes.
    ``inverse(z_future (h, C), history (n, C)) -> raw (h, C)``: the raw
    values at times n .. n + h - 1, given everything before them.
    """

    def __init__(self, steps: list[str], season: int = 12, scale: str = "standard"):
        self.steps = list(steps)
        self.season = season
        self.scale = scale
        self.shift: np.ndarray | None = None
        self.factor: np.ndarray | None = None

    @property
    def lag(self) -> int:
        return sum(1 if s == "diff" else self.season if s == "seasonal_diff" else 0 for s in self.steps)

    def _apply(self, values: np.ndarray, step: str, where: str) -> np.ndarray:
        if step == "log":
            if np.any(values <= 0):
                raise SeqlabError(f"forecast.transforms: log needs positive values; {where} has minimum {values.min():g}")
            return np.log(values)
        if step == "diff":
            return values[1:] - values[:-1]
        return values[self.season:] - values[: -self.season]

    def _levels(self, raw: np.ndarray, where: str) -> list[np.ndarray]:
        """The series after 0, 1, ..., all steps (unscaled)."""
        levels = [np.asarray(raw, dtype=np.float64)]
        for step in self.steps:
            levels.append(self._apply(levels[-1], step, where))
        return levels

    def fit(self, train_raw: np.ndarray) -> "SeriesTransform":
        z = self._levels(train_raw, "the training part")[-1]
        if len(z) < 2:
            raise SeqlabError(f"forecast: the training part is too short for transforms {self.steps} "
                              f"(season {self.season}); it has {len(train_raw)} points")
        if self.scale == "standard":
            self.shift, self.factor = z.mean(axis=0), z.std(axis=0)
        elif self.scale == "minmax":
            self.shift, self.factor = z.min(axis=0), z.max(axis=0) - z.min(axis=0)
        else:
            self.shift, self.factor = np.zeros(z.shape[1]), np.ones(z.shape[1])
        self.factor = np.where(self.factor > 1e-12, self.factor, 1.0)
        return self

    def transform(self, raw: np.ndarray, where: str = "the series") -> np.ndarray:
        return (self._levels(raw, where)[-1] - self.shift) / self.factor  # (N - lag, C)

    def inverse(self, z_future: np.ndarray, history: np.ndarray) -> np.ndarray:
        levels = self._levels(history, "the history")
        future = np.asarray(z_future, dtype=np.float64) * self.factor + self.shift  # (h, C), deepest level
        for step, past in zip(reversed(self.steps), reversed(levels[:-1])):
            if step == "log":
                future = np.exp(future)
                continue
            lag = 1 if step == "diff" else self.season
            joined = np.concatenate([past[-lag:], np.zeros_like(future)])  # (lag + h, C)
            for i in range(len(future)):
                joined[lag + i] = future[i] + joined[i]
            future = joined[lag:]
        return future

    def state_dict(self) -> dict:
        return {"steps": self.steps, "season": self.season, "scale": self.scale,
                "shift": self.shift.tolist(), "factor": self.factor.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict) -> "SeriesTransform":
        transform = cls(state["steps"], state["season"], state["scale"])
        transform.shift = np.asarray(state["shift"])
        transform.factor = np.asarray(state["factor"])
        return transform
