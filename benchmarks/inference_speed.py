"""Inference speed: eager PyTorch, TorchScript and ONNX Runtime side by side, and streaming steps.

    python benchmarks/inference_speed.py [--repeats N]

Whole-sequence cases: a GRU and an LSTM classifier (F=90, H=128, T=250, 7
classes) at batch 1 and 64, exported twice: ``fixed`` (``--fixed-length``,
input x only; eager runs the unpacked batch) and ``variable`` (x and lengths
between T/2 and T; eager packs the batch); one line per runtime with its
time and its throughput relative to eager on the same inputs. ``onnxruntime``
is one ``session.run`` with ONNX Runtime's default threading;
``onnxruntime_split`` is seqlab's ``OnnxModel``, which cuts a batch into
parts of about ``PART_ROWS`` rows and runs them, one per core at a time, on a
single-threaded session (``onnxruntime_split_rowsN``: other part sizes, for
the fixed-length batch of 64). Streaming:
the latency of one step (F=90, H=128, batch 1) for the eager step model, the
ONNX step model under ONNX Runtime, and seqlab's compiled Streamer. Medians
of alternating runs. Where ncnn's Python package is installed, the fixed-length
batch-1 cases time the ncnn export too (ncnn has no batch axis).
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
from seqlab.kernels.parallel import usable_cores
from seqlab.models import build_model
from seqlab.runs import load_run, save_run_checkpoint
from seqlab.serving.modules import Deployable
from seqlab.serving.ncnn_runtime import load_ncnn
from seqlab.serving.onnx_model import PART_ROWS, OnnxModel
from seqlab.serving.streamer import Streamer

F, H, T, C = 90, 128, 250, 7
HAVE_NCNN = importlib.util.find_spec("ncnn") is not None and importlib.util.find_spec("pnnx") is not None


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
    """Median seconds per call. The runtimes take turns; each timed call follows a pause and an
    untimed call of the same runtime, so that the threads another runtime leaves spinning
    (ONNX Runtime's and OpenMP's pools both spin after a call) do not slow it down."""
    for fn in fns.values():
        fn()
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            time.sleep(0.02)
            fn()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def whole_sequence(work: Path, name: str, repeats: int) -> None:
    """Two exports per model: fixed length (input x only) and variable length (x and lengths)."""
    import onnxruntime as ort

    run = make_run(work / name, name)
    model = load_run(run).model.eval()
    eager = Deployable(model, np.zeros(F, np.float32), np.ones(F, np.float32)).eval()
    for kind, fixed in (("fixed", True), ("variable", False)):
        onnx_path, script_path = work / f"{name}-{kind}.onnx", work / f"{name}-{kind}.pt"
        export_run(run, "onnx", onnx_path, fixed_length=fixed)
        export_run(run, "torchscript", script_path, fixed_length=fixed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.load(str(script_path))
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        split = OnnxModel(onnx_path)  # the batch cut into one part per core, run at once
        net = None
        if fixed and HAVE_NCNN:
            ncnn_path = work / f"{name}-{kind}.param"
            export_run(run, "ncnn", ncnn_path)
            net = load_ncnn(ncnn_path)
        for batch in (1, 64):
            rng = np.random.default_rng(batch)
            x = torch.tensor(rng.normal(size=(batch, T, F)), dtype=torch.float32)
            inputs = (x,)
            if not fixed:
                lengths = rng.integers(T // 2, T + 1, size=batch)
                lengths[0] = T
                inputs = (x, torch.tensor(lengths))
            feed = dict(zip(("x", "lengths"), (t.numpy() for t in inputs)))
            fns = {"eager": lambda: eager(*inputs), "torchscript": lambda: scripted(*inputs),
                   "onnxruntime": lambda: session.run(None, feed),
                   "onnxruntime_split": lambda: split(*feed.values())}
            if fixed and batch == 64:  # other part sizes than OnnxModel's default (PART_ROWS)
                for rows in sorted({4, 8, 16, 32} - {PART_ROWS}):
                    fns[f"onnxruntime_split_rows{rows}"] = lambda m=OnnxModel(onnx_path, part_rows=rows): m(*feed.values())
            if net is not None and batch == 1:
                frames = x[0].numpy().copy()  # (T, F); ncnn.Mat borrows it
                fns["ncnn"] = lambda: run_ncnn(net, frames)
            with torch.no_grad():
                reference = fns["eager"]().numpy()
                diffs = {runtime: float(np.abs(np.asarray(fns[runtime]()).reshape(reference.shape) - reference).max())
                         for runtime in ("onnxruntime", "onnxruntime_split", "ncnn") if runtime in fns}
                results = timed(fns, repeats)
            base = results["eager"]
            for runtime, seconds in results.items():
                print(f"case={name}_{kind}_B{batch}_T{T} runtime={runtime} ms={seconds * 1e3:.3f} "
                      f"throughput_vs_eager={base / seconds:.2f}"
                      + (f" max_abs_diff={diffs[runtime]:.1e}" if runtime in diffs else ""), flush=True)


def run_ncnn(net, frames: np.ndarray) -> np.ndarray:
    """The whole-sequence ncnn model on one sequence (T, F) -> logits (C,)."""
    import ncnn

    extractor = net.create_extractor()
    extractor.input("in0", ncnn.Mat(frames))
    _, result = extractor.extract("out0")
    return np.array(result).reshape(-1)


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
    print(f"# {usable_cores()} cores; torch {torch.__version__}, {torch.get_num_threads()} threads; ncnn "
          f"{'timed at batch 1' if HAVE_NCNN else 'not installed'}")
    with tempfile.TemporaryDirectory() as work:
        for name in ("gru", "lstm"):
            whole_sequence(Path(work), name, args.repeats)
        streaming(Path(work), args.repeats)


if __name__ == "__main__":
    main()
