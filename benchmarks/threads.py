"""Training time under thread settings, beside competing busy processes.

    python benchmarks/threads.py [--busy 0,1] [--repeats 3] [--cases digits,large] [--busy-kind python]

For each number of competing busy processes (``--busy``; each a Python
busy loop, or a one-thread NumPy matmul loop with ``--busy-kind matmul``,
started by this script), every setting trains every case in a fresh
process, the settings taking turns for ``--repeats`` rounds:

- ``threads=1``, ``threads=2``: ``train.threads`` set, the environment as is;
- ``torch-default``: torch's own thread count (what seqlab used before its
  policy), the environment as is;
- ``policy``: ``train.threads: 0`` run as the ``seqlab`` CLI runs it, with
  the CLI's OpenMP defaults in the environment (``OPENMP_DEFAULTS``);
- ``policy-api``: ``train.threads: 0`` from Python, the environment as is.

Cases: ``digits`` (GRU, H=128, 3 epochs of the digits set: B=64, T=8) and
``large`` (GRU, H=128, 2 epochs of 320 generated UT-HAR-like sequences, B=64,
T=250, F=90: ``seqlab.data.synthetic.write_ut_har``); ``large-fast`` is
``large`` on seqlab's fast backend.

One line per case, busy count and setting: the median fit time (Lightning's
``fit``, ``train_seconds`` in metrics.json), the median time of the whole
``train()`` call, the threads used, and the fit time's ratio to the best
setting of that case and busy count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = ("threads=1", "threads=2", "torch-default", "policy", "policy-api")
CASES = ("digits", "large")
BUSY_LOOPS = {
    "python": "while True:\n    pass\n",
    "matmul": "import numpy as np\na = np.random.rand(256, 256)\nwhile True:\n    a @ a\n",
}


def case_tree(case: str, data_dir: Path, threads: int) -> dict:
    if case == "digits":
        return {"data": {"spec": "digits"}, "model": {"name": "gru"},
                "train": {"epochs": 3, "threads": threads}}
    model = {"name": "gru", "backend": "fast" if case == "large-fast" else "torch"}
    return {"data": {"spec": f"ut-har:{data_dir}"}, "model": model,
            "train": {"epochs": 2, "threads": threads, "patience": 0}}


def worker(setting: str, cases: list[str], data_dir: Path) -> None:
    """Train each case once with ``setting`` and print one JSON line per case."""
    import torch  # before any setting changes it: torch's own default

    from seqlab.config import resolve_config
    from seqlab.training.pipeline import train

    threads = {"threads=1": 1, "threads=2": 2, "torch-default": torch.get_num_threads()}.get(setting, 0)
    for case in cases:
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            metrics = train(resolve_config(case_tree(case, data_dir, threads)), out, quiet=True).metrics
            total = time.perf_counter() - started
        print(json.dumps({"case": case, "fit_s": metrics["train_seconds"], "total_s": round(total, 3),
                          "threads": metrics["threads"]}), flush=True)


def run_setting(setting: str, cases: list[str], data_dir: Path) -> list[dict]:
    from seqlab.cli.main import OPENMP_DEFAULTS

    env = dict(os.environ)
    if setting == "policy":
        env = {**OPENMP_DEFAULTS, **env}  # what `seqlab` does: defaults the user has not set
    done = subprocess.run([sys.executable, __file__, "--worker", setting, "--cases", ",".join(cases),
                           "--data-dir", str(data_dir)], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise SystemExit(f"{setting}: worker failed\n{done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", default="0,1", help="competing busy processes, comma-separated counts")
    parser.add_argument("--busy-kind", choices=sorted(BUSY_LOOPS), default="python")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cases = args.cases.split(",")
    if args.worker:
        worker(args.worker, cases, args.data_dir)
        return

    import torch

    from seqlab.data.synthetic import write_ut_har

    settings = args.settings.split(",")
    print(f"# torch {torch.__version__}, {os.cpu_count()} cores, busy loop: {args.busy_kind}, "
          f"median of {args.repeats} fresh processes per setting", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        write_ut_har(data_dir, sizes=(320, 64, 64))
        run_setting(settings[0], cases, data_dir)  # warm-up, not timed: compiles the fast kernels once, fills caches
        for busy in map(int, args.busy.split(",")):
            loop_env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOPS[args.busy_kind]], env=loop_env)
                     for _ in range(busy)]
            try:
                time.sleep(1.0 if busy else 0.0)
                results: dict[tuple[str, str], list[dict]] = {}
                for round_ in range(args.repeats):
                    order = settings[round_ % len(settings):] + settings[:round_ % len(settings)]
                    for setting in order:
                        for row in run_setting(setting, cases, data_dir):
                            results.setdefault((row["case"], setting), []).append(row)
            finally:
                for loop in loops:
                    loop.kill()
                    loop.wait()
            for case in cases:
                fit = {s: statistics.median(r["fit_s"] for r in results[case, s]) for s in settings}
                best = min(fit.values())
                for s in settings:
                    rows = results[case, s]
                    print(f"case={case} busy={busy} setting={s} threads={rows[0]['threads']} "
                          f"fit_s={fit[s]:.3f} total_s={statistics.median(r['total_s'] for r in rows):.3f} "
                          f"ratio_to_best={fit[s] / best:.2f}", flush=True)


if __name__ == "__main__":
    main()
