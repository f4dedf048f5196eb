"""Seeing inside trained models: gradient flow through time, gate activity, attributions, profiles.

>>> from seqlab.inspect import inspect_gradients
>>> flows = inspect_gradients(["runs/rnn", "runs/gru"], "runs/compare")   # gradients.json, gradients.png
"""

from seqlab.inspect.gradients import GradientFlow, GradientNormMonitor, gradient_flow, inspect_gradients

__all__ = ["GradientFlow", "GradientNormMonitor", "gradient_flow", "inspect_gradients"]
