"""Gradient flow through time: the norm of dL/dh_t per step and layer, and gradient norms during training.

Symbols: B batch, T time steps, F input features, P state width of one
direction, D directions, L layers.

What is measured. L is the sum over the batch of each sequence's
cross-entropy (so a sequence's gradients do not shrink with the batch
size). h_t^l is layer l's hidden state after step t, directions
concatenated (D*P). dL/dh_t^l is the *total* derivative: through the
layer above (or the head) at step t *and* through the recurrence into
steps t+1, t+2, ... (for the backward direction, t-1, t-2, ...). That is
the gradient back-propagation through time carries into step t, the
quantity that vanishes or explodes over long sequences. ``input`` is the
norm of dL/dx_t over the F features of the model's (normalised) input.
Each norm is taken per sequence, then averaged over the sequences for which
step t is a real step (padding excluded).

torch.nn's fused layers never expose h_t as a tensor of its own (the
recurrence reads it inside the kernel), so the encoder is re-run step by
step with torch's cell functions and the model's own weights, keeping every
h_t; the stepped outputs are checked against the fused layer's before any
gradient is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from seqlab.data.dataset import SequenceSet
from seqlab.errors import SeqlabError
from seqlab.inspect.data import inspection_data, load_classifier, recurrent_encoder
from seqlab.io import write_json
from seqlab.recurrence.spec import parameter_suffix, spec_of

GRADIENTS_FILE = "gradients.json"
GRADIENTS_PLOT = "gradients.png"


@dataclass
class GradientFlow:
    """Mean gradient norms per time step of one run.

    Attributes:
        label: how plots name the run (model and folder).
        hidden: one list per recurrent layer (bottom first) of the mean
            ||dL/dh_t|| for each of the encoder's steps.
        input: the mean ||dL/dx_t|| for each step of the model's input (None for
            token models, whose ids are looked up, not differentiated).
        sequences: how many sequences were averaged.
    """

    label: str
    hidden: list[list[float]]
    input: list[float] | None
    sequences: int

    def to_dict(self) -> dict:
        return {"label": self.label, "sequences": self.sequences, "hidden": self.hidden, "input": self.input}


# ----------------------------------------------------------------------------
# The encoder stepped one time step at a time


def stepped_encoder(encoder, x: torch.Tensor, lengths: torch.Tensor | None):
    """Run ``encoder`` (a :class:`RecurrentEncoder`) step by step; same outputs as its fused layer.

    Returns ``outputs (B, T, D*P)``, ``final (B, D*P)``, ``state`` as the
    encoder does, plus ``states``: for each layer, for each direction, the
    list of T tensors h_t (B, P), each the very tensor that feeds both the
    output at step t and the next step (call ``retain_grad`` on them).
    """
    rnn = encoder.rnn
    batch, steps, _ = x.shape
    D, P = encoder.num_directions, encoder.step_size
    valid = torch.ones(batch, steps, dtype=torch.bool) if lengths is None else \
        torch.arange(steps)[None, :] < lengths.cpu()[:, None]  # (B, T)
    spec = spec_of(rnn)  # the cell's equations, stepped in torch
    layer_input, states, h_n, c_n = x, [], [], []
    for layer in range(encoder.num_layers):
        outputs, layer_states = [], []
        for direction in range(D):
            s = parameter_suffix(layer, direction)
            weights = (getattr(rnn, f"weight_ih{s}"), getattr(rnn, f"weight_hh{s}"), getattr(rnn, f"bias_ih{s}", None),
                       getattr(rnn, f"bias_hh{s}", None), getattr(rnn, f"weight_hr{s}", None))
            h = x.new_zeros(batch, P)
            c = x.new_zeros(batch, rnn.hidden_size) if encoder.mode == "lstm" else None
            out: list = [None] * steps
            kept: list = [None] * steps
            for t in (range(steps - 1, -1, -1) if direction else range(steps)):
                h_t, c_t = spec.step(layer_input[:, t], h, c, *weights)  # (B, P), (B, H) or None
                m = valid[:, t, None]  # (B, 1): padded steps leave the state untouched, output zero
                kept[t] = h_t
                out[t] = torch.where(m, h_t, torch.zeros_like(h_t))
                h = torch.where(m, h_t, h)
                c = torch.where(m, c_t, c) if c is not None else None
            outputs.append(torch.stack(out, dim=1))  # (B, T, P)
            layer_states.append(kept)
            h_n.append(h)
            c_n.append(c)
        states.append(layer_states)
        layer_input = torch.cat(outputs, dim=2)  # (B, T, D*P)
    if lengths is None:
        last = layer_input[:, -1, :P]  # (B, P)
    else:
        last = layer_input[:, :, :P].gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, P)).squeeze(1)
    state = torch.stack(h_n) if encoder.mode != "lstm" else (torch.stack(h_n), torch.stack(c_n))
    if D == 1:
        return layer_input, last, state, states
    if encoder.merge == "sum":  # (B, T, P), (B, P)
        return layer_input[..., :P] + layer_input[..., P:], last + layer_input[:, 0, P:], state, states
    return layer_input, torch.cat([last, layer_input[:, 0, P:]], dim=1), state, states  # (B, T, D*P), (B, D*P)


def _mean_norms(norms: torch.Tensor, valid: torch.Tensor) -> list[float]:
    """(B, T) per-sequence norms -> mean over the sequences valid at each step, (T,)."""
    counts = valid.sum(dim=0).clamp_min(1)  # (T,)
    return ((norms * valid).sum(dim=0) / counts).tolist()


def gradient_flow(model: nn.Module, encoder, data: SequenceSet, label: str = "") -> GradientFlow:
    """Mean ||dL/dh_t|| per layer and step, and ||dL/dx_t|| per step, over ``data`` (see the module docstring).

    ``encoder`` is the model's :class:`RecurrentEncoder`; the model around
    it (convolutions before it, its head after it) runs as usual.
    """
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(data.X)).float()  # (B, T, F)
    lengths = None if data.lengths is None else torch.from_numpy(np.asarray(data.lengths, np.int64))
    if lengths is not None:
        x = x[:, : int(lengths.max())]
    x.requires_grad_(True)
    captured = {}

    def replace_with_stepped(module, args, kwargs, output):
        encoder_x = args[0]
        encoder_lengths = args[1] if len(args) > 1 else kwargs.get("lengths")
        stepped = stepped_encoder(module, encoder_x, encoder_lengths)
        difference = (stepped[0] - output[0]).abs().max().item()
        if difference > 1e-4 * max(1.0, output[0].abs().max().item()):
            raise RuntimeError(f"stepped recurrence differs from the fused layer by {difference:.3g}")
        captured["states"], captured["lengths"], captured["steps"] = stepped[3], encoder_lengths, encoder_x.shape[1]
        return stepped[:3]

    handle = encoder.register_forward_hook(replace_with_stepped, with_kwargs=True)
    try:
        with torch.enable_grad():
            logits = model(x, lengths)  # (B, C)
            states = captured["states"]
            for layer in states:
                for direction in layer:
                    for h_t in direction:
                        h_t.retain_grad()
            y = torch.from_numpy(np.asarray(data.y, np.int64))
            nn.functional.cross_entropy(logits, y, reduction="sum").backward()
    finally:
        handle.remove()
    input_valid = torch.ones(x.shape[:2], dtype=torch.bool) if lengths is None else \
        torch.arange(x.shape[1])[None, :] < lengths[:, None]  # (B, T)
    encoder_lengths, encoder_steps = captured["lengths"], captured["steps"]
    hidden_valid = torch.ones(len(x), encoder_steps, dtype=torch.bool) if encoder_lengths is None else \
        torch.arange(encoder_steps)[None, :] < encoder_lengths.cpu()[:, None]  # (B, T')
    hidden = []
    for layer in states:
        squares = sum(torch.stack([h_t.grad.pow(2).sum(dim=1) for h_t in direction], dim=1)
                      for direction in layer)  # (B, T'): both directions' components of h_t
        hidden.append(_mean_norms(squares.sqrt(), hidden_valid))
    # token models (text-lstm) look their ids up in an embedding: no gradient reaches the ids
    inputs = None if x.grad is None else _mean_norms(x.grad.norm(dim=2), input_valid)  # from (B, T) norms
    return GradientFlow(label, hidden, inputs, len(x))


def inspect_gradients(run_dirs: list[str | Path], out: str | Path, input_path: str | Path | None = None,
                      split: str = "test", batch: int = 256) -> list[GradientFlow]:
    """``seqlab inspect gradients``: write ``gradients.json`` and ``gradients.png`` into ``out``.

    One run: ``gradients.json`` holds ``hidden`` (a list over layers, each
    of T norms) and ``input`` (T norms) at the top level. Several runs
    (say RNN, LSTM and GRU on the same data): ``{"runs": [...]}``, one such
    object per run, and one plot comparing them.
    """
    from seqlab.reports.inspection import plot_gradient_flow

    if not run_dirs:
        raise SeqlabError("--run: give at least one run folder")
    flows = []
    for run_dir in run_dirs:
        run = load_classifier(run_dir, "inspect gradients")
        encoder = recurrent_encoder(run.model, run, "inspect gradients")
        data = inspection_data(run, input_path, split, batch)
        label = f"{run.checkpoint['model']['name']} ({Path(run_dir).name})"
        flow = gradient_flow(run.model, encoder, data, label)
        flows.append(flow)
    out = Path(out)
    source = str(input_path) if input_path is not None else f"{split} split"
    records = [{"run": str(run_dir), "data": source, **flow.to_dict()} for run_dir, flow in zip(run_dirs, flows)]
    write_json(out / GRADIENTS_FILE, records[0] if len(records) == 1 else {"runs": records})
    plot_gradient_flow(flows, out / GRADIENTS_PLOT, f"gradient norm per time step ({source})")
    return flows


# ----------------------------------------------------------------------------
# During training


class GradientNormMonitor(pl.Callback):
    """Adds ``grad_norm`` (mean over the epoch's steps of the total 2-norm before clipping),
    ``grad_norm_max`` and ``clipped_steps`` (steps whose norm exceeded ``train.clip``) to each
    epoch's history row.

    The norms are those the module's clipping computed
    (:meth:`seqlab.training.module.SeqlabModule.configure_gradient_clipping`,
    which Lightning calls after the backward pass of every step, clipping on
    or off), so each step's gradients are reduced to a norm once.
    """

    def on_train_epoch_start(self, trainer, pl_module):
        pl_module.gradient_norms = []

    def history_values(self, trainer) -> dict[str, float]:
        """This epoch's columns of ``history.csv`` (asked for by the history callback at the epoch's end)."""
        clip = trainer.gradient_clip_val or 0.0
        recorded = trainer.lightning_module.gradient_norms
        norms = recorded or [float("nan")]
        return {"grad_norm": float(np.mean(norms)), "grad_norm_max": float(np.max(norms)),
                "clipped_steps": sum(norm > clip for norm in recorded) if clip else 0}
