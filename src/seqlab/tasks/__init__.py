"""Tasks: what is learnt from the data (classification, forecast, lm).

Each task module provides ``train_*(config, out, resume, quiet, callbacks)
-> metrics`` (writing the run folder) and ``evaluate_*(run, data_spec,
split) -> metrics``.
"""

from seqlab.tasks.classification import evaluate_classification, train_classification
from seqlab.tasks.forecast import evaluate_forecast, train_forecast
from seqlab.tasks.lm import evaluate_lm, train_lm

TASK_TRAINERS = {"classification": train_classification, "forecast": train_forecast, "lm": train_lm}
TASK_EVALUATORS = {"classification": evaluate_classification, "forecast": evaluate_forecast, "lm": evaluate_lm}
