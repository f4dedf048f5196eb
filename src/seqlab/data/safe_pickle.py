"""Unpickling data files without executing code from them.

``pickle.load`` calls whatever callable a file names, so a crafted file can
run any command. :func:`load_restricted` admits only what NumPy arrays and
plain containers need (array reconstruction, dtypes, scalars) and refuses
every other global with a :class:`SeqlabError` naming it.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from seqlab.errors import SeqlabError

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 2 pickles of byte strings (array buffers) read under latin1
    ("builtins", "bytearray"),
    ("__builtin__", "bytearray"),
    ("collections", "OrderedDict"),
}


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1")  # DEAP's files were written by Python 2
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise SeqlabError(
            f"{self.source}: refused to unpickle {module}.{name}; expected only NumPy arrays and plain "
            "containers (a pickle can run code when loaded; this one tries to)"
        )


def load_restricted(path: str | Path) -> Any:
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return RestrictedUnpickler(io.BufferedReader(handle), str(path)).load()
    except SeqlabError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise SeqlabError(f"{path}: not a readable pickle ({type(error).__name__}: {error})") from None
