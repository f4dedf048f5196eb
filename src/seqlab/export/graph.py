"""Modules built for export: token and language-model interfaces, a decomposed projected LSTM.

The raw-feature wrapper (:class:`seqlab.serving.modules.Deployable`) and the
step model (:class:`seqlab.serving.modules.StepModel`) are served eagerly as
well, so they live in :mod:`seqlab.serving`.

Symbols: B batch, T steps, F features, H hidden size, P LSTM projection
size, L layers, C outputs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from seqlab.models.recurrent import RecurrentEncoder
from seqlab.recurrence.spec import parameter_suffix


class TokenClassifier(nn.Module):
    """A token classifier as ``(ids (B, T) int64[, lengths (B,)]) -> logits (B, C)``: ids are not normalised."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(ids) if lengths is None else self.model(ids, lengths)  # (B, C)


class LanguageModelLogits(nn.Module):
    """A character LM as (ids (B, T) int64) -> logits (B, T, V), the state starting at zero."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(ids)[0]


class ProjectedLSTM(nn.Module):
    """An LSTM with ``proj_size`` rewritten as a plain LSTM plus projections: same call, same results.

    The ONNX LSTM operator has no projection. But with h = W_hr m (m = o *
    tanh(c), the unprojected output), the recurrent term W_hh h equals
    (W_hh W_hr) m, and the next layer's W_ih h equals (W_ih W_hr) m. So a
    plain LSTM of hidden size H with those folded weights carries m exactly,
    and the projections are applied afterwards: to the top layer's outputs
    and to every layer's final state. It exports as native ONNX LSTM nodes.
    """

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        L, D, H = lstm.num_layers, 2 if lstm.bidirectional else 1, lstm.hidden_size
        self.num_layers, self.directions = L, D
        self.plain = nn.LSTM(lstm.input_size, H, num_layers=L, bidirectional=lstm.bidirectional, batch_first=True)
        projections = []
        with torch.no_grad():
            for layer in range(L):
                below = [getattr(lstm, f"weight_hr{parameter_suffix(layer - 1, d)}") for d in range(D)] \
                    if layer else None
                for d in range(D):
                    s = parameter_suffix(layer, d)
                    w_hr = getattr(lstm, f"weight_hr{s}")  # (P, H)
                    w_ih = getattr(lstm, f"weight_ih{s}")
                    if below is not None:  # the input is [W_hr m] of each direction below
                        w_ih = torch.cat([w_ih[:, k * w_hr.shape[0]:(k + 1) * w_hr.shape[0]] @ below[k]
                                          for k in range(D)], dim=1)
                    getattr(self.plain, f"weight_ih{s}").copy_(w_ih)
                    getattr(self.plain, f"weight_hh{s}").copy_(getattr(lstm, f"weight_hh{s}") @ w_hr)
                    getattr(self.plain, f"bias_ih{s}").copy_(getattr(lstm, f"bias_ih{s}"))
                    getattr(self.plain, f"bias_hh{s}").copy_(getattr(lstm, f"bias_hh{s}"))
                    projections.append(w_hr.detach().clone())
        self.register_buffer("projections", torch.stack(projections))  # (L*D, P, H)

    def forward(self, x, state=None):
        if state is not None:
            raise ValueError("the decomposed projected LSTM starts from zero states")
        D, H = self.directions, self.plain.hidden_size
        top = self.projections[-D:]  # (D, P, H)
        m, (m_n, c_n) = self.plain(x)  # (B, T, D*H) or packed, (L*D, B, H)
        h_n = torch.einsum("kbh,kph->kbp", m_n, self.projections)  # (L*D, B, P)
        if isinstance(m, PackedSequence):  # variable lengths: project the packed rows
            data = torch.einsum("ndh,dph->ndp", m.data.view(-1, D, H), top).reshape(m.data.shape[0], -1)
            return PackedSequence(data, m.batch_sizes, m.sorted_indices, m.unsorted_indices), (h_n, c_n)
        B, T, _ = m.shape
        outputs = torch.einsum("btdh,dph->btdp", m.view(B, T, D, H), top).reshape(B, T, -1)  # (B, T, D*P)
        return outputs, (h_n, c_n)


def replace_projected_lstms(module: nn.Module) -> bool:
    """Swap every projected ``nn.LSTM`` inside ``module`` for :class:`ProjectedLSTM`; True if any was."""
    swapped = False
    for child in module.modules():
        if isinstance(child, RecurrentEncoder) and isinstance(child.rnn, nn.LSTM) and child.rnn.proj_size:
            child.rnn = ProjectedLSTM(child.rnn)
            child.backend = "torch"
            swapped = True
    return swapped
