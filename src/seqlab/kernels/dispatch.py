"""The ``fast`` backend's entry: :func:`fast_forward` checks a call and chooses how its layers run.

:func:`supports` says whether the backend can run a module on an input;
:func:`check_sequence` and :func:`check_inputs` raise ``ValueError`` naming
what was expected and what was found (``_all_finite`` tests the values).
:func:`fast_forward` runs an ``nn.RNN/GRU/LSTM`` under a
:class:`seqlab.kernels.policy.KernelPolicy` (:func:`seqlab.kernels.policy.use_policy`),
which chooses, per call, one of:

- the step loops, :class:`seqlab.kernels.drivers._Layer` (training) or
  :func:`seqlab.kernels.drivers._infer` (no gradient wanted, ``_wants_grad``),
  time-major with the rows sorted longest first;
- parts, :class:`seqlab.kernels.drivers._Parts` or
  :func:`seqlab.kernels.drivers._infer_parts`, batch-first in the caller's
  row order (large GRU and LSTM batches);
- the ``torch.nn`` module itself, where torch runs oneDNN's fused LSTM
  kernel (other full-length LSTM batches: always for inference, and for
  training from the policy's ``lstm_handover_macs``).

Every layer and direction goes through the same stacking
(:mod:`seqlab.kernels.stacking`). Parameters are the ``torch.nn`` module's
own (``weight_ih_l0`` ...), so switching backend changes no state_dict.

Symbols: B batch, T steps, F input features, H hidden size, D directions,
L layers.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.profiler import record_function

from seqlab.kernels.drivers import _infer, _infer_parts, _Layer, _Parts
from seqlab.kernels.policy import KernelPolicy, current_policy, use_policy
from seqlab.kernels.stacking import _final_states, _rows_by_length, _run_layers


def supports(module: nn.RNNBase, x: torch.Tensor) -> str | None:
    """None if the fast path can run ``module`` on ``x``, else the reason it cannot."""
    if x.device.type != "cpu":
        return f"runs on CPU only, got device {x.device}"
    if x.dtype != torch.float32:
        return f"runs float32 only, got {x.dtype}"
    if getattr(module, "proj_size", 0):
        return "does not implement LSTM proj_size"
    if not module.bias:
        return "needs biases"
    return None


def _wants_grad(module: nn.RNNBase, x: torch.Tensor, state) -> bool:
    """Whether autograd will need this call's backward pass."""
    if not torch.is_grad_enabled():
        return False
    states = state if isinstance(state, tuple) else (state,)
    return (x.requires_grad or any(s is not None and s.requires_grad for s in states)
            or any(p.requires_grad for p in module.parameters()))


