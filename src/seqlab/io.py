"""Atomic file writes: a reader never sees half a file, a crash loses nothing."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Sequence

import torch

from seqlab.errors import SeqlabError

_UMASK_LOCK = threading.Lock()


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: 0o666 less the process umask."""
    with _UMASK_LOCK:  # reading the umask means setting it; keep other threads out meanwhile
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def open_atomic(path: Path, binary: bool = False, durable: bool = True) -> Iterator[IO]:
    """A handle on a temporary file beside ``path``, renamed onto ``path`` when the block ends.

    If the block raises, the temporary file is removed and ``path`` is left as it was. An
    ``OSError`` without a file name (a full disk, ENOSPC) is raised again naming ``path``.
    The rename alone protects against a killed process (a reader sees the old file or the
    new one); ``durable`` also flushes the data to disk before the rename, against a power
    cut. Files rewritten every epoch skip that flush.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600 files; follow the umask like any other writer
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename is None and error.errno is not None:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise


def _write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    with open_atomic(path, binary=True, durable=durable) as handle:
        handle.write(data)


def check_output_path(out: Path, flag: str = "--out", inputs: Iterable[Path | None] = ()) -> None:
    """Refuse an output path that is a folder or one of the command's own inputs."""
    out = Path(out)
    if out.is_dir():
        raise SeqlabError(f"{flag} {out}: is a folder; expected the path of a file to write")
    for source in inputs:
        if source is not None and Path(source).exists() and out.exists() and out.samefile(source):
            raise SeqlabError(f"{flag} {out}: is also an input of this command ({source}); "
                              "expected another path, so that the input is not overwritten")


def write_text(path: Path, text: str, durable: bool = True) -> None:
    _write_atomic(path, text.encode("utf-8"), durable)


def write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    _write_atomic(path, data, durable)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as strict JSON: NaN and Inf, which JSON cannot hold, are written as null."""
    write_text(path, json.dumps(_finite_or_null(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


def _finite_or_null(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite_or_null(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_null(value) for value in obj]
    return obj


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], durable: bool = True) -> None:
    write_text(path, csv_text(header, rows), durable)


def save_torch(path: Path, obj: Any, durable: bool = True) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    _write_atomic(path, buffer.getvalue(), durable)


def load_torch(path: Path) -> Any:
    """Load a checkpoint without executing code from it (``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def save_figure(fig, path: Path, dpi: int = 120) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    _write_atomic(path, buffer.getvalue())
