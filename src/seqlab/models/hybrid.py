"""CNN + recurrent hybrids for sensing data (WiFi CSI, EEG): serial, parallel, 1D-CNN + RNN.

Symbols: B batch, T time steps, F features (90 CSI amplitudes = 3 antennas x
30 subcarriers for UT-HAR; EEG channels for DEAP), H hidden size, C classes.
All models map (B, T, F) with optional lengths (B,) to logits (B, C).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from seqlab.models.pooling import step_mask
from seqlab.models.recurrent import RecurrentEncoder, RecurrentModel, RecurrentOptions
from seqlab.models.registry import register_model
from seqlab.options import check

# SenseFi's UT_HAR_CNN_GRU convolutions: (kernel, stride), 90 features -> 27 -> 12 -> 8.
SENSEFI_CONVS = ((12, 3), (5, 2), (5, 1))


def conv_length(length, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1):
    """Output length of a 1-D convolution or pooling (works on ints and tensors)."""
    return (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def fitted_convs(length: int, schedule=SENSEFI_CONVS) -> list[tuple[int, int]]:
    """The schedule, with kernels shrunk (stride 1) where the input is too short for them."""
    convs = []
    for kernel, stride in schedule:
        if length < kernel:
            kernel, stride = max(1, length), 1
        convs.append((kernel, stride))
        length = conv_length(length, kernel, stride)
    return convs


def minimum_length(convs: list[tuple[int, int]]) -> int:
    """Shortest input that leaves at least one output after ``convs``."""
    length = 1
    for kernel, stride in reversed(convs):
        length = (length - 1) * stride + kernel
    return length


def pad_steps(x: torch.Tensor, lengths: torch.Tensor | None, steps: int) -> torch.Tensor:
    """A variable-length batch cut to its longest sequence (B, T < steps, F) -> (B, steps, F), the
    steps after T zero as the data's padding is; convolutions that read the time steps as channels
    need all of them. Without lengths x is returned as it is."""
    if lengths is None or x.shape[1] >= steps:
        return x
    return nn.functional.pad(x, (0, 0, 0, steps - x.shape[1]))


def conv_stack(channels_in: int, channels: int, convs: list[tuple[int, int]]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (kernel, stride) in enumerate(convs):
        layers.append(nn.Conv1d(channels_in if i == 0 else channels, channels, kernel, stride))
        if i < len(convs) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class CNNGRU(nn.Module):
    """SenseFi's serial CNN-GRU, generalised to any T and F, without its double softmax.

    ``conv_axis="feature"`` (SenseFi): the T time steps are the channels of
    1-D convolutions along the F features (T -> T channels; kernels 12/3,
    5/2, 5/1), then a GRU reads the T channels as a sequence of F' values.
    ``conv_axis="time"``: convolutions along time with the F features as
    channels (``conv_channels`` out), then a GRU over the T' output steps;
    variable lengths are followed through the convolutions.
    The head is dropout + linear on the GRU's last state; logits, no softmax
    (cross-entropy applies it).
    """

    def __init__(self, input_size: int, output_size: int, steps: int, hidden_size: int = 128,
                 conv_axis: str = "feature", conv_channels: int = 64, dropout: float = 0.5, backend: str = "torch"):
        super().__init__()
        self.conv_axis = conv_axis
        if conv_axis == "feature":
            self.convs = fitted_convs(input_size)
            self.encoder = conv_stack(steps, steps, self.convs)  # (B, T, F) -> (B, T, F')
            gru_input = input_size
            for kernel, stride in self.convs:
                gru_input = conv_length(gru_input, kernel, stride)
        else:
            self.convs = fitted_convs(steps)
            self.encoder = conv_stack(input_size, conv_channels, self.convs)  # (B, F, T) -> (B, C', T')
            gru_input = conv_channels
        self.steps = steps
        self.min_steps = minimum_length(self.convs)
        self.gru = RecurrentEncoder("gru", gru_input, hidden_size, backend=backend)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, output_size))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if self.conv_axis == "feature":
            x = pad_steps(x, lengths, self.steps)
            if x.shape[1] != self.steps:
                raise ValueError(f"expected input of shape (B, {self.steps}, F): the feature-axis CNN-GRU "
                                 f"uses the {self.steps} time steps as channels; got {tuple(x.shape)}")
            features = self.encoder(x)  # (B, T, F'): T channels become the GRU's steps
            lengths = None
        else:
            if x.shape[1] < self.min_steps:
                raise ValueError(f"expected at least {self.min_steps} steps for the time-axis convolutions, "
                                 f"got {x.shape[1]}")
            features = self.encoder(x.transpose(1, 2)).transpose(1, 2)  # (B, T', C')
            if lengths is not None:
                for kernel, stride in self.convs:
                    lengths = conv_length(lengths, kernel, stride)
                lengths = lengths.clamp(1, features.shape[1])
        _, final, _ = self.gru(features, lengths)  # (B, H)
        return self.classifier(final)  # (B, C)


class CNNRecurrentParallel(nn.Module):
    """A CNN branch and a recurrent branch on the raw input, concatenated, then a classifier.

    Seed 000's parallel CNN-GRU. CNN branch: SenseFi's feature-axis
    convolutions (time steps as channels), ``Dropout(cnn_dropout)`` (0.5),
    flattened (T * F') and projected by ``Linear(T * F', cnn_features)``
    (2000 -> 100 on UT-HAR), with no activation after it. Recurrent branch:
    a ``num_layers`` (2) GRU or LSTM of ``hidden_size`` (80) over time, its
    final state. ``Linear(cnn_features + H, C)`` on the concatenation.
    """

    def __init__(self, input_size: int, output_size: int, steps: int, cell: str = "gru", hidden_size: int = 80,
                 num_layers: int = 2, cnn_features: int = 100, dropout: float = 0.0, cnn_dropout: float = 0.5,
                 backend: str = "torch"):
        super().__init__()
        self.steps = steps
        self.convs = fitted_convs(input_size)
        self.cnn = conv_stack(steps, steps, self.convs)
        width = input_size
        for kernel, stride in self.convs:
            width = conv_length(width, kernel, stride)
        self.cnn_dropout = nn.Dropout(cnn_dropout)
        self.project = nn.Sequential(nn.Flatten(), nn.Linear(steps * width, cnn_features))
        self.rnn = RecurrentEncoder(cell, input_size, hidden_size, num_layers, dropout, backend=backend)
        self.classifier = nn.Linear(cnn_features + hidden_size, output_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = pad_steps(x, lengths, self.steps)
        if x.shape[1] != self.steps:
            raise ValueError(f"expected input of shape (B, {self.steps}, F) for the CNN branch, got {tuple(x.shape)}")
        cnn = self.project(self.cnn_dropout(self.cnn(x)))  # (B, T, F') -> (B, cnn_features)
        _, final, _ = self.rnn(x, lengths)  # (B, H)
        return self.classifier(torch.cat([cnn, final], dim=1))  # (B, C)


class CNN1DRecurrent(nn.Module):
    """1-D CNN + LSTM/GRU (the DEAP paper's models), any T.

    Conv1d along time (F channels in, ``conv_channels`` out, ``kernel_size``,
    'same' padding) -> ReLU -> MaxPool(``pool``) -> recurrent layer -> the
    last valid state -> Dense(``dense``) -> ReLU -> Dropout -> Dense(C). The
    paper flattens the whole recurrent output, which ties the model to one
    length; the last state keeps it length-free. Lengths are followed
    through the pooling.
    """

    def __init__(self, input_size: int, output_size: int, cell: str = "lstm", conv_channels: int = 64,
                 kernel_size: int = 5, pool: int = 2, hidden_size: int = 64, dense: int = 64,
                 dropout: float = 0.3, backend: str = "torch"):
        super().__init__()
        self.pool = pool
        self.conv = nn.Sequential(nn.Conv1d(input_size, conv_channels, kernel_size, padding=kernel_size // 2), nn.ReLU())
        self.max_pool = nn.MaxPool1d(pool, ceil_mode=True)
        self.rnn = RecurrentEncoder(cell, conv_channels, hidden_size, backend=backend)
        self.head = nn.Sequential(nn.Linear(hidden_size, dense), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(dense, output_size))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        features = x.transpose(1, 2)  # (B, F, T)
        if lengths is not None:
            # Padding reads as the zeros a lone sequence's 'same' convolution sees past its end...
            valid = step_mask(lengths, x.shape[0], x.shape[1], x.device)[:, None, :]  # (B, 1, T)
            features = self.conv(features.masked_fill(~valid, 0.0))
            # ...and, after the ReLU (>= 0), 0 never wins a pool window holding a valid step.
            features = features.masked_fill(~valid, 0.0)
        else:
            features = self.conv(features)  # (B, conv_channels, T)
        features = self.max_pool(features).transpose(1, 2)  # (B, ceil(T / pool), conv_channels)
        if lengths is not None:
            lengths = ((lengths + self.pool - 1) // self.pool).clamp(1, features.shape[1])
        _, final, _ = self.rnn(features, lengths)  # (B, H)
        return self.head(final)  # (B, C)


class ABLSTM(RecurrentModel):
    """Attention-based BiLSTM (Chen et al., IEEE TMC 2019) for CSI activity recognition.

    A bidirectional LSTM over time; additive attention scores each step's
    2H-wide output, a softmax over the valid steps (padding gets weight 0)
    turns them into weights, and their weighted sum feeds the classifier.
    Works for any length, unlike a flatten over a fixed number of steps.
    """

    cell = "lstm"

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) attention over time steps for plotting; rows sum to 1 over valid steps."""
        self.eval()
        self(x, lengths)
        return self.attention.last_weights


@dataclass
class CNNGRUOptions:
    """Attributes: hidden_size; conv_axis ``feature`` (SenseFi) or ``time``;
    conv_channels (time axis only); dropout before the classifier; backend."""

    hidden_size: int = 128
    conv_axis: Literal["feature", "time"] = "feature"
    conv_channels: int = 64
    dropout: float = 0.5
    backend: Literal["torch", "fast"] = "torch"

    def validate(self) -> None:
        check(self.hidden_size >= 1, "model.hidden_size", "a positive integer", self.hidden_size)
        check(self.conv_channels >= 1, "model.conv_channels", "a positive integer", self.conv_channels)
        check(0.0 <= self.dropout < 1.0, "model.dropout", "a probability in [0, 1)", self.dropout)


@dataclass
class ParallelOptions:
    """Attributes: cell ``gru`` or ``lstm``; hidden_size and num_layers of the
    recurrent branch; cnn_features of the CNN branch; dropout between
    recurrent layers; cnn_dropout before the CNN branch's flatten."""

    cell: Literal["gru", "lstm"] = "gru"
    hidden_size: int = 80
    num_layers: int = 2
    cnn_features: int = 100
    dropout: float = 0.0
    cnn_dropout: float = 0.5
    backend: Literal["torch", "fast"] = "torch"

    def validate(self) -> None:
        check(self.hidden_size >= 1, "model.hidden_size", "a positive integer", self.hidden_size)
        check(self.num_layers >= 1, "model.num_layers", "a positive integer", self.num_layers)
        check(self.cnn_features >= 1, "model.cnn_features", "a positive integer", self.cnn_features)
        check(0.0 <= self.dropout < 1.0, "model.dropout", "a probability in [0, 1)", self.dropout)
        check(0.0 <= self.cnn_dropout < 1.0, "model.cnn_dropout", "a probability in [0, 1)", self.cnn_dropout)


@dataclass
class CNN1DOptions:
    """Attributes: cell ``lstm`` or ``gru``; conv_channels, kernel_size, pool;
    hidden_size of the recurrent layer; dense width; dropout before the output."""

    cell: Literal["lstm", "gru"] = "lstm"
    conv_channels: int = 64
    kernel_size: int = 5
    pool: int = 2
    hidden_size: int = 64
    dense: int = 64
    dropout: float = 0.3
    backend: Literal["torch", "fast"] = "torch"

    def validate(self) -> None:
        for key in ("conv_channels", "kernel_size", "pool", "hidden_size", "dense"):
            check(getattr(self, key) >= 1, f"model.{key}", "a positive integer", getattr(self, key))
        check(0.0 <= self.dropout < 1.0, "model.dropout", "a probability in [0, 1)", self.dropout)


@dataclass
class ABLSTMOptions(RecurrentOptions):
    """RecurrentOptions with ABLSTM's defaults: bidirectional, attention head, H = 200."""

    hidden_size: int = 200
    bidirectional: bool = True
    head: Literal["last", "mean", "attention", "step"] = "attention"

    def validate(self) -> None:
        super().validate()
        check(self.head == "attention", "model.head", "attention (ABLSTM is defined by it)", self.head)


_SEQ = ("classification",)
register_model("cnn-gru", CNNGRU, CNNGRUOptions, _SEQ,
               "serial CNN-GRU (SenseFi UT_HAR_CNN_GRU; conv_axis feature or time)", needs_steps=True,
               fixed_length=lambda options: options["conv_axis"] == "feature", ncnn=True)
register_model("cnn-gru-parallel", CNNRecurrentParallel, ParallelOptions, _SEQ,
               "parallel CNN and GRU branches, concatenated", needs_steps=True, fixed_length=lambda options: True)
register_model("cnn-lstm-parallel", CNNRecurrentParallel, ParallelOptions, _SEQ,
               "parallel CNN and LSTM branches, concatenated", needs_steps=True, fixed_length=lambda options: True,
               preset={"cell": "lstm"})
register_model("ablstm", ABLSTM, ABLSTMOptions, _SEQ, "attention-based BiLSTM (Chen et al. 2019)")
register_model("cnn1d-lstm", CNN1DRecurrent, CNN1DOptions, _SEQ, "1D-CNN + max-pool + LSTM + dense (DEAP)")
register_model("cnn1d-gru", CNN1DRecurrent, CNN1DOptions, _SEQ, "1D-CNN + max-pool + GRU + dense (DEAP)",
               preset={"cell": "gru"})
