"""The model zoo: plain ``nn.Module`` classes, registered by name.

>>> from seqlab.models import build_model
>>> model = build_model("bigru", input_size=8, output_size=10, hidden_size=64)
"""

from seqlab.models import hybrid, tcn, text  # noqa: F401  (registers the sensing, TCN and text models)
from seqlab.models import fcn  # noqa: F401  (registers the LSTM-FCN family, listed after them)
from seqlab.models.pooling import reverse_padded
from seqlab.models.recurrent import (
    GRUModel,
    LSTMModel,
    RecurrentEncoder,
    RecurrentModel,
    RNNModel,
)
from seqlab.models.registry import (
    build_model,
    count_parameters,
    get_model_entry,
    model_names,
    resolve_model_options,
)

__all__ = [
    "GRUModel",
    "LSTMModel",
    "RNNModel",
    "RecurrentEncoder",
    "RecurrentModel",
    "build_model",
    "count_parameters",
    "get_model_entry",
    "model_names",
    "resolve_model_options",
    "reverse_padded",
]
