"""Per-feature normalisation fitted on the training split's valid steps only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqlab.data.dataset import SequenceSet


@dataclass
class Normalizer:
    """x' = (x - shift) / scale per feature; padded steps stay zero.

    ``kind`` is ``standard`` (shift = mean, scale = std), ``minmax``
    (shift = min, scale = max - min) or ``none``. Constant features get
    scale 1. Stored in the checkpoint as plain lists.
    """

    kind: str
    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, data: SequenceSet, kind: str = "standard") -> "Normalizer":
        values = data.X[data.valid_mask()]  # (valid steps, F)
        features = data.features
        if kind == "none":
            return cls(kind, np.zeros(features, np.float32), np.ones(features, np.float32))
        if kind == "standard":
            shift, scale = values.mean(axis=0), values.std(axis=0)
        elif kind == "minmax":
            shift, scale = values.min(axis=0), values.max(axis=0) - values.min(axis=0)
        else:
            raise ValueError(f"expected normalize in standard, minmax, none, got {kind!r}")
        scale = np.where(scale > 1e-12, scale, 1.0)
        return cls(kind, shift.astype(np.float32), scale.astype(np.float32))

    @classmethod
    def identity(cls, features: int) -> "Normalizer":
        return cls("none", np.zeros(features, np.float32), np.ones(features, np.float32))

    def transform(self, data: SequenceSet) -> SequenceSet:
        if self.kind == "none":
            return data
        X = (data.X - self.shift) / self.scale  # (N, T, F)
        X = np.where(data.valid_mask()[..., None], X, 0.0).astype(np.float32)
        return SequenceSet(X, data.y, data.lengths, data.ids)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Normalizer":
        return cls(state["kind"], np.asarray(state["shift"], np.float32), np.asarray(state["scale"], np.float32))
