"""Tasks: what is learnt from the data (classification, regression, forecast, lm).

Each task is a :class:`~seqlab.tasks.base.TaskRecipe`: it prepares the
data, builds the model and its Lightning module, evaluates the best model
and saves the task's files. :mod:`seqlab.training.pipeline` runs them.
"""

from seqlab.tasks.base import TaskRecipe
from seqlab.tasks.classification import ClassificationTask
from seqlab.tasks.forecast import ForecastTask
from seqlab.tasks.lm import LanguageModelTask
from seqlab.tasks.regression import RegressionTask

TASKS: dict[str, TaskRecipe] = {task.name: task for task in (ClassificationTask(), RegressionTask(), ForecastTask(),
                                                              LanguageModelTask())}
