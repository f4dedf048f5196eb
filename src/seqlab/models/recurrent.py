"""RNN, GRU and LSTM sequence models: a recurrent encoder plus a head.

Symbols used in shape comments:
    B batch, T time steps, F input features, H hidden size,
    p steps grouped into one recurrent step (``patch``), T' = ceil(T / p),
    P output width of one direction (H, or proj_size for a projected LSTM),
    D directions (1 or 2), L layers, C outputs (classes or targets).

The recurrences are PyTorch's (``torch.nn.RNN/GRU/LSTM``), so parameter
names and shapes are ``weight_ih_l{k}[_reverse]`` etc. and a state_dict
moves to and from ``torch.nn`` unchanged; the GRU also comes reset-before
(``reset_after=False``, :mod:`seqlab.models.reset_before`), with the same
parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlab.kernels import dispatch
from seqlab.models.pooling import AdditiveAttention, masked_mean, step_mask
from seqlab.models.registry import register_model
from seqlab.models.reset_before import ResetBeforeGRU
from seqlab.options import check

RNN_CLASSES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
BACKENDS = ("torch", "fast")
MERGES = ("concat", "sum")
NO_FAST_RESET_BEFORE = "backend 'fast' has no reset-before GRU (reset_after: false); use backend 'torch'"
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class RecurrentEncoder(nn.Module):
    """A stack of RNN, GRU or LSTM layers over batch-first input (B, T, F).

    Variable-length batches are packed, so padding never enters the
    recurrence, and the final state of each direction is taken at the right
    step: the forward direction's after step ``length - 1``, the backward
    direction's after step 0 (having read the whole sequence). An unbatched
    sequence (T, F) is read as a batch of one and returned without the batch
    axis, as ``torch.nn`` does.

    Args:
        mode: ``rnn``, ``gru`` or ``lstm``.
        input_size: F.
        hidden_size: H.
        num_layers: L.
        dropout: dropout between stacked layers (ignored when L = 1).
        bidirectional: run a second, reversed recurrence (D = 2).
        nonlinearity: ``tanh`` or ``relu`` (``rnn`` only).
        proj_size: LSTM output projection P < H (0: none).
        backend: ``torch`` (``torch.nn``'s kernels) or ``fast`` (seqlab's
            compiled CPU loops, :mod:`seqlab.kernels`; float32 on CPU with
            biases and without proj_size, anything else runs on ``torch``).
            Both use the same parameters, so the backend can be switched on a
            trained model. The fast loops have no reset-before GRU: that
            combination is refused.
        bias: the b_ih and b_hh biases (False: none, as ``torch.nn``'s ``bias``).
        merge: how a bidirectional encoder joins its directions: ``concat``
            (D*P features) or ``sum`` (P features, forward + backward).
        reset_after: GRU only: True applies the reset gate after the
            recurrent product (PyTorch), False before it (Cho et al. 2014).

    Shapes:
        ``forward(x (B, T, F) or (T, F), lengths (B,) | None, state | None)``
        returns ``outputs (B, T, M)`` (zero on padded steps; M = D*P, or P for
        ``merge="sum"``), ``final (B, M)`` (the top layer's final states, the
        directions merged) and the full ``state`` (``h_n (D*L, B, P)``, plus
        ``c_n (D*L, B, H)`` for LSTM).
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        nonlinearity: str = "tanh",
        proj_size: int = 0,
        backend: str = "torch",
        bias: bool = True,
        merge: str = "concat",
        reset_after: bool = True,
    ):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"expected backend in {BACKENDS}, got {backend!r}")
        if mode not in RNN_CLASSES:
            raise ValueError(f"expected mode in {list(RNN_CLASSES)}, got {mode!r}")
        if merge not in MERGES:
            raise ValueError(f"expected merge in {MERGES}, got {merge!r}")
        if not reset_after and mode != "gru":
            raise ValueError(f"reset_after=False is a GRU option, got mode {mode!r}")
        if not reset_after and backend == "fast":
            raise ValueError(NO_FAST_RESET_BEFORE)
        kwargs = dict(
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bias=bias,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
            batch_first=True,
        )
        if mode == "rnn":
            kwargs["nonlinearity"] = nonlinearity
        if mode == "lstm" and proj_size:
            kwargs["proj_size"] = proj_size
        self.mode = mode
        self.backend = backend
        self.input_size = input_size
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        self.merge = merge
        self.reset_after = reset_after
        self.step_size = proj_size if (mode == "lstm" and proj_size) else hidden_size  # P
        self.output_size = self.step_size if merge == "sum" else self.num_directions * self.step_size  # M
        self.rnn = RNN_CLASSES[mode](**kwargs) if reset_after else ResetBeforeGRU(**kwargs)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None, state: State | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        if x.dim() == 2 and lengths is None:  # unbatched (T, F), as torch.nn takes it; states (D*L, P)
            check_unbatched(x, self.input_size)
            outputs, final, state = self(x.unsqueeze(0), None, _map_state(state, lambda s: s.unsqueeze(1)))
            return outputs[0], final[0], _map_state(state, lambda s: s[:, 0])  # (T, M), (M,)
        dispatch.check_sequence(x, lengths, self.input_size)
        batch, steps, _ = x.shape
        if self.backend == "fast" and not self.reset_after:  # switched after construction (seqlab profile)
            raise ValueError(NO_FAST_RESET_BEFORE)
        if self.backend == "fast" and dispatch.supports(self.rnn, x) is None:
            outputs, state = dispatch.fast_forward(self.rnn, x, lengths, state)  # (B, T, D*P)
        elif not self.reset_after:  # masks padded steps itself (and exports as ONNX GRU nodes)
            outputs, state = self.rnn.forward_padded(x, lengths, state)  # (B, T, D*H)
        elif lengths is None or int(lengths.min()) == steps:  # a full batch needs no packing
            outputs, state = self.rnn(x, state)  # (B, T, D*P)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_out, state = self.rnn(packed, state)
            outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=steps)  # (B, T, D*P)
        # The top layer's final states, read from the outputs (equal to h_n's, and exportable):
        # forward direction after the last valid step, backward direction after step 0.
        if lengths is None:
            last = outputs[:, -1, : self.step_size]  # (B, P)
        else:
            index = (lengths.to(outputs.device) - 1).view(-1, 1, 1).expand(-1, 1, self.step_size)
            last = outputs[:, :, : self.step_size].gather(1, index).squeeze(1)  # (B, P)
        if self.num_directions == 1:
            return outputs, last, state  # (B, T, P), (B, P)
        first = outputs[:, 0, self.step_size :]  # (B, P): the backward direction after reading everything
        if self.merge == "sum":
            outputs = outputs[:, :, : self.step_size] + outputs[:, :, self.step_size :]  # (B, T, P)
            return outputs, last + first, state
        return outputs, torch.cat([last, first], dim=1), state  # (B, T, D*P), (B, D*P)


