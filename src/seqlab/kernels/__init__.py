"""Fast implementations of the recurrences (the ``fast`` backend)."""

from seqlab.kernels.fast_rnn import fast_forward, supports

__all__ = ["fast_forward", "supports"]
