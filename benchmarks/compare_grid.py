"""How long ``seqlab compare`` takes on 3 models x 2 data sets x 2 seeds with ``--epochs 2``, and its rerun.

The grid: rnn, lstm, gru on digits and aeon:BasicMotions, seeds 0 and 1,
default settings otherwise (MiniRocket baselines included), one worker and
then, into a fresh folder, two workers. Each is the real CLI in a
subprocess, timed from start to exit, so the figures include starting
Python and importing torch. The rerun of the first folder has nothing left
to train: every run is read from its ``metrics.json``.

Run: ``python benchmarks/compare_grid.py [--workers 1,2]`` (under
``flock -x /tmp/seqlab-cpu.lock`` on a shared machine).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = ["--models", "rnn,lstm,gru", "--data", "digits,aeon:BasicMotions", "--seeds", "0,1", "--epochs", "2"]


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "seqlab", *argv], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to time (default 1,2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for workers in [int(w) for w in args.workers.split(",")]:
            out = Path(tmp) / f"workers{workers}"
            argv = ["compare", *GRID, "--workers", str(workers), "--out", str(out), "--quiet"]
            first = timed(argv)
            again = timed(argv)
            print(f"workers {workers}: 12 runs {first:.1f} s; rerun with nothing left to train {again:.1f} s",
                  flush=True)


if __name__ == "__main__":
    main()
