"""``seqlab`` command line. Each subcommand parses its flags and calls the API.

Errors in the input (files, flags, configs) print one line and exit with
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from pathlib import Path

from seqlab import __version__
from seqlab.errors import SeqlabError

def _or_auto(kind):
    """argparse type: ``auto`` or a value of ``kind``."""
    def parse(text: str):
        return "auto" if text == "auto" else kind(text)

    parse.__name__ = f"{kind.__name__} or auto"
    return parse


TRAIN_FLAGS = [
    # flag, config key, type, help
    ("--data", "data.spec", str, "data set: a built-in name, a file, or aeon:NAME (see `seqlab datasets`)"),
    ("--model", "model.name", str, "model name (see `seqlab models`)"),
    ("--steps", "train.steps", _or_auto(int), "optimizer steps, rounded up to whole epochs (default auto: "
     "30 epochs' worth, at least 1000 (fewer for long sequences), at most 20000; see the README)"),
    ("--epochs", "train.epochs", _or_auto(int), "passes over the training split; alone an epoch budget, with "
     "--steps whichever ends first (default auto: from --steps)"),
    ("--batch-size", "train.batch_size", _or_auto(int), "sequences per step (default auto: N/4 rounded down to "
     "a power of two, within 16..64)"),
    ("--lr", "train.lr", _or_auto(float), "AdamW (peak) learning rate, or auto for Lightning's learning-rate "
     "finder (default 0.003)"),
    ("--hidden-size", "model.hidden_size", int, "recurrent hidden size H (default 128)"),
    ("--num-layers", "model.num_layers", int, "stacked recurrent layers (default 1)"),
    ("--dropout", "model.dropout", float, "dropout between stacked layers (default 0)"),
    ("--clip", "train.clip", float, "gradient-norm clipping, 0 to disable (default 1.0)"),
    ("--seed", "train.seed", int, "seed for split, weights and batch order (default 0)"),
    ("--backend", "model.backend", str, "recurrent kernels: torch (default) or fast, seqlab's own CPU kernels "
     "(float32 CPU; see the README)"),
    ("--threads", "train.threads", int, "torch CPU threads per process; 0 (default) chooses: the process's "
     "share of the usable cores, less one per other busy process at the start"),
    ("--accelerator", "train.accelerator", str, "cpu (default), gpu (needs torch's CUDA build), mps or auto"),
    ("--devices", "train.devices", str, "processes (cpu) or GPUs per machine: N, a list of GPU indices "
     "such as 0,1, or auto; more than one trains with DDP (default 1)"),
    ("--num-nodes", "train.num_nodes", int, "machines in a multi-node DDP run started by torchrun or SLURM "
     "(default 1)"),
    ("--precision", "train.precision", str, "32 (default), bf16-mixed (CPU or GPU) or 16-mixed (GPU only)"),
]

# OpenMP reads these once, when torch loads it, so only a process that has not imported torch yet can set
# them: the CLI does, before any command runs (a value already in the environment wins). Passive waiting
# puts a thread that reaches the end of a parallel region to sleep instead of spinning, so it gives its core
# back to whichever thread, of this process or another, still has work.
OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that build a run's config, shared by ``train`` and ``lr-find``."""
    for flag, key, kind, text in TRAIN_FLAGS:
        parser.add_argument(flag, type=kind, default=None, metavar=key.split(".")[1].upper(), help=text)
    parser.add_argument("--bidirectional", action="store_true", default=None, help="read sequences both ways")
    parser.add_argument("--config", type=Path, help="YAML file with data/model/train sections")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set model.head=attention (repeatable)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqlab",
        description="Recurrent sequence models: train, compare, evaluate and predict.",
        epilog="Run `seqlab COMMAND --help` for the flags of a command.",
    )
    parser.add_argument("--version", action="version", version=f"seqlab {__version__}",
                        help="print seqlab's version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    datasets = commands.add_parser(
        "datasets", help="list built-in data sets and supported file formats, or describe one data spec",
        description="Without flags: the built-in data, the file formats and the packaged sets. With --describe "
        "SPEC: what the spec holds (the splits a run would use, T and F, a histogram of sequence lengths, the "
        "class balance per split, or regression targets; for series the dates, frequency and season).",
        epilog="Example: seqlab datasets --describe aeon:JapaneseVowels")
    datasets.add_argument("--describe", metavar="SPEC", help="a data spec as --data takes it")
    commands.add_parser("models", help="list the model zoo: names, tasks, main options")

    train = commands.add_parser(
        "train",
        help="train a model; writes config, metrics, history, checkpoint and plots into --out",
        description="Train a model. Settings come from defaults, then --config FILE, then the flags "
        "below, then --set KEY=VALUE (later wins). An interrupted run resumes when the same "
        "command is run again.",
        epilog="Example: seqlab train --data digits --model gru --out runs/gru",
    )
    _add_run_flags(train)
    train.add_argument("--out", type=Path, required=True, help="run folder to write")
    train.add_argument("--overwrite", action="store_true", help="replace a different run already in --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar; print only the final metrics")

    evaluate = commands.add_parser("eval", help="evaluate a run folder; prints metrics and writes DIR/eval.json")
    evaluate.add_argument("--run", type=Path, required=True, help="run folder written by `seqlab train`")
    evaluate.add_argument("--data", help="evaluate on another data spec (same features and classes)")
    evaluate.add_argument("--split", choices=["test", "val", "train", "all"], default="test",
                          help="which split to evaluate (default test)")

    predict = commands.add_parser("predict", help="predict a class, with probabilities (a regression: the targets), "
                                  "for each sequence of a file")
    model_source = predict.add_mutually_exclusive_group(required=True)
    model_source.add_argument("--run", type=Path, help="run folder written by `seqlab train`")
    model_source.add_argument("--onnx", type=Path,
                              help="a classifier or regression exported by `seqlab export --format onnx`, run by ONNX Runtime "
                              "(no run folder needed)")
    predict.add_argument("--input", type=Path, required=True, help=".npz, .csv or .ts file of sequences")
    predict.add_argument("--out", type=Path, required=True, help="CSV file to write")
    predict.add_argument("--workers", type=int, default=None,
                         help="with --onnx: how many parts of each batch run at once, one per core "
                         "(default: the usable CPU cores)")

    forecast = commands.add_parser(
        "forecast", help="forecast a series with a forecast run; writes a CSV and a plot beside it",
        description="Forecast --horizon steps after the end of the run's series (or of --input), "
        "or after all but its last --holdout points, which are then shown and scored as truth.",
    )
    forecast.add_argument("--run", type=Path, required=True, help="forecast run folder")
    forecast.add_argument("--horizon", type=int, required=True, help="steps to forecast")
    forecast.add_argument("--input", help="series CSV with the run's column names and date frequency (checked); "
                          "default: the run's data")
    forecast.add_argument("--holdout", type=int, default=0, help="hide the last K points and compare with them")
    forecast.add_argument("--out", type=Path, required=True, help="CSV to write; the plot goes to the same name .png")

    generate = commands.add_parser("generate", help="sample text from a language-model run",
                                   description="Warm the model's state up on --prompt, then sample --length characters.")
    generate.add_argument("--run", type=Path, required=True, help="lm run folder")
    generate.add_argument("--prompt", required=True, help="text to start from (characters from the training text)")
    generate.add_argument("--length", type=int, default=300, help="characters to sample (default 300)")
    generate.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default 1.0)")
    generate.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest only (0: all)")
    generate.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    generate.add_argument("--skip-unknown", action="store_true", help="drop prompt characters outside the vocabulary")

    sine = commands.add_parser("sine", help="the seeds' sine experiment: RNN, LSTM, GRU rollouts from one value")
    sine.add_argument("--out", type=Path, default=Path("runs/sine"), help="folder for sine.json and the plot")
    sine.add_argument("--iterations", type=int, default=300, help="full-batch Adam iterations (default 300)")
    sine.add_argument("--hidden-size", type=int, default=16, help="hidden size (default 16)")
    sine.add_argument("--seed", type=int, default=0, help="seed (default 0)")

    airline = commands.add_parser(
        "airline-rnn", help="seed 004's airline experiment: a hand-written RNN cell, nn.RNN and a fully "
        "connected net on last month's passengers and the month; train against test error",
        description="Each model predicts this month's passengers from last month's and the calendar month "
        "(min-max scaled with the training months), reading the whole series; the loss covers the first "
        "--train-months. Writes airline.json (train and test RMSE per model, the hand-written cell against "
        "nn.RNN at the same weights) and airline_rnn.png.")
    airline.add_argument("--out", type=Path, default=Path("runs/airline-rnn"), help="folder for airline.json and "
                         "the plot")
    airline.add_argument("--iterations", type=int, default=2000, help="full-batch Adam iterations (default 2000)")
    airline.add_argument("--hidden-size", type=int, default=32, help="hidden size of every model (default 32)")
    airline.add_argument("--train-months", type=int, default=96, help="months that train, from 1949-01 "
                         "(default 96: 1949-1956; the other 48 test)")
    airline.add_argument("--seed", type=int, default=0, help="seed (default 0)")

    export = commands.add_parser(
        "export", help="export a run to ONNX, TorchScript or ncnn and prove it matches eager PyTorch",
        description="Export the run's model (its normaliser included) with dynamic batch and time axes (fixed with "
        "--static), run the "
        "export on inputs of several batch sizes and lengths, print the largest difference from eager PyTorch, "
        "and fail (removing the output) above --tolerance. --streaming exports a step model "
        "(x_t, state) -> (y_t, state').",
    )
    export.add_argument("--run", type=Path, required=True,
                        help="run folder: classification, forecast or language model (--streaming and ncnn: "
                             "classification)")
    export.add_argument("--format", required=True, help="onnx, torchscript or ncnn")
    export.add_argument("--streaming", action="store_true", help="export the step model with explicit state")
    export.add_argument("--out", type=Path, required=True,
                        help="file to write (ncnn: NAME.param and NAME.bin, plus NAME.json for a step model)")
    export.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed difference (default 1e-4)")
    export.add_argument("--fixed-length", action="store_true",
                        help="leave out the lengths input of models that pack variable lengths: every sequence in "
                             "a batch then has the batch's length (a smaller, faster graph)")
    export.add_argument("--static", nargs="?", const="", default=None, metavar="BxT",
                        help="onnx: fix the input shapes instead of dynamic batch and time axes; alone: batch 1 and "
                             "the run's length; or sizes such as 8x29 (checked at that shape only)")
    export.add_argument("--exporter", default="auto", choices=["auto", "dynamo", "legacy"],
                        help="onnx: torch.export's exporter (dynamo) or the TorchScript-based one (legacy); auto "
                             "(default) takes dynamo for --static graphs without lengths, legacy otherwise "
                             "(README, Deployment, says why)")
    export.add_argument("--keep-intermediate", action="store_true",
                        help="ncnn: keep pnnx's files (TorchScript model.pt, pnnx.param/.bin/.py/.onnx, pnnx.log) "
                             "in NAME.pnnx/ beside NAME.param; by default they are removed")
    export.add_argument("--quantize", choices=["int8"],
                        help="onnx, classification: write int8 weights (ONNX Runtime's dynamic quantiser) and report "
                             "accuracy and speed against float32 on the run's test split (also NAME.quantization.json)")

    stream = commands.add_parser(
        "stream", help="predict frame by frame from a CSV file or stdin, the recurrent state carried",
        description="Read frames (one CSV row of features each; a header row is skipped) and write one prediction "
        "per frame, the state carried from the first frame; or, with --window W --stride S, one prediction per "
        "window of W frames every S frames, each window read from a fresh state. Models that cannot run step by "
        "step (convolutional front ends, TCN, bidirectional layers) are read window by window with their "
        "whole-sequence model, so they need --window (for cnn-gru and cnn-gru-parallel, the trained length).",
    )
    stream.add_argument("--run", type=Path, required=True,
                        help="classification run folder, or a step model written by "
                             "seqlab export --streaming (.onnx, or ncnn .param with its .bin and .json)")
    stream.add_argument("--input", required=True, help="CSV file of frames, or - for stdin")
    stream.add_argument("--out", type=Path, help="CSV to write (default: stdout)")
    stream.add_argument("--window", type=int, default=0, help="frames per window (default: no windows)")
    stream.add_argument("--stride", type=int, default=0, help="frames between windows")
    stream.add_argument("--backend", default="compiled",
                        help="for run folders: compiled (default, seqlab's batch-1 kernels) or eager (PyTorch); "
                             "exported files run on ONNX Runtime or ncnn")

    inspect = commands.add_parser(
        "inspect", help="look inside a trained recurrent classifier: gradient flow over time, gate activity",
        description="Inspections of classification runs; see `seqlab inspect gradients --help`.",
    )
    inspections = inspect.add_subparsers(dest="inspection", metavar="INSPECTION", required=True)
    gradients = inspections.add_parser(
        "gradients", help="norm of dL/dh_t per time step and layer, and of dL/dx_t, averaged over sequences",
        description="Back-propagate the summed cross-entropy of a batch of sequences and write, per time step, "
        "the mean norm of the total gradient w.r.t. each layer's hidden state h_t (through the head and the "
        "recurrence) and w.r.t. the input x_t: gradients.json and gradients.png (log scale) in --out. "
        "Several --run folders (say rnn, lstm and gru trained on the same data) share one plot.",
        epilog="Example: seqlab inspect gradients --run runs/rnn --run runs/gru --out runs/compare",
    )
    gradients.add_argument("--run", type=Path, action="append", required=True,
                           help="classification run folder with an RNN, GRU or LSTM (repeatable)")
    gradients.add_argument("--input", type=Path,
                           help="labelled .npz, .csv or .ts sequences instead of the run's own data")
    gradients.add_argument("--split", choices=["test", "val", "train"], default="test",
                           help="which split of the run's data to read when there is no --input (default test)")
    gradients.add_argument("--batch", type=int, default=256, help="how many sequences to average, the first ones "
                           "(default 256)")
    gradients.add_argument("--out", type=Path, required=True, help="folder for gradients.json and gradients.png")

    gates = inspections.add_parser(
        "gates", help="LSTM/GRU gates over time: mean activation and how often each gate saturates",
        description="Step the run's LSTM or GRU encoder (also inside a hybrid) with its own weights over a batch of "
        "sequences and write, per gate and time step, the mean activation and the fractions of units above "
        "--threshold and below 1 - threshold (tanh candidates: below -threshold): gates.json and gates.png. "
        "A forget gate above 0.95 keeps its cell; a GRU update gate above 0.95 copies the state forward.",
        epilog="Example: seqlab inspect gates --run runs/lstm --out runs/lstm-gates",
    )
    gates.add_argument("--run", type=Path, required=True, help="classification run folder with an LSTM or GRU")
    gates.add_argument("--input", type=Path, help=".npz, .csv or .ts sequences instead of the run's own data")
    gates.add_argument("--split", choices=["test", "val", "train"], default="test",
                       help="which split of the run's data to read when there is no --input (default test)")
    gates.add_argument("--batch", type=int, default=256, help="how many sequences, the first ones (default 256)")
    gates.add_argument("--threshold", type=float, default=0.95, help="saturation threshold in (0.5, 1) "
                       "(default 0.95)")
    gates.add_argument("--out", type=Path, required=True, help="folder for gates.json and gates.png")

    explain = commands.add_parser(
        "explain", help="attribute a classifier's decision to (time step, feature) by integrated gradients or saliency",
        description="Explain the logit of the target class (default: the predicted one) for chosen sequences of "
        "--input, through Captum: integrated gradients from the all-zero (training-mean) baseline, whose "
        "attributions sum to logit(x) - logit(baseline), or saliency, the signed gradient. Writes "
        "attributions.json and explain_<index>.png per sequence (the signal coloured by attribution, the "
        "attribution map, and attention weights for attention models; padding greyed out).",
        epilog="Example: seqlab explain --run runs/ablstm --input data/new.npz --index 0 5 --out runs/explain",
    )
    explain.add_argument("--run", type=Path, required=True, help="classification run folder (any model)")
    explain.add_argument("--input", type=Path, required=True, help=".npz, .csv or .ts sequences with the run's "
                         "features")
    explain.add_argument("--method", choices=["integrated-gradients", "saliency"], default="integrated-gradients",
                         help="attribution method (default integrated-gradients)")
    explain.add_argument("--index", type=int, nargs="+", default=None,
                         help="which sequences of --input, counted from 0 (default: 0)")
    explain.add_argument("--target", help="class name to explain (default: each sequence's predicted class)")
    explain.add_argument("--steps", type=int, default=64,
                         help="integrated gradients: points on the path from the baseline (default 64)")
    explain.add_argument("--out", type=Path, required=True, help="folder for attributions.json and the plots")

    profile = commands.add_parser(
        "profile", help="time a few training and inference steps of a run under torch.profiler",
        description="Train a copy of the run's model for --steps steps (after --warmup unprofiled ones) and run as "
        "many inference steps, under torch.profiler. Writes trace.json (open it in ui.perfetto.dev or "
        "chrome://tracing) and profile.json (regions: milliseconds per step spent on data loading, input "
        "projection, recurrence, head, backward and optimizer; step_ms: the measured step), and prints the table.",
        epilog="Example: seqlab profile --run runs/gru --backend fast --out runs/gru-profile",
    )
    profile.add_argument("--run", type=Path, required=True, help="classification run folder with a recurrent model")
    profile.add_argument("--backend", default="torch", help="recurrent kernels to profile: torch (torch.nn's) or "
                         "fast (seqlab's compiled CPU loops) (default torch)")
    profile.add_argument("--steps", type=int, default=5, help="profiled steps of each kind (default 5)")
    profile.add_argument("--warmup", type=int, default=2, help="unprofiled steps first (compilation, buffers; "
                         "default 2)")
    profile.add_argument("--batch-size", type=int, default=None, help="sequences per step (default: the run's)")
    profile.add_argument("--out", type=Path, required=True, help="folder for trace.json and profile.json")

    lr_find = commands.add_parser(
        "lr-find", help="sweep the learning rate on a short run; plot loss against rate and suggest one",
        description="Build the run exactly as `seqlab train` would (same flags, --config and --set), then let "
        "Lightning's learning-rate finder raise the rate exponentially from --min-lr to --max-lr over --num-steps "
        "optimizer steps. Prints the suggested rate (the steepest fall of the smoothed loss) and writes the curve "
        "to OUT/lr_find.png. A model whose loss never falls is reported as diverging (exit 2). Classification only.",
        epilog="Example: seqlab lr-find --data aeon:BasicMotions --model gru --out runs/lr-gru",
    )
    _add_run_flags(lr_find)
    lr_find.add_argument("--out", type=Path, default=Path("runs/lr-find"),
                         help="folder for lr_find.png and lr_find.json (default runs/lr-find)")
    lr_find.add_argument("--min-lr", type=float, default=1e-6, help="first rate tried (default 1e-6)")
    lr_find.add_argument("--max-lr", type=float, default=1.0, help="last rate tried (default 1)")
    lr_find.add_argument("--num-steps", type=int, default=100, help="optimizer steps of the sweep (default 100)")

    _experiment_parsers(commands)

    demo = commands.add_parser(
        "demo", help="the main job: compare the core models on real data, plus forecasting, LM and sine; one report",
        description="A seqlab compare of rnn, lstm and gru on digits, aeon:JapaneseVowels and aeon:BasicMotions "
        "(plus the sensing models on BasicMotions), the airline forecast, a character language model and the "
        "seeds' sine experiment, each beside its baselines; writes OUT/results.csv, OUT/report.md and a "
        "self-contained OUT/report.html. A rerun reuses the runs that finished with the same settings.")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for the runs (default runs/demo)")
    demo.add_argument("--epochs", type=int, default=None, help="override each run's epochs (for a quick look)")
    demo.add_argument("--quiet", action="store_true", help="no progress lines; the tables are still printed")
    demo.add_argument("--no-fitted-baselines", action="store_true",
                      help="skip the baselines that need fitting (MiniRocket, ETS, ARIMA, the n-gram), as "
                      "train.baselines=false does; majority, naive and unigram stay")
    return parser


