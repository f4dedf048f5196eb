"""Seeing inside trained models: gradient flow through time, gate activity, attributions, profiles.

>>> from seqlab.inspect import inspect_gradients
>>> flows = inspect_gradients(["runs/rnn", "runs/gru"], "runs/compare")   # gradients.json, gradients.png
>>> activity = inspect_gates("runs/lstm", "runs/lstm-gates")              # gates.json, gates.png
>>> report = explain("runs/ablstm", "new.npz", "runs/explain", indices=[0, 3])  # attributions.json, PNGs
>>> timings = profile_run("runs/gru", "runs/gru-profile", backend="fast")   # trace.json, profile.json
"""

from seqlab.inspect.explain import attribute, explain
from seqlab.inspect.gates import GateActivity, gate_activity, inspect_gates
from seqlab.inspect.gradients import GradientFlow, GradientNormMonitor, gradient_flow, inspect_gradients
from seqlab.inspect.profile import profile_run

__all__ = ["GateActivity", "GradientFlow", "GradientNormMonitor", "attribute", "explain", "gate_activity",
           "gradient_flow", "inspect_gates", "inspect_gradients", "profile_run"]
