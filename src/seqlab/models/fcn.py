"""The LSTM-FCN family: a fully convolutional branch beside a recurrent branch, for time-series classification.

LSTM-FCN and ALSTM-FCN (Karim et al. 2017), MLSTM-FCN (Karim et al. 2019),
GRU-FCN (Elsayed et al. 2018). Symbols: B batch, T time steps, F features
(variables), K filters of a convolution block, H hidden size, C classes.
All models map (B, T, F) with optional lengths (B,) to logits (B, C); padded
steps never change a sequence's output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from seqlab.errors import SeqlabError
from seqlab.models.pooling import AdditiveAttention, masked_mean, step_mask
from seqlab.models.recurrent import RecurrentEncoder
from seqlab.models.registry import register_model
from seqlab.options import check

# The FCN of Wang et al. (2017) that every member of the family keeps: (filters, kernel) per block.
FCN_BLOCKS = ((128, 8), (256, 5), (128, 3))


def masked_batch_norm(norm: nn.BatchNorm1d, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Batch norm whose training statistics come from valid steps only: (B, K, T), (B, T) -> (B, K, T).

    In evaluation the norm is a per-channel affine map, so padding cannot reach
    a valid step and the whole tensor goes through (as it does in an export).
    """
    if mask is None or not norm.training:
        return norm(x)
    steps = x.transpose(1, 2)  # (B, T, K)
    normed = torch.zeros_like(steps)
    normed[mask] = norm(steps[mask])  # (N_valid, K): the statistics of the valid steps
    return normed.transpose(1, 2)  # (B, K, T), zero on padding


