"""The eager modules that are served and exported: raw features in (the normaliser inside), and one step.

:class:`Deployable` wraps a whole-sequence model; :class:`StepModel` runs a
unidirectional recurrent classifier one frame at a time with its state
explicit. Streamer and WindowClassifier run them eagerly; ``seqlab export``
writes them as graphs.

Symbols: B batch, T steps, F features, H hidden size, P LSTM projection
size, L layers, C outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from seqlab.models.recurrent import RecurrentModel
from seqlab.recurrence.spec import CELLS, parameter_suffix

LSTM = CELLS["lstm"]

STEPWISE_MODELS = ("streaming covers the recurrent classifiers rnn, gru and lstm (stacked or not, heads last, "
                   "step, mean or attention), not models with convolutions or other layers around the recurrence")


class Deployable(nn.Module):
    """Raw features in, model outputs out: the run's normaliser is part of the graph.

    ``forward(x (B, T, F)[, lengths (B,)])``; with ``lengths`` the model
    packs the batch, so each sequence is read at its own length. A
    regression run's target scaling (``target_shift``, ``target_scale``, (K,))
    is undone inside the graph too, so the outputs are in the targets' units.
    """

    def __init__(self, model: nn.Module, shift, scale, target_shift=None, target_scale=None):
        super().__init__()
        self.model = model
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.register_buffer("target_shift", None if target_shift is None else
                             torch.as_tensor(target_shift, dtype=torch.float32))
        self.register_buffer("target_scale", None if target_scale is None else
                             torch.as_tensor(target_scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = (x - self.shift) / self.scale
        y = self.model(x) if lengths is None else self.model(x, lengths)  # (B, C) or (B, K)
        if self.target_scale is not None:
            y = y * self.target_scale + self.target_shift  # (B, K) in the targets' units
        return y


class StepModel(nn.Module):
    """One step of a unidirectional recurrent model with explicit state: (x_t, *state) -> (y_t, *state').

    ``y_t`` is what the whole-sequence model outputs after reading steps
    0..t: the head applied to the top layer's state (heads ``last`` and
    ``step``), to the mean of the top layer's outputs so far (``mean``) or
    to their attention-weighted sum so far (``attention``, an online
    softmax). Inputs are raw features; the run's normaliser is inside.

    The state, every part zero at the start of a stream (see
    :attr:`state_names`): ``h (L, B, P)``, for an LSTM ``c (L, B, H)``; for
    the ``mean`` head ``total (B, P)`` and ``count (B, 1)``; for the
    ``attention`` head ``count (B, 1)``, ``peak (B, 1)`` (the largest score
    so far), ``norm (B, 1)`` (sum of exp(score - peak)) and ``acc (B, P)``
    (the outputs weighted by exp(score - peak)). An LSTM with ``proj_size``
    runs its cells as explicit products (h = W_hr (o * tanh c)), which
    every format can express. Shapes: x_t (B, F), y_t (B, C).
    """

    def __init__(self, model: RecurrentModel, shift, scale):
        super().__init__()
        if getattr(model, "cannot_stream", None):  # a model that says why it reads whole windows
            raise ValueError(model.cannot_stream)
        if not isinstance(model, RecurrentModel):
            raise ValueError(STEPWISE_MODELS)
        encoder = model.encoder
        if encoder.num_directions != 1:
            raise ValueError("a bidirectional model reads the future; it cannot run step by step")
        if model.head not in ("last", "step", "mean", "attention"):
            raise ValueError(f"head {model.head!r} cannot run step by step")
        self.model = model
        self.is_lstm = encoder.mode == "lstm"
        self.projected = self.is_lstm and bool(getattr(encoder.rnn, "proj_size", 0))
        self.pool = model.head if model.head in ("mean", "attention") else None
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        pool_states = {"mean": ["total", "count"], "attention": ["count", "peak", "norm", "acc"], None: []}
        self.state_names = ["h"] + (["c"] if self.is_lstm else []) + pool_states[self.pool]

    def initial_state(self, batch: int = 1) -> list[torch.Tensor]:
        rnn = self.model.encoder.rnn
        width = self.model.encoder.step_size
        sizes = {"h": (rnn.num_layers, batch, width), "c": (rnn.num_layers, batch, rnn.hidden_size),
                 "total": (batch, width), "acc": (batch, width)}
        return [torch.zeros(sizes.get(name, (batch, 1))) for name in self.state_names]

    def explicit_lstm(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """One step of the stacked LSTM as explicit products (with the projection h = W_hr (o * tanh c)
        where the LSTM has one). x (B, F), h (L, B, P), c (L, B, H) -> top output (B, P), h', c'."""
        rnn = self.model.encoder.rnn
        h_out, c_out = [], []
        for k in range(rnn.num_layers):
            s = parameter_suffix(k, 0)
            x, c_k = LSTM.step(x, h[k], c[k], getattr(rnn, f"weight_ih{s}"), getattr(rnn, f"weight_hh{s}"),
                               getattr(rnn, f"bias_ih{s}", None), getattr(rnn, f"bias_hh{s}", None),
                               getattr(rnn, f"weight_hr{s}", None))  # (B, P), (B, H)
            h_out.append(x)
            c_out.append(c_k)
        return x, torch.stack(h_out), torch.stack(c_out)

    def forward(self, x: torch.Tensor, *state: torch.Tensor):
        x = (x - self.shift) / self.scale  # (B, F)
        h, rest = state[0], list(state[1:])
        if self.is_lstm:
            c = rest.pop(0)
            if self.projected:
                top, h, c = self.explicit_lstm(x, h, c)
            else:
                outputs, (h, c) = self.model.encoder.rnn(x.unsqueeze(1), (h, c))  # (B, 1, P)
                top = outputs[:, 0]
            recurrent = [h, c]
        else:
            outputs, h = self.model.encoder.rnn(x.unsqueeze(1), h)
            top = outputs[:, 0]  # (B, P)
            recurrent = [h]
        if self.pool == "mean":
            total, count = rest
            total, count = total + top, count + 1.0
            return (self.model.fc(total / count), *recurrent, total, count)
        if self.pool == "attention":
            count, peak, norm, acc = rest
            attention = self.model.attention
            score = attention.score(torch.tanh(attention.project(top)))  # (B, 1)
            previous = torch.where(count > 0, peak, score)  # the first step has no earlier peak
            peak = torch.maximum(previous, score)
            decay, weight = torch.exp(previous - peak), torch.exp(score - peak)  # (B, 1)
            norm, acc = norm * decay + weight, acc * decay + weight * top
            return (self.model.fc(acc / norm), *recurrent, count + 1.0, peak, norm, acc)
        return (self.model.fc(top), *recurrent)
