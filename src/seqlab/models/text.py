"""Variable-length text classifier: token ids in, classes out (seed 003's text LSTM).

Seed 003's layers, with its padding bug fixed:

    Embedding(V, E) -> MLP: Linear(E, H) - GELU - Linear(H, H)
    -> packed L-layer LSTM of width 2H -> LayerNorm(2H)
    -> [mean over valid steps of the LSTM output (2H), mean over valid steps of the MLP features (H)]
    -> head: Linear(3H, H) - GELU - LayerNorm(H) - Linear(H, C)

The article pads the LSTM output back (``pad_packed_sequence``) and then
average-pools over every step, padding included (``AdaptiveAvgPool1d``),
after a LayerNorm that maps the zero padding to its bias; the MLP features
are pooled the same way. Here both means run over the valid steps only, so
a sequence gets the same logits alone or padded in a batch.

Symbols: B batch, T tokens, V vocabulary, E embedding width, H hidden size, C classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqlab.models.pooling import masked_mean, step_mask
from seqlab.models.recurrent import RecurrentEncoder
from seqlab.models.registry import register_model
from seqlab.options import check


class TextLSTM(nn.Module):
    """``forward(ids (B, T) or (B, T, 1), lengths (B,) | None) -> (B, C)``; id 0 may be padding."""

    def __init__(self, input_size: int, output_size: int, embedding_dim: int = 64, hidden_size: int = 64,
                 num_layers: int = 3, dropout: float = 0.1):
        super().__init__()
        self.embedding = nn.Embedding(input_size, embedding_dim)  # input_size is the vocabulary size V
        self.mlp = nn.Sequential(nn.Linear(embedding_dim, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))
        self.lstm = RecurrentEncoder("lstm", hidden_size, 2 * hidden_size, num_layers, dropout)
        self.norm = nn.LayerNorm(2 * hidden_size)
        self.head = nn.Sequential(nn.Linear(3 * hidden_size, hidden_size), nn.GELU(), nn.LayerNorm(hidden_size),
                                  nn.Linear(hidden_size, output_size))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if ids.dim() == 3:
            ids = ids[..., 0]
        ids = ids.long()  # (B, T)
        features = self.mlp(self.embedding(ids))  # (B, T, H)
        outputs, _, _ = self.lstm(features, lengths)  # (B, T, 2H), zero past each length
        mask = step_mask(lengths, ids.shape[0], ids.shape[1], ids.device)  # (B, T)
        pooled = torch.cat([masked_mean(self.norm(outputs), mask), masked_mean(features, mask)], dim=1)  # (B, 3H)
        return self.head(pooled)  # (B, C)


@dataclass
class TextLSTMOptions:
    """Attributes: embedding_dim E, hidden_size H (the MLP and head width; the LSTM is 2H wide),
    num_layers of the LSTM (3), dropout between LSTM layers."""

    embedding_dim: int = 64
    hidden_size: int = 64
    num_layers: int = 3
    dropout: float = 0.1

    def validate(self) -> None:
        for key in ("embedding_dim", "hidden_size", "num_layers"):
            check(getattr(self, key) >= 1, f"model.{key}", "a positive integer", getattr(self, key))
        check(0.0 <= self.dropout < 1.0, "model.dropout", "a probability in [0, 1)", self.dropout)


register_model("text-lstm", TextLSTM, TextLSTMOptions, ("classification",),
               "token ids -> embedding, MLP, packed 2H LSTM, LayerNorm, mean pooling, head", tokens=True)
