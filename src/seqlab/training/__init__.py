"""Training: ``train(config, out)`` and evaluation of saved runs."""

from seqlab.training.pipeline import TrainResult, evaluate_run, prepare_bundle, train

__all__ = ["TrainResult", "evaluate_run", "prepare_bundle", "train"]
