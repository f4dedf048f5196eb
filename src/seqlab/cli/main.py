"""``seqlab`` command line. Each subcommand parses its flags and calls the API.

Errors in the input (files, flags, configs) print one line and exit with
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seqlab.errors import SeqlabError

TRAIN_FLAGS = [
    # flag, config key, type, help
    ("--data", "data.spec", str, "data set: a built-in name, a file, or aeon:NAME (see `seqlab datasets`)"),
    ("--model", "model.name", str, "model name (see `seqlab models`)"),
    ("--epochs", "train.epochs", int, "maximum epochs (default 40)"),
    ("--batch-size", "train.batch_size", int, "sequences per step (default 64)"),
    ("--lr", "train.lr", float, "AdamW learning rate (default 0.003)"),
    ("--hidden-size", "model.hidden_size", int, "recurrent hidden size H (default 128)"),
    ("--num-layers", "model.num_layers", int, "stacked recurrent layers (default 1)"),
    ("--dropout", "model.dropout", float, "dropout between stacked layers (default 0)"),
    ("--clip", "train.clip", float, "gradient-norm clipping, 0 to disable (default 1.0)"),
    ("--seed", "train.seed", int, "seed for split, weights and batch order (default 0)"),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqlab",
        description="Recurrent sequence models: train, compare, evaluate and predict.",
        epilog="Run `seqlab COMMAND --help` for the flags of a command.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser("datasets", help="list built-in data sets and supported file formats")
    commands.add_parser("models", help="list the model zoo: names, tasks, main options")

    train = commands.add_parser(
        "train",
        help="train a model; writes config, metrics, history, checkpoint and plots into --out",
        description="Train a model. Settings come from defaults, then --config FILE, then the flags "
        "below, then --set KEY=VALUE (later wins). An interrupted run resumes when the same "
        "command is run again.",
        epilog="Example: seqlab train --data digits --model gru --out runs/gru",
    )
    for flag, key, kind, text in TRAIN_FLAGS:
        train.add_argument(flag, type=kind, default=None, metavar=key.split(".")[1].upper(), help=text)
    train.add_argument("--bidirectional", action="store_true", default=None, help="read sequences both ways")
    train.add_argument("--config", type=Path, help="YAML file with data/model/train sections")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config key, e.g. --set model.head=attention (repeatable)")
    train.add_argument("--out", type=Path, required=True, help="run folder to write")
    train.add_argument("--overwrite", action="store_true", help="replace a different run already in --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar; print only the final metrics")

    evaluate = commands.add_parser("eval", help="evaluate a run folder; prints metrics and writes DIR/eval.json")
    evaluate.add_argument("--run", type=Path, required=True, help="run folder written by `seqlab train`")
    evaluate.add_argument("--data", help="evaluate on another data spec (same features and classes)")
    evaluate.add_argument("--split", choices=["test", "val", "train", "all"], default="test",
                          help="which split to evaluate (default test)")

    predict = commands.add_parser("predict", help="predict a class, with probabilities, for each sequence of a file")
    predict.add_argument("--run", type=Path, required=True, help="run folder written by `seqlab train`")
    predict.add_argument("--input", type=Path, required=True, help=".npz, .csv or .ts file of sequences")
    predict.add_argument("--out", type=Path, required=True, help="CSV file to write")

    demo = commands.add_parser("demo", help="the main job: train and compare the core models on real data")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for the runs (default runs/demo)")
    demo.add_argument("--epochs", type=int, default=None, help="override each run's epochs (for a quick look)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def cmd_datasets(args) -> None:
    from seqlab.data.sources import BUILTIN, FILE_FORMATS, PREFIXES, aeon_names
    from seqlab.reports.tables import format_table

    print("Built-in data sets:")
    print(format_table(["name", "description"], [[k, v[1]] for k, v in BUILTIN.items()]))
    print("\nFiles (pass the path as --data):")
    print(format_table(["spec", "layout"], list(FILE_FORMATS.items())))
    print("\nPackaged data:")
    print(format_table(["spec", "description"], list(PREFIXES.items())))
    try:
        print("\naeon data sets on this machine: " + ", ".join(aeon_names()))
    except SeqlabError:
        print("\naeon is not installed: `pip install aeon` to use aeon:NAME")


def cmd_models(args) -> None:
    import dataclasses

    from seqlab.models.registry import get_model_entry, model_names
    from seqlab.reports.tables import format_table

    rows = []
    for name in model_names():
        entry = get_model_entry(name)
        defaults = entry.defaults()
        options = ", ".join(f"{f.name}={defaults[f.name]}" for f in dataclasses.fields(entry.options))
        rows.append([name, ",".join(entry.tasks), entry.summary, options])
    print(format_table(["name", "tasks", "model", "options (defaults)"], rows))
    print("\nSet options with flags (--hidden-size ...) or --set model.KEY=VALUE.")


def build_config(args):
    from seqlab.config import apply_override, read_config_file, resolve_config

    tree = read_config_file(args.config) if args.config else {}
    tree = {k: dict(v or {}) for k, v in tree.items()}
    for flag, key, _, _ in TRAIN_FLAGS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            section, name = key.split(".")
            tree.setdefault(section, {})[name] = value
    if args.bidirectional:
        tree.setdefault("model", {})["bidirectional"] = True
    for assignment in args.set:
        apply_override(tree, assignment)
    return resolve_config(tree)


def cmd_train(args) -> None:
    from seqlab.training import train

    config = build_config(args)
    result = train(config, args.out, overwrite=args.overwrite, quiet=args.quiet)
    _print_metrics(result.metrics)
    print(f"Run folder: {result.out}")


def _print_metrics(metrics: dict) -> None:
    test = metrics.get("test") or metrics.get(metrics.get("split", "test"))
    parts = [f"{k}={v:.4f}" for k, v in test.items() if isinstance(v, float)]
    extra = f" params={metrics['params']} train_seconds={metrics['train_seconds']:.1f}" if "params" in metrics else ""
    print(f"{metrics.get('model', '')} {metrics.get('split', 'test')}: " + " ".join(parts) + extra)


def cmd_eval(args) -> None:
    from seqlab.io import write_json
    from seqlab.training import evaluate_run

    metrics = evaluate_run(args.run, args.data, args.split)
    write_json(args.run / "eval.json", metrics)
    _print_metrics(metrics)
    print(f"Written: {args.run / 'eval.json'}")


def cmd_predict(args) -> None:
    from seqlab.predict import predict_file

    count = predict_file(args.run, args.input, args.out)
    print(f"Wrote {count} predictions to {args.out}")


def cmd_demo(args) -> None:
    from seqlab.demo import run_demo

    if args.epochs is not None and args.epochs < 1:
        raise SeqlabError(f"--epochs: expected an integer >= 1, got {args.epochs}")
    run_demo(args.out, quiet=args.quiet, epochs=args.epochs)


COMMANDS = {"datasets": cmd_datasets, "models": cmd_models, "train": cmd_train, "eval": cmd_eval,
            "predict": cmd_predict, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except SeqlabError as error:
        print(f"seqlab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seqlab {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
