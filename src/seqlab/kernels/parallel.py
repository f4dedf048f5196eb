"""Running independent parts of a batch on the CPU's cores at once.

The compiled part kernels release Python's lock, so plain threads run them
in parallel. Inside them numba calls SciPy's BLAS, which would start threads
of its own for the larger products and fight the other parts for the cores;
while parts run, that BLAS is held to one thread (``threadpoolctl``).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import nullcontext

import torch

_lock = threading.Lock()
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (process id, workers, executor)
_blas = None


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def workers() -> int:
    """Parts to run at once: torch's thread setting, at most the usable cores."""
    return max(1, min(torch.get_num_threads(), usable_cores()))


def _executor(n: int) -> ThreadPoolExecutor:
    """A pool of ``n`` threads for this process (a forked child makes its own)."""
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] != n:
            if _pool is not None and _pool[0] == os.getpid():
                _pool[2].shutdown(wait=False)  # its threads end once idle
            _pool = (os.getpid(), n, ThreadPoolExecutor(n, thread_name_prefix="seqlab-part"))
        return _pool[2]


def _one_blas_thread():
    """A context that holds the BLAS numba calls (SciPy's) to one thread."""
    global _blas
    if _blas is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library numba's products call)
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController().select(user_api="blas")
    return _blas.limit(limits=1) if _blas.lib_controllers else nullcontext()


def run_parts(tasks: list[tuple], n_workers: int) -> None:
    """Run ``(function, *args)`` tasks in the order given, ``n_workers`` at a time; re-raise the first error.

    The calling thread runs tasks too, with ``n_workers - 1`` helper threads:
    it is already running, while a sleeping helper can take milliseconds to
    wake. Every thread takes the next task from one shared iterator.
    """
    pending = iter(tasks)  # next() on a list iterator is atomic under Python's lock
    errors: list[BaseException] = []

    def drain() -> None:
        for fn, *args in pending:
            try:
                fn(*args)
            except BaseException as error:  # the other parts still finish: they write into shared arrays
                errors.append(error)

    helpers = min(n_workers, len(tasks)) - 1
    with _one_blas_thread():
        futures = [_executor(helpers).submit(drain) for _ in range(helpers)] if helpers > 0 else []
        drain()
        wait(futures)
    if errors:
        raise errors[0]
