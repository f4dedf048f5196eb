"""Inference speed: eager PyTorch, TorchScript, ONNX Runtime and ncnn side by side, and streaming steps.

    python benchmarks/inference_speed.py [--repeats N]

Whole-sequence cases: a GRU and an LSTM classifier (F=90, H=128, T=250, 7
classes) at batch 1 and 64; one line per runtime with its time and its
throughput relative to eager. Streaming: the latency of one step (F=90,
H=128, batch 1) for the eager step model, the ONNX step model under ONNX
Runtime, and seqlab's compiled Streamer. Medians of alternating runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from seqlab.data.scaling import Normalizer
from seqlab.export import export_run
from seqlab.export.streaming import Streamer
from seqlab.models import build_model
from seqlab.runs import save_run_checkpoint

F, H, T, C = 90, 128, 250, 7


def make_run(folder: Path, name: str) -> Path:
    torch.manual_seed(0)
    model = build_model(name, F, C, hidden_size=H).eval()
    normalizer = Normalizer("none", np.zeros(F, np.float32), np.ones(F, np.float32))
    save_run_checkpoint(folder / "model.pt", model,
                        {"name": name, "builder": "zoo", "input_size": F, "output_size": C, "steps": T,
                         "options": {"hidden_size": H}},
                        {"train": {"seed": 0}}, "classification",
                        {"normalizer": normalizer.state_dict(), "class_names": [str(i) for i in range(C)],
                         "features": F, "steps": T, "feature_names": [], "variable_length": False})
    return folder


def timed(fns: dict, repeats: int) -> dict:
    for fn in fns.values():
        fn()
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def whole_sequence(work: Path, name: str, repeats: int) -> None:
    import onnxruntime as ort

    run = make_run(work / name, name)
    export_run(run, "onnx", work / f"{name}.onnx")
    export_run(run, "torchscript", work / f"{name}.pt")
    eager = build_model(name, F, C, hidden_size=H).eval()
    eager.load_state_dict(torch.load(run / "model.pt", weights_only=True)["state_dict"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(work / f"{name}.pt"))
    session = ort.InferenceSession(str(work / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 64):
        x = torch.randn(batch, T, F)
        xn = x.numpy()
        fns = {"eager": lambda: eager(x), "torchscript": lambda: scripted(x),
               "onnxruntime": lambda: session.run(None, {"x": xn})}
        with torch.no_grad():
            results = timed(fns, repeats)
        base = results["eager"]
        for runtime, seconds in results.items():
            print(f"case={name}_B{batch}_T{T} runtime={runtime} ms={seconds * 1e3:.3f} "
                  f"throughput_vs_eager={base / seconds:.2f}", flush=True)


def streaming(work: Path, repeats: int) -> None:
    run = make_run(work / "stream-gru", "gru")
    export_run(run, "onnx", work / "step.onnx", streaming=True)
    frame = np.random.default_rng(0).normal(size=F).astype(np.float32)
    streamers = {"eager": Streamer(run, "eager"), "onnxruntime": Streamer(work / "step.onnx"),
                 "seqlab_compiled": Streamer(run, "compiled")}
    steps = 200
    fns = {name: (lambda s=s: [s.push(frame) for _ in range(steps)]) for name, s in streamers.items()}
    results = timed(fns, repeats)
    base = results["eager"]
    for name, seconds in results.items():
        print(f"case=stream_gru_step_F{F}_H{H}_B1 runtime={name} us_per_step={seconds / steps * 1e6:.1f} "
              f"speedup_vs_eager={base / seconds:.2f} target_us=20", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads; ncnn "
          f"{'available' if importlib.util.find_spec('ncnn') else 'not installed'} (batch-1 parity only)")
    with tempfile.TemporaryDirectory() as work:
        for name in ("gru", "lstm"):
            whole_sequence(Path(work), name, args.repeats)
        streaming(Path(work), args.repeats)


if __name__ == "__main__":
    main()
