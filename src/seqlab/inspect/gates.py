"""Gate activity of LSTM and GRU layers over time: mean activation and saturation per gate.

Symbols: N sequences, T time steps, H hidden size.

The encoder is stepped by the NumPy reference engine (its cells are
the oracle's copy of the equations, :mod:`seqlab.recurrence.oracle`) with
the model's own weights, on the very input the encoder receives inside the
model (after any convolutions of a hybrid); its outputs are checked against
torch.nn's before any gate is read. Gates, in PyTorch's order:

    LSTM  input i, forget f (sigmoid), cell candidate g (tanh), output o (sigmoid)
    GRU   reset r, update z (sigmoid), new candidate n (tanh); h' = (1 - z) n + z h

For each gate and step: ``mean``, the mean activation over the sequences
for which the step is real and over the H units; ``high``, the fraction
of those values above ``threshold`` (0.95); ``low``, the fraction below
1 - threshold for a sigmoid gate (0.05), below -threshold for a tanh one.
A forget gate mostly ``high`` keeps its cell for many steps; an update
gate mostly ``high`` copies h forward nearly unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqlab.data.dataset import SequenceSet
from seqlab.errors import SeqlabError
from seqlab.inspect.data import inspection_data, load_classifier, recurrent_encoder
from seqlab.io import write_json
from seqlab.reference import ReferenceRNN

GATES_FILE = "gates.json"
GATES_PLOT = "gates.png"
# name -> (index in the cell cache, activation)
GATE_NAMES = {
    "lstm": {"input": (3, "sigmoid"), "forget": (4, "sigmoid"), "cell": (5, "tanh"), "output": (6, "sigmoid")},
    "gru": {"reset": (2, "sigmoid"), "update": (3, "sigmoid"), "new": (4, "tanh")},
}


@dataclass
class GateActivity:
    """Gate statistics of one run.

    Attributes:
        cell: ``lstm`` or ``gru``.
        layers: one entry per layer and direction: ``{"layer", "direction",
            "gates": {name: {"mean": [T], "high": [T], "low": [T]}},
            "overall": {name: {"mean", "high", "low"}}}``.
        outputs: the stepped encoder's outputs (N, T, D*P), equal to torch.nn's.
        threshold: the saturation threshold.
    """

    cell: str
    layers: list[dict]
    outputs: np.ndarray
    threshold: float
    sequences: int

    def to_dict(self) -> dict:
        return {"cell": self.cell, "threshold": self.threshold, "sequences": self.sequences, "layers": self.layers}


def encoder_input(model, encoder, data: SequenceSet):
    """The input (N, T', F') and lengths the encoder receives inside ``model``, and its torch.nn outputs."""
    captured = {}

    def keep(module, args, kwargs, output):
        captured["x"] = args[0]
        captured["lengths"] = args[1] if len(args) > 1 else kwargs.get("lengths")
        captured["outputs"] = output[0]

    x = torch.from_numpy(np.ascontiguousarray(data.X)).float()  # (N, T, F)
    lengths = None if data.lengths is None else torch.from_numpy(np.asarray(data.lengths, np.int64))
    if lengths is not None:
        x = x[:, : int(lengths.max())]
    handle = encoder.register_forward_hook(keep, with_kwargs=True)
    try:
        with torch.no_grad():
            model.eval()
            model(x, lengths)
    finally:
        handle.remove()
    return captured["x"], captured["lengths"], captured["outputs"]


def _summary(values: np.ndarray, valid: np.ndarray, activation: str, threshold: float) -> dict:
    """values (N, T, H), valid (N, T) -> per-step mean/high/low over valid sequences and units."""
    low_bound = 1.0 - threshold if activation == "sigmoid" else -threshold
    weights = valid[..., None].astype(np.float64)  # (N, T, 1)
    count = np.maximum(weights.sum(axis=(0, 2)) * values.shape[2], 1)  # (T,)

    def per_step(a):
        return ((a * weights).sum(axis=(0, 2)) / count).tolist()

    def overall(a):
        return float((a * weights).sum() / max(weights.sum() * values.shape[2], 1))

    parts = {"mean": values, "high": (values > threshold).astype(np.float64),
             "low": (values < low_bound).astype(np.float64)}
    return {key: per_step(a) for key, a in parts.items()}, {key: overall(a) for key, a in parts.items()}


def gate_activity(model, encoder, data: SequenceSet, threshold: float = 0.95) -> GateActivity:
    """Mean activation and saturation of every gate of ``encoder`` (inside ``model``) over ``data``."""
    if not 0.5 < threshold < 1.0:
        raise SeqlabError(f"--threshold: expected a number in (0.5, 1), got {threshold}")
    x, lengths, torch_outputs = encoder_input(model, encoder, data)
    rnn = encoder.rnn
    reference = ReferenceRNN(encoder.mode, encoder.input_size, rnn.hidden_size, encoder.num_layers,
                             bidirectional=encoder.num_directions == 2, proj_size=getattr(rnn, "proj_size", 0),
                             reset_after=encoder.reset_after)
    zero_biases = {k: np.zeros_like(v) for k, v in reference.params.items() if k.startswith("bias")}  # bias=False
    reference.load_state_dict({**zero_biases, **rnn.state_dict()})
    outputs, _, _ = reference.forward(x.double().numpy(), lengths=None if lengths is None else lengths.numpy())
    if encoder.merge == "sum" and encoder.num_directions == 2:
        outputs = outputs[..., : encoder.step_size] + outputs[..., encoder.step_size :]  # as the encoder merges
    difference = np.abs(outputs - torch_outputs.double().numpy()).max()
    if difference > 1e-4 * max(1.0, float(np.abs(outputs).max())):
        raise RuntimeError(f"reference stepping differs from the model's recurrence by {difference:.3g}")
    _, valid, caches = reference.cache  # per layer and direction: [(t, mask, cell cache)] in stepping order
    layers = []
    for k, steps in enumerate(caches):
        by_time = sorted(steps, key=lambda step: step[0])
        gates, overall = {}, {}
        for name, (index, activation) in GATE_NAMES[encoder.mode].items():
            values = np.stack([cache[index] for _, _, cache in by_time], axis=1)  # (N, T, H)
            gates[name], overall[name] = _summary(values, valid, activation, threshold)
        layers.append({"layer": k // encoder.num_directions,
                       "direction": "backward" if k % encoder.num_directions else "forward",
                       "gates": gates, "overall": overall})
    return GateActivity(encoder.mode, layers, outputs, threshold, len(x))


def inspect_gates(run_dir: str | Path, out: str | Path, input_path: str | Path | None = None, split: str = "test",
                  batch: int = 256, threshold: float = 0.95) -> GateActivity:
    """``seqlab inspect gates``: write ``gates.json`` and ``gates.png`` into ``out``."""
    from seqlab.reports.inspection import plot_gates

    run = load_classifier(run_dir, "inspect gates")
    encoder = recurrent_encoder(run.model, run, "inspect gates")
    name = run.checkpoint["model"]["name"]
    if encoder.mode not in GATE_NAMES:
        raise SeqlabError(f"run folder {run.path}: model {name} is a plain RNN (h_t = tanh(W_ih x_t + W_hh h_t-1 "
                          "+ b)) and has no gates; `seqlab inspect gates` needs an LSTM or GRU")
    data = inspection_data(run, input_path, split, batch, labels=False)
    activity = gate_activity(run.model, encoder, data, threshold)
    source = str(input_path) if input_path is not None else f"{split} split"
    write_json(Path(out) / GATES_FILE, {"run": str(run_dir), "model": name, "data": source, **activity.to_dict()})
    plot_gates(activity, Path(out) / GATES_PLOT, f"{name} gates ({source})")
    return activity
