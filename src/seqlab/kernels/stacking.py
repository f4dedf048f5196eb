"""Stacking a module's layers and directions for the ``fast`` backend.

:func:`_rows_by_length` sorts the rows longest first and gives the initial
states in that order; :func:`_run_layers` runs every layer and direction in
turn with one layer driver (:mod:`seqlab.kernels.drivers`), concatenating
the directions and applying the module's dropout between layers;
:func:`_final_states` stacks the final states back in the caller's order.

Symbols: B batch, T steps, H hidden size, D directions, L layers.
"""

from __future__ import annotations

import torch
from torch import nn

from seqlab.recurrence.spec import parameter_suffix


def _rows_by_length(module: nn.RNNBase, mode: str, x, lengths, state):
    """(order, active, h0, c0): the rows longest first (B,), the rows still running at each step (T,),
    and the initial states (L*D, B, H) in that order."""
    B, T, _ = x.shape
    L, D, H = module.num_layers, 2 if module.bidirectional else 1, module.hidden_size
    if lengths is None:
        order = torch.arange(B)
        active = torch.full((T,), B, dtype=torch.int64)
    else:
        sorted_lengths, order = torch.sort(lengths.cpu(), descending=True, stable=True)
        active = (sorted_lengths[None, :] > torch.arange(T)[:, None]).sum(dim=1)
    if state is None:
        h0 = c0 = x.new_zeros(L * D, B, H)
    else:
        h0, c0 = state if mode == "lstm" else (state, x.new_zeros(L * D, B, H))
        if lengths is not None:
            h0, c0 = h0[:, order], c0[:, order]
    return order, active, h0, c0


def _final_states(mode: str, h_n: list, c_n: list, order: torch.Tensor):
    """The module's final state from per-layer-and-direction lists in ``order``, back in the caller's order."""
    inverse = torch.argsort(order)
    h = torch.stack(h_n)[:, inverse]  # (L*D, B, H)
    return h if mode != "lstm" else (h, torch.stack(c_n)[:, inverse])


def _run_layers(module: nn.RNNBase, layer_input, h0, c0, run_layer):
    """Every layer and direction of ``module`` in turn, on inputs laid out either way (features last).

    ``run_layer(reverse, x, h0, c0, w_ih, w_hh, b_ih, b_hh)`` returns
    (out, h, c); the directions' outputs are concatenated, with the
    module's dropout between layers. Returns the last layer's output and
    the lists of final h and c, layer by layer, direction by direction.
    """
    D = 2 if module.bidirectional else 1
    h_n, c_n = [], []
    for layer in range(module.num_layers):
        outputs = []
        for d in range(D):
            suffix = parameter_suffix(layer, d)
            k = layer * D + d
            weights = [getattr(module, f"{name}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            out, h, c = run_layer(bool(d), layer_input, h0[k].contiguous(), c0[k].contiguous(), *weights)
            outputs.append(out)
            h_n.append(h)
            c_n.append(c)
        layer_input = outputs[0] if D == 1 else torch.cat(outputs, dim=2)
        if module.dropout and module.training and layer < module.num_layers - 1:
            layer_input = nn.functional.dropout(layer_input, module.dropout, training=True)
    return layer_input, h_n, c_n
