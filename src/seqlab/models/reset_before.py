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
the ``GRU`` operator with ``linear_before_reset=0``.

Symbols: B batch, T time steps, F input features, H hidden size,
D directions, L layers.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from seqlab.recurrence.spec import CELLS, parameter_suffix

RESET_BEFORE = CELLS["gru_reset_before"]  # its equations and step: seqlab.recurrence.spec


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
        output, h_n = self.forward_padded(x, lengths, hx)  # (B, T, D*H), (D*L, B, H)
        if packed:
            return pack_padded_sequence(output, lengths, batch_first=True, enforce_sorted=False), h_n
        if unbatched:
            return output[0], h_n[:, 0]
        return (output if self.batch_first else output.transpose(0, 1)), h_n

    def forward_padded(self, x: torch.Tensor, lengths: torch.Tensor | None = None, hx: torch.Tensor | None = None):
        """A padded batch-first batch, no packing: x (B, T, F), lengths (B,) | None, h0 | None ->
        outputs (B, T, D*H) (zero past each length) and h_n (D*L, B, H) (each row's state after its
        last valid step). Inside ``torch.onnx.export`` each layer becomes one ONNX ``GRU`` node."""
        batch, steps, _ = x.shape
        directions = 2 if self.bidirectional else 1
        if torch.onnx.is_in_onnx_export():
            return self._onnx_layers(x, lengths, hx)
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
                s = parameter_suffix(layer, direction)
                weights = (getattr(self, f"weight_ih{s}"), getattr(self, f"weight_hh{s}"),
                           getattr(self, f"bias_ih{s}", None), getattr(self, f"bias_hh{s}", None))
                h = hx[layer * directions + direction]  # (B, H)
                out: list = [None] * steps
                for t in (range(steps - 1, -1, -1) if direction else range(steps)):
                    h_new, _ = RESET_BEFORE.step(layer_input[:, t], h, None, *weights)  # (B, H)
                    if valid is None:
                        h = out[t] = h_new
                    else:  # padded steps leave the state untouched and output zero
                        out[t] = h_new * valid[:, t]
                        h = torch.where(valid[:, t], h_new, h)
                outputs.append(torch.stack(out, dim=1))  # (B, T, H)
                h_n.append(h)
            layer_input = torch.cat(outputs, dim=2)  # (B, T, D*H)
        return layer_input, torch.stack(h_n)  # (B, T, D*H), (D*L, B, H)

    def _onnx_layers(self, x: torch.Tensor, lengths: torch.Tensor | None, hx: torch.Tensor | None):
        """The layers as ONNX GRU operators (linear_before_reset=0, gate order z, r, h): (B, T, D*H), h_n.
        Sizes come from tensor operations, not Python ints, so batch and time stay dynamic in the graph."""
        directions, hidden = (2 if self.bidirectional else 1), self.hidden_size
        if lengths is None:
            lengths = torch.ones_like(x[:, :, 0], dtype=torch.int32).sum(dim=1)  # (B,): T for every row
        lengths = lengths.to(torch.int32)
        if hx is None:
            hx = torch.zeros_like(x[:, 0, 0])[None, :, None].expand(self.num_layers * directions, -1, hidden)
        layer_input, h_n = x.transpose(0, 1), []  # (T, B, F)
        for layer in range(self.num_layers):
            w, r, b = [], [], []
            for direction in range(directions):
                s = parameter_suffix(layer, direction)
                w.append(_zrh(getattr(self, f"weight_ih{s}")))
                r.append(_zrh(getattr(self, f"weight_hh{s}")))
                biases = [getattr(self, f"bias_{k}{s}", None) for k in ("ih", "hh")]
                b.append(torch.cat([_zrh(v) if v is not None else w[-1].new_zeros(3 * hidden) for v in biases]))
            h0 = hx[layer * directions : (layer + 1) * directions]  # (D, B, H)
            y, y_h = OnnxGRU.apply(layer_input, lengths, h0, torch.stack(w), torch.stack(r), torch.stack(b),
                                   hidden, self.bidirectional)  # (T, D, B, H), (D, B, H)
            layer_input = y.permute(0, 2, 1, 3).flatten(2)  # (T, B, D*H)
            h_n.append(y_h)
        return layer_input.transpose(0, 1), torch.cat(h_n)  # (B, T, D*H), (D*L, B, H)


def _zrh(weight: torch.Tensor) -> torch.Tensor:
    """Rows in torch's gate order r, z, n -> ONNX's z, r, h."""
    r, z, n = weight.chunk(3, dim=0)
    return torch.cat([z, r, n])


class OnnxGRU(torch.autograd.Function):
    """The ONNX ``GRU`` operator with ``linear_before_reset=0``: one layer, both directions at once.

    Its eager forward computes what the operator specifies (ONNX's weight
    layout, gate order z, r, h; each sequence read to its own length, the
    reverse direction from its last valid step; zero outputs past it), so
    tracing sees the shapes and values the exported node will produce.
    Shapes: x (T, B, F), lengths (B,) int32, h0 (D, B, H), w (D, 3H, F),
    r (D, 3H, H), b (D, 6H) -> Y (T, D, B, H), Y_h (D, B, H).
    """

    @staticmethod
    def forward(ctx, x, lengths, h0, w, r, b, hidden: int, bidirectional: bool):
        steps = x.shape[0]
        valid = (torch.arange(steps, device=x.device)[:, None] < lengths.long()[None, :])[..., None]  # (T, B, 1)
        ys, finals = [], []
        for direction in range(2 if bidirectional else 1):
            w_z, w_r, w_h = w[direction].chunk(3)
            r_z, r_r, r_h = r[direction].chunk(3)
            wb_z, wb_r, wb_h, rb_z, rb_r, rb_h = b[direction].chunk(6)
            h, y = h0[direction], [None] * steps
            for t in (range(steps - 1, -1, -1) if direction else range(steps)):
                z = torch.sigmoid(x[t] @ w_z.T + wb_z + h @ r_z.T + rb_z)
                reset = torch.sigmoid(x[t] @ w_r.T + wb_r + h @ r_r.T + rb_r)
                candidate = torch.tanh(x[t] @ w_h.T + wb_h + (reset * h) @ r_h.T + rb_h)
                h_new = (1 - z) * candidate + z * h
                y[t] = h_new * valid[t]
                h = torch.where(valid[t], h_new, h)
            ys.append(torch.stack(y))  # (T, B, H)
            finals.append(h)
        return torch.stack(ys, dim=1), torch.stack(finals)  # (T, D, B, H), (D, B, H)

    @staticmethod
    def symbolic(g, x, lengths, h0, w, r, b, hidden: int, bidirectional: bool):
        return g.op("GRU", x, w, r, b, lengths, h0, hidden_size_i=hidden, linear_before_reset_i=0,
                    direction_s="bidirectional" if bidirectional else "forward", outputs=2)