def cmd_datasets(args) -> None:
    if args.describe:
        from seqlab.data.describe import describe

        print(describe(args.describe))
        return
    from seqlab.data.sources import BUILTIN, FILE_FORMATS, PREFIXES, aeon_names
    from seqlab.reports.tables import format_table

    print("Built-in data sets:")
    print(format_table(["name", "description"], [[k, v[1]] for k, v in BUILTIN.items()]))
    print("\nFiles (pass the path as --data):")
    print(format_table(["spec", "layout"], list(FILE_FORMATS.items())))
    print("\nForecasting (task forecast):")
    print(format_table(["spec", "description"], [
        ["sine", "x_k = sin(0.1 k), k = 0..999 (period 62.8 steps), generated"],
        ["airline", "monthly international airline passengers, 1949-01 to 1960-12 (144 values), shipped"],
        ["series:PATH.csv", "header; optional date column (date, month, time, timestamp, ds, or an unnamed first "
         "column of dates); named numeric series columns; an unnamed 0..N-1 index column is dropped"],
    ]))
    print("\nLanguage modelling (task lm):")
    print(format_table(["spec", "description"], [
        ["text:founding", "the Declaration of Independence, Constitution and Bill of Rights (37 KB, public domain), shipped"],
        ["text:PATH", "any UTF-8 text file; the last 10% is held out for validation"],
    ]))
    print("\nPackaged data:")
    print(format_table(["spec", "description"], list(PREFIXES.items())))
    try:
        print("\naeon data sets on this machine: " + ", ".join(aeon_names()))
    except SeqlabError:
        print("\naeon is not installed: `pip install aeon` to use aeon:NAME")


