"""The reset-before GRU (Cho et al. 2014; d2l; Keras ``reset_after=False``) as a torch module.

PyTorch's GRU applies the reset gate after the recurrent product,
``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``; the original GRU applies
it before, to the state the product reads:

    r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n  = tanh(W_in x + b_in + W_hn (r * h) + b_hn)
    h' = (1 - z) * n + z * h

Once h is not zero the two are different models, not two conventions of
one. :class:`ResetBeforeGRU` has ``torch.nn.GRU``'s constructor, call,
parameter names and shapes (``weight_ih_l{k}[_reverse]`` (3H, F), gate
order r, z, n), so a state_dict moves between them unchanged; only the
candidate differs. It runs the time loop in Python (autograd differentiates
it), reads a ``PackedSequence`` as ``nn.GRU`` does, and exports to ONNX as
the ``GRU`` operator with ``linear_before_reset=0`` (:mod:`seqlab.export.graph`).

Symbols: B batch, T time steps, F input features, H hidden size,
D directions, L layers.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


def reset_before_cell(x: torch.Tensor, h: torch.Tensor, w_ih, w_hh, b_ih=None, b_hh=None) -> torch.Tensor:
    """One step: x (B, F), h (B, H) -> h' (B, H), the equations of the module docstring."""
    hidden = h.shape[-1]
    gi = nn.functional.linear(x, w_ih, b_ih)  # (B, 3H)
    gh = nn.functional.linear(h, w_hh[: 2 * hidden], None if b_hh is None else b_hh[: 2 * hidden])  # (B, 2H)
    r, z = torch.sigmoid(gi[:, : 2 * hidden] + gh).chunk(2, dim=1)  # (B, H) each
    hn = nn.functional.linear(r * h, w_hh[2 * hidden :], None if b_hh is None else b_hh[2 * hidden :])  # (B, H)
    n = torch.tanh(gi[:, 2 * hidden :] + hn)
    return n + z * (h - n)  # (1 - z) * n + z * h


class ResetBeforeGRU(nn.RNNBase):
    """``torch.nn.GRU`` with the reset gate applied before the recurrent product (see the module docstring).

    Args: as ``torch.nn.GRU`` (input_size, hidden_size, num_layers, bias,
    batch_first, dropout, bidirectional). Init U(-1/sqrt(H), 1/sqrt(H)).

    Shapes: ``forward(input (B, T, F) batch-first, (T, B, F), unbatched
    (T, F) or a PackedSequence, h0 (D*L, B, H) | None)`` returns
    ``output (..., D*H)`` (packed if the input was) and ``h_n (D*L, B, H)``.
    """

    reset_after = False

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)

    def forward(self, input, hx: torch.Tensor | None = None):
        packed = isinstance(input, PackedSequence)
        unbatched = not packed and input.dim() == 2
        if packed:
            x, lengths = pad_packed_sequence(input, batch_first=True)  # (B, T, F), the caller's row order
        elif unbatched:
            x, lengths = input.unsqueeze(0), None  # (1, T, F)
            hx = None if hx is None else hx.unsqueeze(1)
        else:
            x, lengths = (input if self.batch_first else input.transpose(0, 1)), None  # (B, T, F)
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"expected input of shape (B, T, {self.input_size}), got {tuple(input.shape)}")
        output, h_n = self._run(x, lengths, hx)  # (B, T, D*H), (D*L, B, H)
        if packed:
            return pack_padded_sequence(output, lengths, batch_first=True, enforce_sorted=False), h_n
        if unbatched:
            return output[0], h_n[:, 0]
        return (output if self.batch_first else output.transpose(0, 1)), h_n

    def _run(self, x: torch.Tensor, lengths: torch.Tensor | None, hx: torch.Tensor | None):
        batch, steps, _ = x.shape
        directions = 2 if self.bidirectional else 1
        if hx is None:
            hx = x.new_zeros(self.num_layers * directions, batch, self.hidden_size)
        valid = None if lengths is None else \
            (torch.arange(steps)[None, :] < lengths.cpu()[:, None]).to(x.device)[:, :, None]  # (B, T, 1)
        layer_input, h_n = x, []
        for layer in range(self.num_layers):
            if layer and self.dropout and self.training:
                layer_input = nn.functional.dropout(layer_input, self.dropout, training=True)
            outputs = []
            for direction in range(directions):
                s = f"_l{layer}" + ("_reverse" if direction else "")
                weights = (getattr(self, f"weight_ih{s}"), getattr(self, f"weight_hh{s}"),
                           getattr(self, f"bias_ih{s}", None), getattr(self, f"bias_hh{s}", None))
                h = hx[layer * directions + direction]  # (B, H)
                out: list = [None] * steps
                for t in (range(steps - 1, -1, -1) if direction else range(steps)):
                    h_new = reset_before_cell(layer_input[:, t], h, *weights)  # (B, H)
                    if valid is None:
                        h = out[t] = h_new
                    else:  # padded steps leave the state untouched and output zero
                        out[t] = h_new * valid[:, t]
                        h = torch.where(valid[:, t], h_new, h)
                outputs.append(torch.stack(out, dim=1))  # (B, T, H)
                h_n.append(h)
            layer_input = torch.cat(outputs, dim=2)  # (B, T, D*H)
        return layer_input, torch.stack(h_n)  # (B, T, D*H), (D*L, B, H)
