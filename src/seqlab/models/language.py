"""Character language model: embedding -> recurrent encoder -> logits per step.

Symbols: B batch (parallel text streams), T steps, E embedding width,
H hidden size, V vocabulary size.
"""

from __future__ import annotations

import torch
from torch import nn

from seqlab.models.recurrent import RecurrentEncoder, State


class RecurrentLM(nn.Module):
    """Next-character model over a vocabulary of V symbols.

    ``forward(ids (B, T), state | None) -> logits (B, T, V), state``: the
    state is returned so that consecutive chunks of a text (truncated BPTT)
    and generation continue where the last call stopped.
    """

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        nonlinearity: str = "tanh",
        backend: str = "torch",
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.encoder = RecurrentEncoder(cell, embedding_dim, hidden_size, num_layers, dropout,
                                        nonlinearity=nonlinearity, backend=backend)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        x = self.dropout(self.embedding(ids))  # (B, T, E)
        outputs, _, state = self.encoder(x, None, state)  # (B, T, H)
        return self.fc(self.dropout(outputs)), state  # (B, T, V)


def detach_state(state: State | None) -> State | None:
    """Cut the graph at a chunk boundary but keep the values (truncated BPTT)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()