def cmd_models(args) -> None:
    import shutil
    import textwrap

    from seqlab.models.registry import get_model_entry, model_names

    # one block per model, wrapped to the terminal (at most 100 columns), so no line runs off the screen
    width = min(shutil.get_terminal_size((MODELS_WIDTH, 24)).columns, MODELS_WIDTH)
    name_width = max(len(name) for name in model_names()) + 2
    indent = " " * name_width
    for name in model_names():
        entry = get_model_entry(name)
        defaults = entry.defaults()
        options = ", ".join(f"{key}={value}" for key, value in defaults.items())
        print(textwrap.fill(entry.summary, width, initial_indent=name.ljust(name_width), subsequent_indent=indent))
        print(textwrap.fill(", ".join(entry.tasks), width, initial_indent=indent + "tasks: ",
                            subsequent_indent=indent + "       "))
        exports = "onnx, torchscript" + (", ncnn" if entry.ncnn else "") + ("; streams frame by frame (classification)"
                                                                             if entry.streamable else "")
        print(textwrap.fill(exports, width, initial_indent=indent + "export: ", subsequent_indent=indent + "  "))
        print(textwrap.fill(options, width, initial_indent=indent + "options: ", subsequent_indent=indent + "  ",
                            break_on_hyphens=False))
    print("\nSet options with flags (--hidden-size ...) or --set model.KEY=VALUE.")


