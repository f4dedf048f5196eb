"""Sequence heads, which turn per-step features (B, T, C) into one vector per sequence, and padded-batch helpers.

Symbols: B batch, T time steps, C feature width of the encoder output.
Every pool respects ``lengths``: padded steps never contribute.
"""

from __future__ import annotations

import torch
from torch import nn


def step_mask(lengths: torch.Tensor | None, batch: int, steps: int, device) -> torch.Tensor:
    """(B, T) bool mask, True on valid steps."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    positions = torch.arange(steps, device=device)  # (T,)
    return positions[None, :] < lengths.to(device)[:, None]  # (B, T)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Reverse each sequence of a padded batch within its own length; padding stays where it is.

    ``x (B, T, ...)``, ``lengths (B,)`` -> ``(B, T, ...)`` with
    ``y[b, t] = x[b, lengths[b] - 1 - t]`` for ``t < lengths[b]`` and
    ``y[b, t] = x[b, t]`` after. Without lengths it is ``torch.flip(x, [1])``.
    ``torch.flip`` alone, on a padded batch, would move the padding to the
    front, so a backward recurrence would read it first. Applying the
    function twice gives x back. A bidirectional LSTM from two one-way ones::

        out_f, _ = forward_lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        out_b, _ = backward_lstm(pack_padded_sequence(reverse_padded(x, lengths), lengths, batch_first=True,
                                                      enforce_sorted=False))
        out_f = pad_packed_sequence(out_f, batch_first=True, total_length=T)[0]
        out_b = reverse_padded(pad_packed_sequence(out_b, batch_first=True, total_length=T)[0], lengths)
        out = torch.cat([out_f, out_b], dim=2)  # = nn.LSTM(bidirectional=True) on the packed batch
    """
    if lengths is None:
        return torch.flip(x, dims=[1])
    steps = x.shape[1]
    positions = torch.arange(steps, device=x.device)[None, :]  # (1, T)
    lengths = lengths.to(x.device)[:, None]  # (B, 1)
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)  # (B, T)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


def masked_mean(outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid steps: (B, T, C), (B, T) -> (B, C)."""
    weights = mask.to(outputs.dtype).unsqueeze(-1)  # (B, T, 1)
    total = (outputs * weights).sum(dim=1)  # (B, C)
    return total / weights.sum(dim=1).clamp_min(1.0)


class AdditiveAttention(nn.Module):
    """Additive (Bahdanau) attention pooling over time.

    .. math::
        e_t = v^\\top \\tanh(W o_t + b), \\qquad
        \\alpha = \\mathrm{softmax}_{t \\in \\text{valid}}(e), \\qquad
        s = \\sum_t \\alpha_t o_t

    Padded steps get weight exactly zero. The weights of the last call are
    kept in :attr:`last_weights` (B, T) for plotting.
    """

    def __init__(self, features: int, attention_size: int | None = None):
        super().__init__()
        attention_size = attention_size or features
        self.project = nn.Linear(features, attention_size)
        self.score = nn.Linear(attention_size, 1, bias=False)
        self.last_weights: torch.Tensor | None = None

    def forward(self, outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        energy = self.score(torch.tanh(self.project(outputs))).squeeze(-1)  # (B, T)
        energy = energy.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(energy, dim=1)  # (B, T), zero where masked
        self.last_weights = weights.detach()
        return torch.bmm(weights.unsqueeze(1), outputs).squeeze(1)  # (B, C)
