"""seqlab: recurrent sequence models (RNN, GRU, LSTM and their hybrids).

Train, compare, understand and deploy sequence models without writing the
same fragile loop again. The Python API mirrors the ``seqlab`` CLI:

>>> from seqlab.data import load_data
>>> from seqlab.models import build_model
>>> from seqlab.training.pipeline import train

and scikit-learn estimators over the same pipeline (:mod:`seqlab.estimators`):
``seqlab.SequenceClassifier``, ``seqlab.SequenceRegressor``,
``seqlab.SequenceForecaster`` and ``seqlab.load(run_dir)``.
"""

from seqlab.errors import SeqlabError

__version__ = "0.1.0"
__all__ = ["SeqlabError", "SequenceClassifier", "SequenceForecaster", "SequenceRegressor", "__version__", "load"]
ESTIMATOR_NAMES = ("SequenceClassifier", "SequenceRegressor", "SequenceForecaster", "load")


def __getattr__(name: str):
    # the estimators import torch and scikit-learn: only when asked for, so `import seqlab` stays light
    if name in ESTIMATOR_NAMES:
        from seqlab import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'seqlab' has no attribute {name!r}")