def check_unbatched(x: torch.Tensor, input_size: int) -> None:
    if x.shape[1] != input_size:
        raise ValueError(f"expected input of shape (B, T, {input_size}) or (T, {input_size}), got {tuple(x.shape)}")


def _map_state(state: State | None, fn) -> State | None:
    """``fn`` applied to h_n, or to h_n and c_n of an LSTM state."""
    if state is None:
        return None
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


def group_steps(x: torch.Tensor, lengths: torch.Tensor | None, patch: int):
    """Put ``patch`` consecutive steps side by side as one step: (B, T, F) -> (B, T', p*F).

    The tail is zero-padded to a whole patch (padded steps of a batch are
    zero already, so a sequence gets the same patches alone or in any batch);
    ``lengths`` become ceil(length / p). ``patch`` 1 returns the input as is.
    """
    if patch == 1:
        return x, lengths
    batch, steps, features = x.shape
    x = nn.functional.pad(x, (0, 0, 0, (-steps) % patch))  # (B, T'*p, F)
    x = x.reshape(batch, -1, patch * features)  # (B, T', p*F)
    if lengths is not None:
        lengths = torch.div(lengths + (patch - 1), patch, rounding_mode="floor")  # (B,)
    return x, lengths


def use_torch_backend(model: nn.Module) -> nn.Module:
    """Switch every recurrent encoder in ``model`` to torch.nn's kernels, in place (the same parameters
    and, to 1e-5, the same numbers). Tracing and export need this: the fast backend's time loop runs
    outside torch's graph, so a traced copy of it would hold one input's results as constants."""
    for module in model.modules():
        if isinstance(module, RecurrentEncoder):
            module.backend = "torch"
    return model


