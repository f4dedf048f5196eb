"""Variable-length text classifier: token ids in, classes out (the seeds' text LSTM).

Embedding -> MLP -> packed multi-layer LSTM -> LayerNorm -> mean over the
valid steps, concatenated with the mean of the MLP features -> classifier.
Symbols: B batch, T tokens, V vocabulary, E embedding width, H hidden size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqlab.config import check
from seqlab.models.pooling import masked_mean, step_mask
from seqlab.models.recurrent import RecurrentEncoder
from seqlab.models.registry import register_model


class TextLSTM(nn.Module):
    """``forward(ids (B, T) or (B, T, 1), lengths (B,) | None) -> (B, C)``; id 0 may be padding."""

    def __init__(self, input_size: int, output_size: int, embedding_dim: int = 64, mlp_size: int = 64,
                 hidden_size: int = 64, num_layers: int = 3, dropout: float = 0.1):
        super().__init__()
        self.embedding = nn.Embedding(input_size, embedding_dim)  # input_size is the vocabulary size V
        self.mlp = nn.Sequential(nn.Linear(embedding_dim, mlp_size), nn.ReLU(), nn.Dropout(dropout))
        self.lstm = RecurrentEncoder("lstm", mlp_size, hidden_size, num_layers, dropout)
        self.norm = nn.LayerNorm(hidden_size)
        self.fc = nn.Linear(hidden_size + mlp_size, output_size)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if ids.dim() == 3:
            ids = ids[..., 0]
        ids = ids.long()  # (B, T)
        features = self.mlp(self.embedding(ids))  # (B, T, mlp_size)
        outputs, _, _ = self.lstm(features, lengths)  # (B, T, H), zero past each length
        mask = step_mask(lengths, ids.shape[0], ids.shape[1], ids.device)  # (B, T)
        pooled = torch.cat([masked_mean(self.norm(outputs), mask), masked_mean(features, mask)], dim=1)
        return self.fc(pooled)  # (B, C)


@dataclass
class TextLSTMOptions:
    """Attributes: embedding_dim, mlp_size, hidden_size, num_layers (3), dropout."""

    embedding_dim: int = 64
    mlp_size: int = 64
    hidden_size: int = 64
    num_layers: int = 3
    dropout: float = 0.1

    def validate(self) -> None:
        for key in ("embedding_dim", "mlp_size", "hidden_size", "num_layers"):
            check(getattr(self, key) >= 1, f"model.{key}", "a positive integer", getattr(self, key))
        check(0.0 <= self.dropout < 1.0, "model.dropout", "a probability in [0, 1)", self.dropout)


register_model("text-lstm", TextLSTM, TextLSTMOptions, ("classification",),
               "token ids -> embedding, MLP, packed LSTM, LayerNorm, mean pooling", tokens=True)
