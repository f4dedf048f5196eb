"""The recurrences themselves: one spec per cell, and the NumPy float64 oracle.

:mod:`seqlab.recurrence.spec` names each cell's gates and their order, its
parameters and their shapes, and its equations (with the step in torch);
:mod:`seqlab.recurrence.oracle` computes the step and its backward pass in
NumPy. The implementations (``torch.nn`` and seqlab's reset-before GRU, the
fast and batch-1 kernels, the streaming step model, the exported graphs)
are held to the oracle by one test matrix, ``tests/test_recurrence.py``.

>>> from seqlab.recurrence import cell_spec
>>> spec = cell_spec("gru", reset_after=False)
>>> spec.gates, spec.onnx
(('r', 'z', 'n'), ('GRU', (('linear_before_reset', 0),)))
"""

from seqlab.recurrence.spec import CELLS, GATE_COUNT, CellSpec, cell_spec, parameter_suffix, spec_of

__all__ = ["CELLS", "GATE_COUNT", "CellSpec", "cell_spec", "parameter_suffix", "spec_of"]