MODELS_WIDTH = 100  # the widest line `seqlab models` prints


def build_tree(args, flags=None) -> dict:
    """The config tree of ``--config``, then the train flags given, then ``--set``."""
    from seqlab.config import apply_override, read_config_file

    tree = read_config_file(args.config) if args.config else {}
    tree = {k: (dict(v) if isinstance(v, dict) else v) for k, v in tree.items() if v is not None}
    for flag, key, _, _ in TRAIN_FLAGS if flags is None else flags:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            section, name = key.split(".")
            tree.setdefault(section, {})[name] = value
    if args.bidirectional:
        tree.setdefault("model", {})["bidirectional"] = True
    for assignment in args.set:
        apply_override(tree, assignment)
    return tree


def build_config(args):
    from seqlab.config import resolve_config

    return resolve_config(build_tree(args))


def cmd_train(args) -> None:
    from seqlab.training.pipeline import train

    config = build_config(args)
    result = train(config, args.out, overwrite=args.overwrite, quiet=args.quiet)
    if result.rank_zero:  # DDP: the other processes stay silent
        _print_metrics(result.metrics)
        print(f"Run folder: {result.out}")


def _print_metrics(metrics: dict) -> None:
    split = metrics.get("split") or ("test" if "test" in metrics else "val")
    parts = [f"{k}={v:.4f}" for k, v in metrics[split].items() if isinstance(v, float)]
    extra = f" params={metrics['params']} train_seconds={metrics['train_seconds']:.1f}" if "params" in metrics else ""
    print(f"{metrics.get('model', '')} {split}: " + " ".join(parts) + extra)
    for name, values in metrics.get("baselines", {}).items():
        print(f"  baseline {name}: " + " ".join(f"{k}={v:.4f}" for k, v in values.items() if isinstance(v, float)))
    for warning in metrics.get("warnings", []):
        print(f"warning: {warning}")


