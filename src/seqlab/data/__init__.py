"""Sequence data: one dataset abstraction, built-in sets and file readers.

>>> from seqlab.config import DataConfig
>>> from seqlab.data import load_data
>>> bundle = load_data(DataConfig(spec="digits"), seed=0)
>>> bundle.train.X.shape  # (N, T, F)
(1222, 8, 8)
"""

from seqlab.data.dataset import DataBundle, SequenceSet
from seqlab.data.scaling import Normalizer
from seqlab.data.sources import BUILTIN, FILE_FORMATS, PREFIXES, load_data, read_file, read_inputs
from seqlab.data.ts_format import read_ts

__all__ = [
    "BUILTIN",
    "DataBundle",
    "FILE_FORMATS",
    "Normalizer",
    "PREFIXES",
    "SequenceSet",
    "load_data",
    "read_file",
    "read_inputs",
    "read_ts",
]
