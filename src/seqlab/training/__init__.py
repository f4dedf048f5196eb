"""Training: ``train(config, out)`` for every task, and evaluation of saved runs."""

from seqlab.training.pipeline import TrainingInterrupted, TrainResult, evaluate_run, train

__all__ = ["TrainingInterrupted", "TrainResult", "evaluate_run", "train"]