def cmd_lr_find(args) -> None:
    from seqlab.tasks.classification import lr_find_classification

    config = build_config(args)
    result = lr_find_classification(config, args.out, args.min_lr, args.max_lr, args.num_steps)
    print(f"suggested learning rate: {result.suggestion:.3g} (plot: {result.plot}); "
          f"use it with --lr {result.suggestion:.3g}")


def cmd_eval(args) -> None:
    from seqlab.io import write_json
    from seqlab.training.pipeline import evaluate_run

    metrics = evaluate_run(args.run, args.data, args.split)
    write_json(args.run / "eval.json", metrics)
    _print_metrics(metrics)
    split = metrics.get(metrics.get("split") or args.split, {})  # a language model reports its validation split
    if "report" in split:  # classification: per-class precision, recall and F1
        print(split["report"].rstrip())
    print(f"Written: {args.run / 'eval.json'}")


def cmd_predict(args) -> None:
    from seqlab.predict import predict_file

    if args.workers is not None and args.onnx is None:
        raise SeqlabError("--workers: applies to --onnx only")
    count = predict_file(args.run, args.input, args.out, onnx=args.onnx, workers=args.workers)
    print(f"Wrote {count} predictions to {args.out}")


def cmd_forecast(args) -> None:
    from seqlab.tasks.forecast import forecast_file

    result = forecast_file(args.run, args.horizon, args.out, args.input, args.holdout)
    print(f"Forecast of {result['horizon']} steps written to {result['csv']} (plot: {result['plot']})")
    if "metrics" in result:
        print("against the held-out points: " + " ".join(
            f"{k}={v:.4f}" for k, v in result["metrics"].items() if v is not None))


def cmd_generate(args) -> None:
    from seqlab.tasks.lm import generate_from_run

    print(generate_from_run(args.run, args.prompt, args.length, args.temperature, args.top_k, args.seed,
                            args.skip_unknown))


def cmd_sine(args) -> None:
    from seqlab.experiments.sine import run_sine_experiment

    run_sine_experiment(args.out, args.iterations, args.hidden_size, seed=args.seed)


def cmd_airline_rnn(args) -> None:
    from seqlab.experiments.airline import run_airline_experiment

    run_airline_experiment(args.out, args.iterations, args.hidden_size, train_months=args.train_months,
                           seed=args.seed)


