"""Fast implementations of the recurrences (the ``fast`` backend)."""

from seqlab.kernels.dispatch import fast_forward, supports

__all__ = ["fast_forward", "supports"]
