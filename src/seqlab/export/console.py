"""Keep what native libraries print out of seqlab's own output.

torch.onnx's shape inference and pnnx write to the process's stdout and
stderr from C++, past Python's ``sys.stdout`` and ``warnings``; only a file
descriptor redirect catches them. The callers keep the captured text and
show it only if the step fails.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from pathlib import Path


@contextlib.contextmanager
def captured_console(log: Path | None = None):
    """Send file descriptors 1 and 2 (and Python warnings) to ``log``, or to a scratch file, until the
    block ends; yields the log's path."""
    with contextlib.ExitStack() as stack:
        if log is None:
            log = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "console.log"
        sink = stack.enter_context(open(log, "w+b"))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield log
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