def cmd_export(args) -> None:
    from seqlab.export import export_run

    from seqlab.io import check_output_path

    if not args.tolerance > 0:
        raise SeqlabError(f"--tolerance: expected a positive number, got {args.tolerance}")
    check_output_path(args.out, "--out", [args.run / "model.pt"])
    report = export_run(args.run, args.format, args.out, args.streaming, args.tolerance, args.fixed_length,
                        static=parse_static(args.static, args.run), exporter=args.exporter,
                        keep_intermediate=args.keep_intermediate, quantize=args.quantize)
    kind = "step model" if report.streaming else "model"
    for batch, length, diff in report.cases:
        print(f"  batch {batch:2d} length {length:4d}: max |exported - eager| = {diff:.3g}")
    print(f"Exported {kind} to {report.path} ({report.format}); largest difference {report.max_abs_diff:.3g} "
          f"<= tolerance {args.tolerance:g}" + (f"; {report.note}" if report.note else ""))
    q = report.quantization
    if q:
        from seqlab.export.quantize import report_path

        print(f"int8 ({', '.join(q['int8_operators'])}) against float32 on the test split ({q['sequences']} sequences): "
              f"accuracy {q['accuracy']['float32']:.4f} -> {q['accuracy']['int8']:.4f} "
              f"({q['accuracy_change']:+.4f}), predictions agree {q['agreement']:.2%}, largest logit change "
              f"{q['max_abs_logit_change']:.3g}; file {q['bytes']['float32']} -> {q['bytes']['int8']} bytes; "
              f"{q['speedup']:.2f}x the float32 speed; written to {report_path(report.path)}")


def parse_static(value: str | None, run: Path) -> tuple[int, int] | None:
    """``--static`` alone: batch 1 and the run's length; ``--static BxT``: those sizes."""
    if value is None:
        return None
    if value == "":
        from seqlab.export.exporter import run_length
        from seqlab.runs import load_run

        return 1, run_length(load_run(run))
    parts = value.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise SeqlabError(f"--static: expected BATCHxSTEPS such as 8x29 (or nothing: batch 1, the run's length), "
                          f"got {value!r}")
    return int(parts[0]), int(parts[1])


def cmd_stream(args) -> None:
    import contextlib

    from seqlab.serving.stream_csv import check_window, stream_file
    from seqlab.io import check_output_path, open_atomic

    check_window(args.window, args.stride)  # before any output file is opened
    if args.input != "-" and not Path(args.input).is_file():
        raise SeqlabError(f"--input {args.input}: file not found")
    if args.out:
        check_output_path(args.out, "--out", [args.run, None if args.input == "-" else Path(args.input)])
    if args.input == "-":
        source, name = contextlib.nullcontext(sys.stdin), "stdin"
    else:
        source, name = Path(args.input).open(newline="", encoding="utf-8"), args.input
    # --out is written to a temporary file and renamed at the end: an existing file is
    # replaced only by a complete stream, never emptied by a failed one
    target = open_atomic(args.out) if args.out else contextlib.nullcontext(sys.stdout)
    with source as handle, target as out:
        stream_file(args.run, handle, name, out, args.window, args.stride, args.backend)


def cmd_inspect(args) -> None:
    if args.inspection == "gradients":
        from seqlab.inspect import inspect_gradients

        flows = inspect_gradients(args.run, args.out, args.input, args.split, args.batch)
        for flow in flows:
            top = flow.hidden[-1]
            inputs = f"; ||dL/dx_t|| {flow.input[0]:.3g} .. {flow.input[-1]:.3g}" if flow.input else ""
            print(f"{flow.label}: top layer ||dL/dh_t|| {top[0]:.3g} at t=0, {top[-1]:.3g} at t={len(top) - 1}"
                  f"{inputs} (mean of {flow.sequences} sequences)")
        print(f"Written: {args.out / 'gradients.json'}, {args.out / 'gradients.png'}")
    elif args.inspection == "gates":
        from seqlab.inspect import inspect_gates

        activity = inspect_gates(args.run, args.out, args.input, args.split, args.batch, args.threshold)
        for entry in activity.layers:
            parts = [f"{name} mean {stats['mean']:.3f} high {stats['high']:.3f} low {stats['low']:.3f}"
                     for name, stats in entry["overall"].items()]
            print(f"layer {entry['layer']} {entry['direction']}: " + "; ".join(parts))
        print(f"Written: {args.out / 'gates.json'}, {args.out / 'gates.png'}")


def cmd_explain(args) -> None:
    from seqlab.inspect import explain

    report = explain(args.run, args.input, args.out, args.method, args.index, args.target, args.steps)
    for record in report["sequences"]:
        gap = f", completeness gap {record['delta']:.2g}" if record["delta"] is not None else ""
        print(f"sequence {record['index']} (id {record['id']}): predicted {record['predicted']}, explained "
              f"{record['target']} (p={record['probability']:.3f}); attributions sum to {record['total']:.4g}{gap}")
    print(f"Written: {args.out / 'attributions.json'} and {len(report['sequences'])} explain_<index>.png")


def cmd_profile(args) -> None:
    from seqlab.inspect import profile_run
    from seqlab.reports.tables import format_table

    report = profile_run(args.run, args.out, args.backend, args.steps, args.warmup, args.batch_size)
    for title, phase in (("training step", report), ("inference step", report["inference"])):
        regions = phase["regions"]
        step = phase["step_ms"]
        rows = [[name, f"{ms:.2f}", f"{100 * ms / step:.0f}%"] for name, ms in regions.items()]
        rows.append(["(sum of regions)", f"{sum(regions.values()):.2f}", f"{100 * sum(regions.values()) / step:.0f}%"])
        print(f"{report['model']} {title}, backend {report['backend']}, batch {report['batch_size']}: "
              f"{step:.2f} ms (the median of {report['steps']} steps)")
        print(format_table(["region", "ms", "share"], rows))
    print(f"Written: {args.out / 'profile.json'}, {args.out / 'trace.json'} (open in ui.perfetto.dev or chrome://tracing)")


def cmd_demo(args) -> None:
    from seqlab.demo import run_demo

    if args.epochs is not None and args.epochs < 1:
        raise SeqlabError(f"--epochs: expected an integer >= 1, got {args.epochs}")
    run_demo(args.out, quiet=args.quiet, epochs=args.epochs, fitted_baselines=not args.no_fitted_baselines)


