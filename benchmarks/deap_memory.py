"""Peak memory of training on all 32 DEAP subjects at full size (generated files).

    python benchmarks/deap_memory.py [--folder /tmp/deap-full] [--subjects 32] [--epochs 1]

Writes 32 generated ``sNN.dat`` files of DEAP's full size (40 trials x 40
channels x 8064 samples, float64: 103 MB each, 3.3 GB in all) unless they
are there already, then runs ``seqlab train --config deap-cnn1d-lstm`` on
them in a child process and reports the child's peak resident memory
(``ru_maxrss``) and the size of the data on disk. Target: under 2 GB.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from seqlab.data.synthetic import deap_subject


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/deap-full"))
    parser.add_argument("--subjects", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the generated files and cache")
    args = parser.parse_args()
    import pickle

    args.folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for number in range(1, args.subjects + 1):
        path = args.folder / f"s{number:02d}.dat"
        subject = deap_subject(rng)
        if not path.is_file():
            with path.open("wb") as handle:
                pickle.dump(subject, handle, protocol=4)
        del subject
    on_disk = sum(p.stat().st_size for p in args.folder.glob("s*.dat"))
    out = args.folder.parent / "deap-full-run"
    command = [str(Path(sys.executable).parent / "seqlab"), "train", "--config", "deap-cnn1d-lstm",
               "--data", f"deap:{args.folder}", "--epochs", str(args.epochs), "--quiet", "--overwrite",
               "--out", str(out)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(result.stdout.strip())
    if result.returncode:
        print(result.stderr, file=sys.stderr)
        raise SystemExit(result.returncode)
    print(f"subjects={args.subjects} data_on_disk_gb={on_disk / 1e9:.2f} epochs={args.epochs} "
          f"wall_seconds={seconds:.0f} peak_rss_mb={peak_mb:.0f} target_mb=2048")
    if not args.keep:
        shutil.rmtree(args.folder)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
