"""The NumPy reference engine: RNN, GRU and LSTM, forward and backward.

Readable enough to learn from; in float64 the oracle every implementation of
the recurrences is tested against (its steps: :mod:`seqlab.recurrence.oracle`).

>>> from seqlab.reference import ReferenceRNN
>>> rnn = ReferenceRNN("gru", input_size=3, hidden_size=4)
>>> out, h_n, _ = rnn.forward(x)            # x (B, T, 3)
>>> grads = rnn.backward(d_out)             # grads["x"], grads["weight_ih_l0"], ...
"""

from seqlab.reference.engine import ReferenceRNN

__all__ = ["ReferenceRNN"]