# ----------------------------------------------------------------------------
# Experiments: compare, cv, tune

# The train flags an experiment applies to all its runs: the grid itself sets the model, the data and the seed.
GRID_FLAGS = [row for row in TRAIN_FLAGS if row[0] not in ("--data", "--model", "--seed")]


def _list_of(kind):
    """argparse type: a comma-separated list of ``kind``."""
    def parse(text: str):
        return [kind(part.strip()) for part in text.split(",") if part.strip()]

    parse.__name__ = f"comma-separated {kind.__name__}s"
    return parse


def _common_flags(parser, epilog_flags: bool = True) -> None:
    for flag, key, kind, text in GRID_FLAGS:
        parser.add_argument(flag, type=kind, default=None, metavar=key.split(".")[1].upper(), help=text)
    parser.add_argument("--bidirectional", action="store_true", default=None, help="read sequences both ways")
    parser.add_argument("--config", type=Path, help="YAML file with data/model/train sections applied to every run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key in every run, e.g. --set model.head=attention (repeatable)")


def _experiment_parsers(commands) -> None:
    compare = commands.add_parser(
        "compare", help="train a grid of models x data sets x seeds; results.csv and a report (md + html)",
        description="Train every model on every data set with every seed, one run folder per cell "
        "(OUT/DATA/MODEL/seedK), with the settings given here (--config, flags, --set) applied to all. "
        "Writes OUT/results.csv (one row per run: model, data, seed and every metric), OUT/report.md and a "
        "self-contained OUT/report.html: per data set, mean ± sd over seeds beside the baselines, bar charts "
        "and learning curves; with 3 or more data sets, a critical-difference diagram. Running the same "
        "command again reuses finished runs and resumes interrupted ones.",
        epilog="Example: seqlab compare --models rnn,lstm,gru --data digits,aeon:BasicMotions --seeds 0,1 "
        "--epochs 2 --out runs/compare",
    )
    compare.add_argument("--models", type=_list_of(str), default=None,
                         help="comma-separated model names (`seqlab models`) or config files (their file name "
                         "labels the runs)")
    compare.add_argument("--data", type=_list_of(str), default=None,
                         help="comma-separated data specs (`seqlab datasets`), all of one task")
    compare.add_argument("--seeds", type=_list_of(int), default=None, help="comma-separated seeds (default 0)")
    compare.add_argument("--preset", help="a compare preset (models, data, seeds and settings), by name or file; "
                         "flags given here replace its lists and add to its settings (presets: "
                         "seed001-rnn-lstm-gru, ...; see the README)")
    _common_flags(compare)
    compare.add_argument("--workers", type=int, default=1,
                         help="runs trained at once, each in its own process on its share of the cores (default 1)")
    compare.add_argument("--out", type=Path, required=True, help="folder for the run folders, results.csv and "
                         "the report")
    compare.add_argument("--overwrite", action="store_true",
                         help="retrain cells whose folder holds a run of a different config (default: refuse)")
    compare.add_argument("--quiet", action="store_true", help="no progress lines")
    _cv_parser(commands)
    _tune_parser(commands)


def _tune_parser(commands) -> None:
    tune = commands.add_parser(
        "tune", help="search hyperparameters with Optuna (TPE, pruning); best.yaml and a report",
        description="Train --trials runs of --model on --data, each with settings drawn by Optuna's TPE sampler "
        "from the search space (defaults per model: learning rate, batch size, hidden size, layers, dropout, "
        "head; or --space FILE), minimising the validation loss (forecast: validation RMSE); unpromising trials "
        "are pruned after each epoch. The study is kept in OUT/study.db (SQLite), so a killed tune continues "
        "when the same command is run again, until the study holds --trials finished trials. --storage URL "
        "shares one study between workers on several machines. Writes OUT/trials/trial-NNNN (run folders), "
        "OUT/best.yaml (seqlab train --config OUT/best.yaml trains the best trial again), OUT/report.md and "
        "OUT/report.html (the trials and Optuna's plots).",
        epilog="Example: seqlab tune --model gru --data aeon:BasicMotions --trials 30 --epochs 20 --out runs/tune",
    )
    tune.add_argument("--model", required=True, help="model name (`seqlab models`) or a config file")
    tune.add_argument("--data", required=True, help="data spec (`seqlab datasets`)")
    tune.add_argument("--trials", type=int, required=True,
                      help="finished (complete or pruned) trials the study should hold; a rerun adds the missing ones")
    tune.add_argument("--space", type=Path, help="YAML search space: KEY: {type: int|float, low, high, log} or "
                      "{type: categorical, choices: [...]}, KEY a config key such as train.lr (see the README)")
    tune.add_argument("--storage", help="Optuna storage URL shared by several workers, e.g. "
                      "postgresql://USER:PASSWORD@HOST/DB (needs psycopg2) or sqlite:///PATH "
                      "(default: sqlite in OUT/study.db)")
    tune.add_argument("--study", help="study name in the storage (default MODEL-DATA)")
    tune.add_argument("--seed", type=int, default=0, help="seed of every trial's run and of the sampler (default 0)")
    _common_flags(tune)
    tune.add_argument("--out", type=Path, required=True, help="folder for the trials, study.db, best.yaml, report")
    tune.add_argument("--quiet", action="store_true", help="no line per trial")


def _folds(text: str):
    """argparse type for --folds: an integer, or ``all`` (one fold per group)."""
    return None if text == "all" else int(text)


_folds.__name__ = "integer or all"


