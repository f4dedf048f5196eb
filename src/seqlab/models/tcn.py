"""Temporal convolutional network (Bai, Kolter and Koltun, 2018): the convolutional rival.

Residual blocks of two dilated causal convolutions (dilation 1, 2, 4, ...);
the output at step t sees inputs up to t only, so the last valid step of
each sequence summarises it, padding after it included. Symbols: B batch,
T steps, F features, K kernel size, L levels, C classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqlab.models.registry import register_model
from seqlab.options import check


def receptive_field(kernel_size: int, levels: int) -> int:
    """Steps one output sees: 1 + 2 (K - 1)(2^L - 1) (two convolutions per level)."""
    return 1 + 2 * (kernel_size - 1) * (2**levels - 1)


class CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left only, so output t depends on inputs <= t."""

    def __init__(self, channels_in: int, channels_out: int, kernel_size: int, dilation: int):
        super().__init__(channels_in, channels_out, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(nn.functional.pad(x, (self.left, 0)))  # (B, C, T)


class TemporalBlock(nn.Module):
    def __init__(self, channels_in: int, channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            CausalConv1d(channels_in, channels, kernel_size, dilation), nn.ReLU(), nn.Dropout(dropout),
            CausalConv1d(channels, channels, kernel_size, dilation), nn.ReLU(), nn.Dropout(dropout),
        )
        self.skip = nn.Conv1d(channels_in, channels, 1) if channels_in != channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.net(x) + self.skip(x))  # (B, channels, T)


class TCN(nn.Module):
    """Stacked temporal blocks, then a linear layer on the last valid step.

    ``receptive_field`` (an attribute) is how many past steps the output sees.
    """

    def __init__(self, input_size: int, output_size: int, channels: int = 64, levels: int = 4,
                 kernel_size: int = 3, dropout: float = 0.1):
        super().__init__()
        blocks = [TemporalBlock(input_size if i == 0 else channels, channels, kernel_size, 2**i, dropout)
                  for i in range(levels)]
        self.network = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, output_size)
        self.receptive_field = receptive_field(kernel_size, levels)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        features = self.network(x.transpose(1, 2))  # (B, channels, T)
        if lengths is None:
            last = features[:, :, -1]  # (B, channels)
        else:
            index = (lengths.to(x.device) - 1).view(-1, 1, 1).expand(-1, features.shape[1], 1)
            last = features.gather(2, index).squeeze(2)  # (B, channels): causal, padding unseen
        return self.fc(last)  # (B, C)


@dataclass
class TCNOptions:
    """Attributes: channels per block, levels (dilations 1..2^(L-1)),
    kernel_size, dropout. Receptive field = 1 + 2 (K - 1)(2^L - 1)."""

    channels: int = 64
    levels: int = 4
    kernel_size: int = 3
    dropout: float = 0.1

    def validate(self) -> None:
        for key in ("channels", "levels"):
            check(getattr(self, key) >= 1, f"model.{key}", "a positive integer", getattr(self, key))
        check(self.kernel_size >= 2, "model.kernel_size", "an integer >= 2", self.kernel_size)
        check(0.0 <= self.dropout < 1.0, "model.dropout", "a probability in [0, 1)", self.dropout)


register_model("tcn", TCN, TCNOptions, ("classification",),
               f"temporal convolutional network (dilated causal; receptive field {receptive_field(3, 4)} steps "
               "at the defaults)")
