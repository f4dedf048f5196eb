"""GRU, LSTM and LSTM-FCN trained on a CUDA GPU in float32 and bf16-mixed, timed against the CPU.

    python benchmarks/gpu_check.py [--epochs 3] [--models gru,lstm,lstm-fcn]

Each model trains through ``seqlab.training.train`` on the same generated
UT-HAR-like data (``seqlab.data.synthetic.write_ut_har``: T=250, F=90,
7 classes; 1024 training sequences, batch 64) three times: on the CPU in
float32 (the thread policy's threads), on the GPU in float32 and on the GPU
in bf16-mixed. One line per run: fit seconds, the CPU's fit time over this
run's, and the test accuracy (bf16 should land near float32). A model that
is not registered (``lstm-fcn`` before it existed) is skipped with a note.

Without a CUDA GPU the script says so and exits with status 0.
``--accelerator cpu`` runs the same comparison with the CPU in place of the
GPU, to check the script itself on a machine without one.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

MODELS = ("gru", "lstm", "lstm-fcn")


def fit(model: str, data_dir: Path, out: Path, epochs: int, accelerator: str, precision: str) -> dict:
    from seqlab.config import resolve_config
    from seqlab.training.pipeline import train

    config = resolve_config({"data": {"spec": f"ut-har:{data_dir}"}, "model": {"name": model},
                             "train": {"epochs": epochs, "patience": 0, "accelerator": accelerator,
                                       "precision": precision}})
    return train(config, out, quiet=True).metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--accelerator", choices=("gpu", "cpu"), default="gpu",
                        help="gpu (default); cpu runs the comparison without a GPU, to check the script")
    args = parser.parse_args()
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        print(f"No CUDA GPU: torch {torch.__version__} ({build}) sees none; nothing to check.")
        return

    from seqlab.data.synthetic import write_ut_har
    from seqlab.models.registry import model_names

    precisions = ["32", "bf16-mixed"]
    if args.accelerator == "gpu":
        print(f"# {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
        if not torch.cuda.is_bf16_supported():
            print("# this GPU has no bfloat16: bf16-mixed skipped")
            precisions = ["32"]
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        write_ut_har(data_dir, sizes=(1024, 128, 128))
        for model in args.models.split(","):
            if model not in model_names():
                print(f"model={model}: not registered in this seqlab, skipped")
                continue
            runs = [("cpu", "32")] + [(args.accelerator, p) for p in precisions]
            results = [(device, p, fit(model, data_dir, Path(tmp) / f"{model}-{i}", args.epochs, device, p))
                       for i, (device, p) in enumerate(runs)]
            cpu_seconds = results[0][2]["train_seconds"]
            for device, precision, metrics in results:
                print(f"model={model} device={device} precision={precision} fit_s={metrics['train_seconds']:.2f} "
                      f"cpu_over_this={cpu_seconds / metrics['train_seconds']:.2f} "
                      f"test_accuracy={metrics['test']['accuracy']:.4f}", flush=True)


if __name__ == "__main__":
    main()