class RecurrentModel(nn.Module):
    """A recurrent encoder followed by a head.

    Heads:
        ``last``: the final state of each direction (forward after the last
        valid step, backward after the first), concatenated: (B, D*P).
        ``mean``: the mean of the outputs over valid steps.
        ``attention``: additive attention over valid steps.
        ``step``: one output per time step, (B, T, C).

    ``patch`` p > 1 groups p consecutive steps into one recurrent step
    (:func:`group_steps`), so the recurrence reads T' = ceil(T / p) steps of
    p*F features: long series cost p times fewer sequential steps, and the
    gradient travels p times fewer steps back. Such a model reads whole
    windows (no streaming, no per-step head).

    ``forward(x (B, T, F), lengths (B,) | None) -> (B, C)``, or (B, T, C)
    for the ``step`` head; an unbatched x (T, F) gives (C,) or (T, C).
    """

    cell = "gru"

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        head: str = "last",
        head_dropout: float = 0.0,
        nonlinearity: str = "tanh",
        proj_size: int = 0,
        backend: str = "torch",
        bias: bool = True,
        merge: str = "concat",
        reset_after: bool = True,
        patch: int | str = 1,
    ):
        super().__init__()
        self.patch = 1 if patch == "auto" else int(patch)  # "auto" is the classification recipe's to resolve
        if self.patch > 1 and head == "step":
            raise ValueError(f"head 'step' gives one output per time step; patch {self.patch} groups steps")
        if self.patch > 1:
            self.cannot_stream = (f"it groups {self.patch} steps into one recurrent step (model.patch="
                                  f"{self.patch}); train with --set model.patch=1 to stream")
        self.encoder = RecurrentEncoder(
            self.cell, input_size * self.patch, hidden_size, num_layers, dropout, bidirectional, nonlinearity,
            proj_size, backend, bias, merge, reset_after,
        )
        features = self.encoder.output_size  # M: D*P, or P for merge="sum"
        self.head = head
        self.attention = AdditiveAttention(features) if head == "attention" else None
        self.dropout = nn.Dropout(head_dropout)
        self.fc = nn.Linear(features, output_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() == 2 and lengths is None:  # unbatched (T, F)
            check_unbatched(x, self.encoder.input_size // self.patch)
            return self(x.unsqueeze(0))[0]  # (C,) or (T, C)
        x, lengths = group_steps(x, lengths, self.patch)  # (B, T', p*F)
        outputs, final, _ = self.encoder(x, lengths)  # (B, T', M), (B, M)
        if self.head == "step":
            return self.fc(self.dropout(outputs))  # (B, T, C)
        if self.head == "last":
            pooled = final
        else:
            mask = step_mask(lengths, x.shape[0], x.shape[1], x.device)  # (B, T)
            pooled = masked_mean(outputs, mask) if self.head == "mean" else self.attention(outputs, mask)
        return self.fc(self.dropout(pooled))  # (B, C)

    def forward_stateful(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Per-step outputs with the recurrent state carried in and out (one direction only).

        ``x (B, T, F)``, ``state`` from a previous call or None ->
        ``(B, T, C)`` and the new state. Feeding a sequence in pieces gives
        the same outputs as feeding it whole.
        """
        if self.encoder.num_directions != 1:
            raise ValueError("forward_stateful needs a unidirectional model; a bidirectional one reads ahead")
        if self.patch > 1:
            raise ValueError(f"forward_stateful reads one step at a time; this model groups {self.patch} steps")
        outputs, _, state = self.encoder(x, None, state)  # (B, T, P)
        return self.fc(self.dropout(outputs)), state  # (B, T, C)


class RNNModel(RecurrentModel):
    """Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""

    cell = "rnn"


class GRUModel(RecurrentModel):
    """GRU (gate order r, z, n; h_t = (1 - z) * n + z * h_{t-1}); the candidate
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), or with ``reset_after=False``
    n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)."""

    cell = "gru"


class LSTMModel(RecurrentModel):
    """LSTM (gate order i, f, g, o; optional output projection)."""

    cell = "lstm"


@dataclass
class RecurrentOptions:
    """Options shared by the ``rnn``, ``gru`` and ``lstm`` models.

    Attributes:
        hidden_size: H, the width of the recurrent state.
        num_layers: stacked recurrent layers.
        dropout: dropout between stacked layers.
        bidirectional: read the sequence both ways; the head sees both.
        head: ``last``, ``mean``, ``attention`` or ``step``.
        head_dropout: dropout before the output layer.
        backend: ``torch`` or ``fast`` (seqlab's compiled CPU recurrence).
        bias: the recurrent layers' biases b_ih and b_hh (false: none).
        merge: ``concat`` or ``sum`` of the two directions (bidirectional only).
        patch: consecutive steps read as one recurrent step (1: every step
            on its own); ``auto``: chosen by the classification recipe from
            the training length (:func:`seqlab.training.recipe.auto_patch`),
            1 for other tasks.
    """

    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0
    bidirectional: bool = False
    head: Literal["last", "mean", "attention", "step"] = "last"
    head_dropout: float = 0.0
    backend: Literal["torch", "fast"] = "torch"
    bias: bool = True
    merge: Literal["concat", "sum"] = "concat"
    patch: int | Literal["auto"] = "auto"

    def validate(self) -> None:
        check(self.hidden_size >= 1, "model.hidden_size", "a positive integer", self.hidden_size)
        check(self.patch == "auto" or self.patch >= 1, "model.patch", "auto or an integer >= 1", self.patch)
        check(self.patch in ("auto", 1) or self.head != "step", "model.patch",
              "1 or auto with head 'step' (one output per time step)", self.patch)
        check(self.num_layers >= 1, "model.num_layers", "a positive integer", self.num_layers)
        check(0.0 <= self.dropout < 1.0, "model.dropout", "a probability in [0, 1)", self.dropout)
        check(0.0 <= self.head_dropout < 1.0, "model.head_dropout", "a probability in [0, 1)", self.head_dropout)
        check(self.merge == "concat" or self.bidirectional, "model.merge",
              "concat for a unidirectional model (sum joins two directions)", self.merge)


@dataclass
class GRUOptions(RecurrentOptions):
    """Attributes: reset_after: true applies the reset gate after the recurrent
    product (PyTorch, ONNX linear_before_reset=1), false before it (Cho et al.
    2014, d2l, Keras reset_after=False; ONNX linear_before_reset=0)."""

    reset_after: bool = True

    def validate(self) -> None:
        super().validate()
        check(self.reset_after or self.backend == "torch", "model.reset_after",
              "true with backend fast (the fast loops have no reset-before GRU; use backend torch)", self.reset_after)


@dataclass
class RNNOptions(RecurrentOptions):
    """Attributes: nonlinearity: ``tanh`` or ``relu``."""

    nonlinearity: Literal["tanh", "relu"] = "tanh"


@dataclass
class LSTMOptions(RecurrentOptions):
    """Attributes: proj_size: LSTM output projection P (0: none; else 0 < P < H)."""

    proj_size: int = 0

    def validate(self) -> None:
        super().validate()
        ok = self.proj_size == 0 or 0 < self.proj_size < self.hidden_size
        check(ok, "model.proj_size", f"0 or an integer in 1..{self.hidden_size - 1}", self.proj_size)


_ALL = ("classification", "forecast", "lm")
_BIDIRECTIONAL = ("classification", "forecast")  # no next-step prediction when reading ahead
register_model("rnn", RNNModel, RNNOptions, _ALL, "Elman RNN (tanh or relu)", streamable=True, ncnn=True)
register_model("gru", GRUModel, GRUOptions, _ALL, "gated recurrent unit (reset_after: false for Cho et al.'s)",
               streamable=True, ncnn=True)
register_model("lstm", LSTMModel, LSTMOptions, _ALL, "long short-term memory, optional proj_size", streamable=True,
               ncnn=True)
register_model("bigru", GRUModel, GRUOptions, _BIDIRECTIONAL, "bidirectional GRU", ncnn=True, bidirectional=True)
register_model("bilstm", LSTMModel, LSTMOptions, _BIDIRECTIONAL, "bidirectional LSTM", ncnn=True, bidirectional=True)