def _cv_parser(commands) -> None:
    cv = commands.add_parser(
        "cv", help="cross-validate a model: stratified or group k-fold, one run per fold; cv.json and a report",
        description="Pool the data set's parts, split them into --folds stratified folds (--repeats times, "
        "reshuffled) and train one run per fold, the fold as its test split; validation comes out of the other "
        "folds and the normalisation is fitted on each run's training split. --groups keeps every group on one "
        "side (group k-fold): groups come from a groups array in an .npz file, a group column in a CSV file, or, "
        "for deap:DIR, the subjects. --folds all with --groups leaves one group out per fold (deap: "
        "leave-one-subject-out). Writes OUT/foldK run folders, OUT/cv.json (folds: each fold's metrics; mean, "
        "std: metric -> value), OUT/report.md and OUT/report.html. Running it again reuses finished folds.",
        epilog="Example: seqlab cv --model gru --data aeon:BasicMotions --folds 5 --epochs 20 --out runs/cv",
    )
    cv.add_argument("--model", required=True, help="model name (`seqlab models`) or a config file")
    cv.add_argument("--data", required=True, help="classification data spec (`seqlab datasets`)")
    cv.add_argument("--folds", type=_folds, default=5,
                    help="K (default 5; at most the smallest class's size), or all with --groups")
    cv.add_argument("--repeats", type=int, default=1, help="repeated K-fold: reshuffled splits (default 1)")
    cv.add_argument("--groups", action="store_true", help="group k-fold over the data's groups (see above)")
    cv.add_argument("--seed", type=int, default=0, help="seed of the folds, splits and weights (default 0)")
    _common_flags(cv)
    cv.add_argument("--workers", type=int, default=1, help="folds trained at once, each in its own process "
                    "(default 1)")
    cv.add_argument("--out", type=Path, required=True, help="folder for the fold runs, cv.json and the report")
    cv.add_argument("--overwrite", action="store_true", help="retrain folds whose folder holds another config")
    cv.add_argument("--quiet", action="store_true", help="no progress lines")


def cmd_cv(args) -> None:
    from seqlab.experiments.cv import cross_validate

    common = build_tree(args, GRID_FLAGS)
    common.setdefault("train", {})["seed"] = args.seed
    cross_validate(args.model, args.data, args.out, args.folds, args.repeats, args.groups, common,
                   workers=args.workers, overwrite=args.overwrite, quiet=args.quiet)


def cmd_tune(args) -> None:
    from seqlab.experiments.tune import read_space, tune

    common = build_tree(args, GRID_FLAGS)
    common.setdefault("train", {})["seed"] = args.seed
    tune(args.model, args.data, args.trials, args.out, common, read_space(args.space) if args.space else None,
         args.storage, args.study, args.seed, args.quiet)


def cmd_compare(args) -> None:
    from seqlab.experiments.compare import compare, merge_trees, read_preset

    preset = read_preset(args.preset) if args.preset else {}
    common = merge_trees(preset.get("config", {}), build_tree(args, GRID_FLAGS))
    models = args.models or [str(m) for m in preset.get("models", [])]
    data = args.data or [str(d) for d in preset.get("data", [])]
    seeds = args.seeds or [int(s) for s in preset.get("seeds", [0])]
    if not models:
        raise SeqlabError("--models: expected model names or config files (or a --preset that names them)")
    if not data:
        raise SeqlabError("--data: expected data specs (or a --preset that names them)")
    compare(models, data, seeds, args.out, common, workers=args.workers, overwrite=args.overwrite,
            quiet=args.quiet, title=preset.get("title", "seqlab compare"))


COMMANDS = {"datasets": cmd_datasets, "models": cmd_models, "train": cmd_train, "eval": cmd_eval,
            "predict": cmd_predict, "forecast": cmd_forecast, "generate": cmd_generate, "sine": cmd_sine,
            "airline-rnn": cmd_airline_rnn,
            "export": cmd_export, "stream": cmd_stream, "inspect": cmd_inspect, "explain": cmd_explain,
            "profile": cmd_profile, "demo": cmd_demo, "lr-find": cmd_lr_find,
            "compare": cmd_compare, "tune": cmd_tune, "cv": cmd_cv}


def main(argv: list[str] | None = None) -> int:
    for name, value in OPENMP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    args = _parser().parse_args(argv)
    # torch's note that a projected LSTM runs outside oneDNN says nothing a user can act on
    warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")
    try:
        COMMANDS[args.command](args)
    except SeqlabError as error:
        print(f"seqlab {args.command}: error: {one_line(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seqlab {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (seqlab stream ... | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as error:  # a full disk, a read-only folder, a path that is a folder: name the file
        print(f"seqlab {args.command}: error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as error:
        if not out_of_memory(error):
            raise  # a programming error keeps its traceback
        found = re.search(r"allocate (\d+) bytes", str(error))
        size = f" ({int(found.group(1)) / 2**30:.3g} GiB asked for)" if found else ""
        print(f"seqlab {args.command}: error: out of memory{size}; expected settings that fit this machine "
              "(a smaller --hidden-size, --batch-size or input)", file=sys.stderr)
        return 2
    return 0


def one_line(message: str) -> str:
    """Escape line breaks and other control characters (from a file's content, say) as Python does."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)


def out_of_memory(error: BaseException) -> bool:
    """A failed allocation: Python's MemoryError, or torch's CPU (or CUDA) allocator refusing."""
    text = str(error)
    return isinstance(error, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()


def describe_os_error(error: OSError) -> str:
    """``PATH: No space left on device`` (both paths of a failed rename)."""
    reason = error.strerror or str(error) or type(error).__name__
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else f"{reason} ({type(error).__name__})"


if __name__ == "__main__":
    raise SystemExit(main())
