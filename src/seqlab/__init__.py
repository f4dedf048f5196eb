"""seqlab: recurrent sequence models (RNN, GRU, LSTM and their hybrids).

Train, compare, understand and deploy sequence models without writing the
same fragile loop again. The Python API mirrors the ``seqlab`` CLI:

>>> from seqlab.data import load_data
>>> from seqlab.models import build_model
>>> from seqlab.training.pipeline import train
"""

from seqlab.errors import SeqlabError

__version__ = "0.1.0"
__all__ = ["SeqlabError", "__version__"]