def check_sequence(x: torch.Tensor, lengths: torch.Tensor | None, input_size: int) -> None:
    """Raise ``ValueError`` naming what was expected and what was found: x (B, T, F), lengths (B,) in 1..T."""
    if x.dim() != 3 or x.shape[-1] != input_size:
        raise ValueError(f"expected input of shape (B, T, {input_size}), got {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError("expected at least one time step, got T=0")
    if lengths is not None:
        if lengths.dim() != 1 or lengths.shape[0] != x.shape[0]:
            raise ValueError(f"expected lengths of shape ({x.shape[0]},), got {tuple(lengths.shape)}")
        if int(lengths.min()) < 1 or int(lengths.max()) > x.shape[1]:
            raise ValueError(
                f"expected lengths in 1..{x.shape[1]}, got min {int(lengths.min())} max {int(lengths.max())}"
            )


def check_inputs(module: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor | None, state) -> None:
    """:func:`check_sequence`, then the batch, the initial states and finite values."""
    check_sequence(x, lengths, module.input_size)
    B = x.shape[0]
    if B == 0:
        raise ValueError("expected at least one sequence, got B=0")
    if state is not None:
        D = 2 if module.bidirectional else 1
        expected = (module.num_layers * D, B, module.hidden_size)
        for name, s in zip(("h0", "c0"), state if isinstance(state, tuple) else (state,)):
            if tuple(s.shape) != expected:
                raise ValueError(f"expected {name} of shape {expected}, got {tuple(s.shape)}")
    if not _all_finite(x):
        raise ValueError("x contains NaN or Inf; expected finite values")


def _all_finite(x: torch.Tensor) -> bool:
    """Whether x holds no NaN or Inf: its minimum and maximum are finite (NaN propagates through both).

    On CPU NumPy's single-threaded reductions do it, 5-9x faster than
    ``isfinite(x).all()``, and without starting torch's thread pool, whose
    threads would keep spinning on the cores the next step's parts need.
    """
    if x.device.type == "cpu":
        n = x.detach().numpy()
        return bool(np.isfinite(n.min()) and np.isfinite(n.max()))
    low, high = torch.aminmax(x.detach())
    return math.isfinite(float(low)) and math.isfinite(float(high))


@record_function("fast_rnn.forward")
def fast_forward(
    module: nn.RNNBase,
    x: torch.Tensor,
    lengths: torch.Tensor | None = None,
    state=None,
    policy: KernelPolicy | None = None,
):
    """Run ``module`` (an ``nn.RNN/GRU/LSTM``, batch_first) through the fast path.

    Same arguments and results as the module on a packed batch:
    ``x (B, T, F)``, ``lengths (B,) | None``, ``state`` as the module takes it;
    returns ``out (B, T, D*H)`` (zero past each length) and the final state.
    Shapes that do not fit the module, lengths outside 1..T and non-finite
    inputs raise ``ValueError``. ``policy`` chooses how the layers run
    (default: :func:`seqlab.kernels.policy.current_policy`).
    """
    with use_policy(policy):
        return _forward(module, x, lengths, state)


def _forward(module: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor | None, state):
    if torch.is_autocast_enabled("cpu"):
        # float32 kernels: the layer runs outside autocast, as torch's own GRU does under bf16-mixed
        with torch.autocast("cpu", enabled=False):
            return _forward(module, x, lengths, state)
    check_inputs(module, x, lengths, state)
    mode = {nn.RNN: "rnn", nn.GRU: "gru", nn.LSTM: "lstm"}[type(module)]
    if lengths is not None and int(lengths.min()) == x.shape[1]:
        lengths = None  # every sequence runs the whole length: a full batch
    wants_grad = _wants_grad(module, x, state)
    policy = current_policy()
    parts = policy.use_parts(mode, x.shape[0], x.shape[1], module.hidden_size, wants_grad)
    if mode == "lstm" and lengths is None and not parts and policy.lstm_to_torch(x.shape[0], module.hidden_size,
                                                                                 wants_grad):
        # A full batch: torch runs oneDNN's fused LSTM kernel, faster on CPU than a step loop here
        # for inference at every size and for training from the policy's lstm_handover_macs.
        return module(x, state)
    order, active, h0, c0 = _rows_by_length(module, mode, x, lengths, state)
    if parts:
        # batch-first, and x and the output keep the caller's row order: parts read and write rows by index
        run = _Parts.apply if wants_grad else _infer_parts
        output, h_n, c_n = _run_layers(module, x.contiguous(), h0, c0,
                                       lambda reverse, *rest: run(mode, reverse, active, order, *rest))
        return output, _final_states(mode, h_n, c_n, order)
    # the step loops: time-major, rows sorted so that the running ones are the first active[t]
    relu = mode == "rnn" and module.nonlinearity == "relu"
    run = _Layer.apply if wants_grad else _infer
    rows = x if lengths is None else x[order]
    output, h_n, c_n = _run_layers(module, rows.transpose(0, 1).contiguous(), h0, c0,
                                   lambda reverse, *rest: run(mode, relu, reverse, active, *rest))
    output = output.transpose(0, 1)  # (B, T, D*H)
    if lengths is not None:
        output = output[torch.argsort(order)]
    return output, _final_states(mode, h_n, c_n, order)