class ConvBlock(nn.Module):
    """Conv1d ('same' length, no bias: the batch norm's shift replaces it), batch norm, ReLU.

    The kernel is padded like Keras's ``padding="same"`` (k - 1 zeros split,
    the extra one on the right), and padded steps are zero again on the way
    out, so the next block sees what a lone sequence would see past its end.
    """

    def __init__(self, channels_in: int, filters: int, kernel_size: int):
        super().__init__()
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv = nn.Conv1d(channels_in, filters, kernel_size, bias=False)
        self.norm = nn.BatchNorm1d(filters)
        nn.init.kaiming_uniform_(self.conv.weight, nonlinearity="relu")  # He uniform, as the papers

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        z = self.conv(nn.functional.pad(x, self.pad))  # (B, K, T)
        z = torch.relu(masked_batch_norm(self.norm, z, mask))
        return z if mask is None else z * mask[:, None, :].to(z.dtype)  # (B, K, T)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018) over valid steps, as MLSTM-FCN places it after blocks 1 and 2.

    .. math::
        s = \\frac{1}{|valid|}\\sum_{t\\ valid} x_t, \\quad
        e = \\sigma(W_2\\,\\mathrm{ReLU}(W_1 s + b_1) + b_2), \\quad
        y_t = e \\odot x_t

    ``W_1 (K / r, K)``, ``W_2 (K, K / r)``; r is the reduction (16).
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.squeeze = nn.Linear(channels, max(1, channels // reduction))
        self.excite = nn.Linear(max(1, channels // reduction), channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s = masked_mean(x.transpose(1, 2), mask)  # (B, K)
        e = torch.sigmoid(self.excite(torch.relu(self.squeeze(s))))  # (B, K)
        return x * e[:, :, None]  # (B, K, T)


class RecurrentFCN(nn.Module):
    """An FCN branch and a recurrent branch on the same input, concatenated into a linear classifier.

    FCN branch: three :class:`ConvBlock` of 128, 256 and 128 filters (kernels
    8, 5, 3) along time, squeeze-excite after the first two if
    ``squeeze_excite``, then the mean over valid steps (global average
    pooling): (B, 128). Recurrent branch: an LSTM or GRU of ``hidden_size``
    over time (packed, so padding never enters it), its last valid state or,
    with ``attention``, additive attention over its valid outputs; then
    dropout (``dropout``, 0.8 in the papers): (B, H). ``Linear(128 + H, C)``
    on the concatenation.

    ``dimension_shuffle`` (the papers' default for univariate data): the
    recurrent branch reads the transposed input, F steps of T values each, so
    a univariate series is one step of T features. Its input width is then
    the length, so the model reads exactly ``steps`` (T) steps, fixed-length
    data only; the FCN branch is unchanged.
    """

    cannot_stream = ("its FCN branch pools over the whole sequence (centred, non-causal convolutions and a global "
                     "average), so no output exists before the last frame")

    def __init__(self, input_size: int, output_size: int, steps: int, cell: str = "lstm", hidden_size: int = 64,
                 dropout: float = 0.8, attention: bool = False, squeeze_excite: bool = False,
                 dimension_shuffle: bool = False, backend: str = "torch"):
        super().__init__()
        self.steps = steps
        self.dimension_shuffle = dimension_shuffle
        widths = [input_size] + [filters for filters, _ in FCN_BLOCKS]
        self.blocks = nn.ModuleList(ConvBlock(widths[i], filters, kernel)
                                    for i, (filters, kernel) in enumerate(FCN_BLOCKS))
        self.excite = nn.ModuleList(SqueezeExcite(filters) for filters, _ in FCN_BLOCKS[:2]) if squeeze_excite else None
        self.rnn = RecurrentEncoder(cell, steps if dimension_shuffle else input_size, hidden_size, backend=backend)
        self.attention = AdditiveAttention(hidden_size) if attention else None
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(FCN_BLOCKS[-1][0] + hidden_size, output_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        batch, steps, _ = x.shape
        if self.dimension_shuffle and lengths is not None and int(lengths.min()) < self.steps:
            raise SeqlabError(f"model.dimension_shuffle: the recurrent branch reads each variable's {self.steps} "
                              f"values as one step's features, so every sequence needs exactly {self.steps} steps; "
                              f"got lengths {int(lengths.min())}..{int(lengths.max())} (variable-length data needs "
                              "dimension_shuffle: false)")
        if self.dimension_shuffle and steps != self.steps:
            raise ValueError(f"expected input of shape (B, {self.steps}, F): with dimension_shuffle the recurrent "
                             f"branch's input width is the length {self.steps}; got {tuple(x.shape)}")
        valid = step_mask(lengths, batch, steps, x.device)  # (B, T)
        mask = None if lengths is None else valid  # None: no padding to keep out
        z = x.transpose(1, 2)  # (B, F, T)
        if mask is not None:
            z = z * mask[:, None, :].to(z.dtype)  # padding reads as the zeros past a lone sequence's end
        for i, block in enumerate(self.blocks):
            z = block(z, mask)  # (B, K_i, T)
            if self.excite is not None and i < len(self.excite):
                z = self.excite[i](z, valid)  # (B, K_i, T)
        fcn = masked_mean(z.transpose(1, 2), valid)  # (B, 128): global average pooling over valid steps
        return self.fc(torch.cat([fcn, self.dropout(self.recurrent(x, lengths))], dim=1))  # (B, C)

    def recurrent(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """The recurrent branch before its dropout: (B, T, F), lengths -> (B, H)."""
        if self.dimension_shuffle:  # every sequence is whole here (checked in forward)
            x, lengths = x.transpose(1, 2), None  # (B, F, T): F steps of T features
        outputs, final, _ = self.rnn(x, lengths)  # (B, T', H), (B, H)
        if self.attention is None:
            return final
        mask = step_mask(lengths, outputs.shape[0], outputs.shape[1], x.device)  # (B, T')
        return self.attention(outputs, mask)  # (B, H)

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T') attention over the recurrent branch's steps; rows sum to 1 over valid steps."""
        if self.attention is None:
            raise ValueError("attention_weights needs a model built with attention=True")
        self.eval()
        self(x, lengths)
        return self.attention.last_weights


@dataclass
class FCNOptions:
    """Options of ``lstm-fcn`` and ``gru-fcn``.

    Attributes:
        cell: ``lstm`` or ``gru``, the recurrent branch.
        hidden_size: H, its width (the papers searched 8, 64 and 128 cells).
        dropout: dropout on the recurrent branch's features (0.8 in the papers).
        attention: ALSTM-FCN: additive attention over the recurrent outputs instead of the last state.
        squeeze_excite: MLSTM-FCN: squeeze-and-excitation after the first two convolution blocks.
        dimension_shuffle: the recurrent branch reads F steps of T values (fixed-length data only).
        backend: ``torch`` or ``fast`` (seqlab's compiled CPU recurrence).
    """

    cell: Literal["lstm", "gru"] = "lstm"
    hidden_size: int = 64
    dropout: float = 0.8
    attention: bool = False
    squeeze_excite: bool = False
    dimension_shuffle: bool = False
    backend: Literal["torch", "fast"] = "torch"

    def validate(self) -> None:
        check(self.hidden_size >= 1, "model.hidden_size", "a positive integer", self.hidden_size)
        check(0.0 <= self.dropout < 1.0, "model.dropout", "a probability in [0, 1)", self.dropout)


_SEQ = ("classification",)


def _shuffled(options) -> bool:
    """With dimension_shuffle the recurrent branch reads F steps of T values: T is its input width."""
    return options["dimension_shuffle"]


register_model("lstm-fcn", RecurrentFCN, FCNOptions, _SEQ,
               "LSTM-FCN (Karim et al.): FCN 128/256/128 beside an LSTM; attention, squeeze_excite, "
               "dimension_shuffle", needs_steps=True, fixed_length=_shuffled)
register_model("gru-fcn", RecurrentFCN, FCNOptions, _SEQ,
               "GRU-FCN (Elsayed et al.): FCN 128/256/128 beside a GRU", needs_steps=True, fixed_length=_shuffled,
               preset={"cell": "gru"})
