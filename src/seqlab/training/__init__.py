"""Training: ``train(config, out)`` and evaluation of saved runs."""

from seqlab.training.pipeline import TrainingInterrupted, TrainResult, evaluate_run, prepare_bundle, train

__all__ = ["TrainingInterrupted", "TrainResult", "evaluate_run", "prepare_bundle", "train"]
