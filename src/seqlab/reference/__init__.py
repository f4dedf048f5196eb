"""The NumPy reference engine: RNN, GRU and LSTM, forward and backward.

Readable enough to learn from, and held to ``torch.nn`` number for number.

>>> from seqlab.reference import ReferenceRNN
>>> rnn = ReferenceRNN("gru", input_size=3, hidden_size=4)
>>> out, h_n, _ = rnn.forward(x)            # x (B, T, 3)
>>> grads = rnn.backward(d_out)             # grads["x"], grads["weight_ih_l0"], ...
"""

from seqlab.reference.engine import GATES, ReferenceRNN

__all__ = ["GATES", "ReferenceRNN"]
