"""Large float32 work arrays, reused once nothing refers to them any more.

A training step of a recurrent layer at B=64, T=250, H=128 allocates tens of
megabytes of work arrays. Fresh memory of that size comes from the operating
system page by page (the C allocator maps and unmaps it on every call), and
the first touch of each page costs as much as a good part of the arithmetic
on it. :func:`empty` hands out tensors backed by NumPy arrays that this
module keeps; an array is handed out again only when its reference count
shows that no tensor, view or saved autograd state still uses it, so a
graph kept for a second backward pass keeps its arrays. At most
``POOL_BYTES`` are kept; beyond that, arrays are plain allocations.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np
import torch

# Arrays smaller than this come from the C allocator's own caches and are not kept.
MIN_BYTES = 1 << 20
# The most this module keeps for reuse (about four layers' work arrays at B=64, T=250, H=128).
POOL_BYTES = 256 << 20

_lock = threading.Lock()
_arrays: dict[int, list[np.ndarray]] = {}
_kept = 0
# References to a kept array while :func:`empty` looks at it and nothing else uses it:
# the list, the loop variable and getrefcount's argument.
_IDLE_REFS = 3


def empty(*shape: int) -> torch.Tensor:
    """An uninitialised float32 CPU tensor of ``shape``, from a kept array when one is idle."""
    global _kept
    size = math.prod(shape)
    if size * 4 < MIN_BYTES:
        return torch.empty(shape)
    with _lock:
        for array in _arrays.get(size, ()):
            if sys.getrefcount(array) <= _IDLE_REFS:
                return torch.from_numpy(array).view(shape)
        array = np.empty(size, np.float32)
        if _kept + array.nbytes <= POOL_BYTES:
            _arrays.setdefault(size, []).append(array)
            _kept += array.nbytes
        return torch.from_numpy(array).view(shape)


def zeros(*shape: int) -> torch.Tensor:
    """:func:`empty`, filled with zeros."""
    return empty(*shape).zero_()


def release() -> None:
    """Forget every kept array (each is freed once nothing else refers to it)."""
    global _kept
    with _lock:
        _arrays.clear()
        _kept = 0
