"""A NumPy RNN / GRU / LSTM with backpropagation through time.

:class:`ReferenceRNN` is the textbook engine: multi-layer, bidirectional,
variable lengths, initial states in and final states out, and a backward
pass that returns gradients for the input, the initial states and every
weight and bias. Its parameters are named and shaped as in ``torch.nn``
(``weight_ih_l0``, ``bias_hh_l1_reverse``, ``weight_hr_l0``; see
:mod:`seqlab.recurrence.spec`), so a state_dict moves between the two
unchanged. In float64 it is the oracle every implementation of the
recurrences is held to (``tests/test_recurrence.py``); finite differences
check its backward pass.

Symbols: B batch, T time steps, F input features, H hidden size, P state
width (H, or proj_size), D directions, L layers.

Variable lengths follow ``torch.nn.utils.rnn.pack_padded_sequence``: a
sequence of length ``n`` is read at steps ``0..n-1`` only; its outputs at
later steps are zero, the forward direction's final state is taken after
step ``n - 1`` and the backward direction starts at step ``n - 1``.
"""

from __future__ import annotations

import numpy as np

import seqlab.recurrence.oracle as cells
from seqlab.recurrence.spec import cell_spec, parameter_suffix


class ReferenceRNN:
    """NumPy twin of ``torch.nn.RNN`` / ``GRU`` / ``LSTM`` (batch-first).

    Args:
        mode: ``rnn``, ``gru`` or ``lstm``.
        input_size: F.
        hidden_size: H.
        num_layers: L.
        bidirectional: D = 2 when true.
        nonlinearity: ``tanh`` or ``relu`` (``rnn`` only).
        proj_size: P < H for a projected LSTM, 0 for none.
        gru_update: ``torch`` (h' = (1 - z) n + z h, the default) or
            ``flipped`` (h' = z n + (1 - z) h); see :func:`seqlab.recurrence.oracle.gru_forward`.
        reset_after: GRU: True (PyTorch) applies the reset gate after
            W_hn h + b_hn, False (Cho et al. 2014) to h before W_hn.
        dtype: parameter and computation dtype.
        seed: initialise parameters as torch does, U(-1/sqrt(H), 1/sqrt(H)).

    Shapes:
        ``forward(x (B, T, F), h0 (L*D, B, P) | None, c0 (L*D, B, H) | None,
        lengths (B,) | None)`` returns ``out (B, T, D*P)``, ``h_n (L*D, B, P)``
        and ``c_n (L*D, B, H)`` (None unless LSTM). ``backward(d_out, d_h_n,
        d_c_n)`` uses the cache of the last forward and returns a dict with
        ``x``, ``h0``, ``c0`` and one entry per parameter name. It also leaves
        ``state_grads``: per layer, ``(B, T, D*P)``, the total gradient with
        respect to the state h_t, through the output at t and the recurrence
        (zero on padded steps).
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        nonlinearity: str = "tanh",
        proj_size: int = 0,
        gru_update: str = "torch",
        reset_after: bool = True,
        dtype=np.float64,
        seed: int | None = 0,
    ):
        self.spec = cell_spec(mode, nonlinearity, reset_after)  # refuses an unknown mode or nonlinearity
        if gru_update not in ("torch", "flipped"):
            raise ValueError(f"expected gru_update torch or flipped, got {gru_update!r}")
        if proj_size and (mode != "lstm" or not 0 < proj_size < hidden_size):
            raise ValueError(f"proj_size needs mode lstm and 0 < proj_size < {hidden_size}, got {proj_size}")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        self.nonlinearity = nonlinearity
        self.proj_size = proj_size
        self.gru_update = gru_update
        self.reset_after = reset_after
        self.dtype = dtype
        self.state_size = proj_size or hidden_size  # P
        self.params: dict[str, np.ndarray] = {}
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(hidden_size)
        for name, shape in self.parameter_shapes().items():
            self.params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
        self.cache = None
        self.state_grads: list[np.ndarray] = []

    # ------------------------------------------------------------------
    # Parameters, named as in torch.nn

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.spec.parameter_shapes(self.input_size, self.hidden_size, self.num_layers,
                                          self.num_directions == 2, self.proj_size)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: dict) -> None:
        """Load parameters from NumPy arrays or torch tensors, checking names and shapes."""
        shapes = self.parameter_shapes()
        missing, unexpected = sorted(set(shapes) - set(state)), sorted(set(state) - set(shapes))
        if missing or unexpected:
            raise KeyError(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
        for name, shape in shapes.items():
            value = state[name]
            value = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
            if value.shape != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {value.shape}")
            self.params[name] = value.astype(self.dtype)

    def _weights(self, layer: int, direction: int) -> dict[str, np.ndarray | None]:
        s = parameter_suffix(layer, direction)
        p = self.params
        return {"W_ih": p[f"weight_ih{s}"], "W_hh": p[f"weight_hh{s}"], "b_ih": p[f"bias_ih{s}"],
                "b_hh": p[f"bias_hh{s}"], "W_hr": p.get(f"weight_hr{s}")}

    # ------------------------------------------------------------------
    # Checks

    def _check(self, x, h0, c0, lengths):
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"expected x of shape (B, T, {self.input_size}), got {x.shape}")
        B, T, _ = x.shape
        if T == 0:
            raise ValueError("expected at least one time step, got T=0")
        if not np.all(np.isfinite(x)):
            raise ValueError("x contains NaN or Inf; expected finite values")
        n_states = self.num_layers * self.num_directions
        if h0 is not None and h0.shape != (n_states, B, self.state_size):
            raise ValueError(f"expected h0 of shape {(n_states, B, self.state_size)}, got {h0.shape}")
        if c0 is not None and (self.mode != "lstm" or c0.shape != (n_states, B, self.hidden_size)):
            raise ValueError(f"expected c0 of shape {(n_states, B, self.hidden_size)} (LSTM only), got {c0.shape}")
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.shape != (B,):
                raise ValueError(f"expected lengths of shape ({B},), got {lengths.shape}")
            if lengths.min() < 1 or lengths.max() > T:
                raise ValueError(f"expected lengths in 1..{T}, got min {lengths.min()} max {lengths.max()}")

    # ------------------------------------------------------------------
    # Forward

    def forward(self, x, h0=None, c0=None, lengths=None):
        x = np.asarray(x, dtype=self.dtype)
        self._check(x, h0, c0, lengths)
        B, T, _ = x.shape
        L, D, P, H = self.num_layers, self.num_directions, self.state_size, self.hidden_size
        h0 = np.zeros((L * D, B, P), self.dtype) if h0 is None else np.asarray(h0, self.dtype)
        c0 = np.zeros((L * D, B, H), self.dtype) if c0 is None else np.asarray(c0, self.dtype)
        valid = np.ones((B, T), bool) if lengths is None else np.arange(T)[None, :] < np.asarray(lengths)[:, None]
        h_n, c_n = np.empty_like(h0), np.empty_like(c0)
        layer_input, caches = x, []
        for layer in range(L):
            outputs = []
            for d in range(D):
                k = layer * D + d
                out, h_n[k], c_n[k], steps = self._run_direction(layer_input, h0[k], c0[k], valid, layer, d)
                outputs.append(out)
                caches.append(steps)
            layer_input = np.concatenate(outputs, axis=2)  # (B, T, D*P)
        self.cache = (x.shape, valid, caches)
        return layer_input, h_n, (c_n if self.mode == "lstm" else None)

    def _run_direction(self, x, h, c, valid, layer, direction):
        """One layer, one direction over all steps; returns outputs (B, T, P)."""
        w = self._weights(layer, direction)
        B, T, _ = x.shape
        out = np.zeros((B, T, self.state_size), self.dtype)
        order = range(T - 1, -1, -1) if direction else range(T)
        steps = []
        for t in order:
            m = valid[:, t, None].astype(self.dtype)  # (B, 1): 1 on real steps
            if self.mode == "rnn":
                h_new, cache = cells.rnn_forward(x[:, t], h, w["W_ih"], w["W_hh"], w["b_ih"], w["b_hh"], self.nonlinearity)
                c_new = c
            elif self.mode == "gru":
                h_new, cache = cells.gru_forward(x[:, t], h, w["W_ih"], w["W_hh"], w["b_ih"], w["b_hh"], self.gru_update,
                                                 self.reset_after)
                c_new = c
            else:
                h_new, c_new, cache = cells.lstm_forward(x[:, t], h, c, w["W_ih"], w["W_hh"], w["b_ih"], w["b_hh"], w["W_hr"])
            out[:, t] = m * h_new
            h = m * h_new + (1.0 - m) * h  # padded steps leave the state untouched
            c = m * c_new + (1.0 - m) * c
            steps.append((t, m, cache))
        return out, h, c, steps

    # ------------------------------------------------------------------
    # Backward through time

    def backward(self, d_out, d_h_n=None, d_c_n=None) -> dict[str, np.ndarray]:
        if self.cache is None:
            raise RuntimeError("backward() needs a forward() first")
        (B, T, F), valid, caches = self.cache
        L, D, P, H = self.num_layers, self.num_directions, self.state_size, self.hidden_size
        d_out = np.asarray(d_out, self.dtype)
        if d_out.shape != (B, T, D * P):
            raise ValueError(f"expected d_out of shape {(B, T, D * P)}, got {d_out.shape}")
        d_h_n = np.zeros((L * D, B, P), self.dtype) if d_h_n is None else np.asarray(d_h_n, self.dtype)
        d_c_n = np.zeros((L * D, B, H), self.dtype) if d_c_n is None else np.asarray(d_c_n, self.dtype)
        grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        d_h0, d_c0 = np.zeros_like(d_h_n), np.zeros_like(d_c_n)
        d_layer_out = d_out
        self.state_grads = [np.zeros((B, T, D * P), self.dtype) for _ in range(L)]
        for layer in reversed(range(L)):
            d_input = None
            for d in range(D):
                k = layer * D + d
                dx, d_h0[k], d_c0[k] = self._backprop_direction(
                    d_layer_out[:, :, d * P : (d + 1) * P], d_h_n[k], d_c_n[k], caches[k], layer, d, grads,
                    self.state_grads[layer][:, :, d * P : (d + 1) * P],
                )
                d_input = dx if d_input is None else d_input + dx
            d_layer_out = d_input  # gradient w.r.t. this layer's input (B, T, F_layer)
        result = {"x": d_layer_out, "h0": d_h0, "c0": d_c0 if self.mode == "lstm" else None}
        result.update(grads)
        return result

    def _backprop_direction(self, d_out, d_h, d_c, steps, layer, direction, grads, d_states):
        w = self._weights(layer, direction)
        s = parameter_suffix(layer, direction)
        g = {"W_ih": grads[f"weight_ih{s}"], "W_hh": grads[f"weight_hh{s}"], "b_ih": grads[f"bias_ih{s}"],
             "b_hh": grads[f"bias_hh{s}"], "W_hr": grads.get(f"weight_hr{s}")}
        B, T, _ = d_out.shape
        dx = np.zeros((B, T, w["W_ih"].shape[1]), self.dtype)
        for t, m, cache in reversed(steps):
            dh_new = m * (d_out[:, t] + d_h)  # the new state feeds the output and the next step
            d_states[:, t] = dh_new
            dc_new = m * d_c
            if self.mode == "rnn":
                dx[:, t], dh_prev = cells.rnn_backward(dh_new, cache, w["W_ih"], w["W_hh"], g, self.nonlinearity)
                dc_prev = 0.0
            elif self.mode == "gru":
                dx[:, t], dh_prev = cells.gru_backward(dh_new, cache, w["W_ih"], w["W_hh"], g, self.gru_update,
                                                             self.reset_after)
                dc_prev = 0.0
            else:
                dx[:, t], dh_prev, dc_prev = cells.lstm_backward(dh_new, dc_new, cache, w["W_ih"], w["W_hh"], g, w["W_hr"])
            d_h = (1.0 - m) * d_h + dh_prev
            d_c = (1.0 - m) * d_c + dc_prev
        return dx, d_h, d_c
