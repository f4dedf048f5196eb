"""torch's two ONNX exporters side by side on seqlab's classifiers: time to export, axes kept, GRU form.

For each model (F=6, H=16, 3 classes, untrained; the normaliser inside, as
``seqlab export`` writes it) and each exporter, in one process, alternating:
the seconds ``torch.onnx.export`` takes, whether the written graph keeps x's
batch and time axes dynamic, the GRU operator's ``linear_before_reset``, and
the largest difference from eager PyTorch at another batch size and length.
``lengths`` cases go through packing, which torch.export refuses.

    python benchmarks/onnx_exporters.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from seqlab.errors import SeqlabError
from seqlab.export.console import captured_console
from seqlab.export.torch_export import export_onnx
from seqlab.models import build_model
from seqlab.serving.modules import Deployable

F, C, T = 6, 3, 20
CASES = [("gru", False), ("bigru", False), ("lstm", False), ("bilstm", False), ("cnn1d-gru", False), ("gru", True)]


def describe(path: Path, module, names) -> str:
    graph = onnx.load(str(path)).graph
    x = next(i for i in graph.input if i.name == "x")
    dims = [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim]
    lbr = [a.i for n in graph.node if n.op_type == "GRU" for a in n.attribute if a.name == "linear_before_reset"]
    inputs = (torch.randn(3, 17, F),) + ((torch.tensor([17, 9, 4]),) if "lengths" in names else ())
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0]
        with torch.no_grad():
            diff = f"{np.abs(got - module(*inputs).numpy()).max():.1e}"
    except Exception as error:  # ONNX Runtime refuses a length the graph fixed
        diff = f"refused ({type(error).__name__})"
    return f"x={dims} linear_before_reset={lbr or '-'} diff_at_B3_T17={diff}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        for name, packed in CASES:
            options = {"hidden_size": 16} if name in ("gru", "bigru", "lstm", "bilstm") else {}
            module = Deployable(build_model(name, F, C, **options).eval(), torch.zeros(F), torch.ones(F)).eval()
            names = ["x", "lengths"] if packed else ["x"]
            example = (torch.randn(2, T, F),) + ((torch.tensor([T, T // 2]),) if packed else ())
            axes = {"x": {0: "batch", 1: "time"}, "y": {0: "batch"}, **({"lengths": {0: "batch"}} if packed else {})}
            for repeat in range(args.repeats):
                for exporter in ("legacy", "dynamo"):
                    path = Path(folder) / f"{name}-{exporter}.onnx"
                    start = time.perf_counter()
                    try:
                        with captured_console():
                            export_onnx(module, example, names, path, axes, exporter)
                        seconds = time.perf_counter() - start
                        outcome = describe(path, module, names)
                    except SeqlabError as error:
                        seconds = time.perf_counter() - start
                        outcome = f"refused: {str(error)[:150]}"
                    print(f"case={name}{'_lengths' if packed else ''} repeat={repeat} exporter={exporter} "
                          f"seconds={seconds:.2f} {outcome}", flush=True)


if __name__ == "__main__":
    main()
