"""Seed 004's airline RNN: last month's passengers and the month in, this month's passengers out.

Inputs at month t are x_t = [p(t-1), m(t)], the passengers of the month
before and the calendar month 1..12, both min-max scaled with the training
months' range; the target is p(t), scaled the same way. The first
``train_months`` months train (full-batch Adam on the squared error), the
rest test. Three models, each with a linear output y_t = w h_t + b:

* ``cell``: a hand-written RNN cell, h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
  as explicit products (autograd differentiates them), fed month by month
  with the state starting at zero for the series (:class:`HandRNN`);
* ``rnn``: ``torch.nn.RNN``, the same equations, fed the whole series at once,
  from the cell's initial weights: before training the two give the same
  outputs and gradients to rounding (float64);
* ``mlp``: a fully connected network, h_t = tanh(W_1 x_t + b_1), no state.

Every model reads the whole series (true previous months, the state
carried from the training months into the test months), as the article
feeds it; the loss covers the training months only. Reported: train and
test RMSE in passengers (thousands) and their ratio, the over-fitting the
article observes, and the cell's distance from ``nn.RNN`` at the same weights.
Symbols: T months, F = 2 inputs, H hidden size.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from seqlab.data.series import airline_series, months_of
from seqlab.errors import SeqlabError
from seqlab.io import save_figure, write_json
from seqlab.reports.tables import format_table

MODELS = ("cell", "rnn", "mlp")
MAX_ITERATIONS = 100_000  # full-batch steps of three tiny models on 144 points: minutes at most


class HandRNN(nn.Module):
    """An Elman RNN cell written out: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

    Parameters are ``torch.nn.RNN``'s (``weight_ih_l0`` (H, F), ``weight_hh_l0``
    (H, H), ``bias_ih_l0``, ``bias_hh_l0`` (H,)), initialised U(-1/sqrt(H),
    1/sqrt(H)) as torch does, so a state_dict moves between the two.
    ``forward(x (B, T, F), h0 (1, B, H) | None)`` steps through the T steps
    one at a time and returns ``(outputs (B, T, H), h_n (1, B, H))``, as
    ``nn.RNN(batch_first=True)`` does.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        bound = 1.0 / math.sqrt(hidden_size)
        shapes = {"weight_ih_l0": (hidden_size, input_size), "weight_hh_l0": (hidden_size, hidden_size),
                  "bias_ih_l0": (hidden_size,), "bias_hh_l0": (hidden_size,)}
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))

    def step(self, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """x_t (B, F), h (B, H) -> h' (B, H)."""
        return torch.tanh(x_t @ self.weight_ih_l0.T + self.bias_ih_l0 + h @ self.weight_hh_l0.T + self.bias_hh_l0)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        h = x.new_zeros(x.shape[0], self.weight_hh_l0.shape[0]) if h0 is None else h0[0]  # (B, H)
        outputs = []
        for t in range(x.shape[1]):
            h = self.step(x[:, t], h)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h[None]  # (B, T, H), (1, B, H)


class Stateless(nn.Module):
    """The fully connected network: h_t = tanh(W_1 x_t + b_1) at every step, no state."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden = nn.Linear(input_size, hidden_size)

    def forward(self, x: torch.Tensor):
        return torch.tanh(self.hidden(x)), None  # (B, T, H)


class MonthlyRegressor(nn.Module):
    """A recurrent (or stateless) layer and a linear output per month: (B, T, F) -> (B, T)."""

    def __init__(self, layer: nn.Module, hidden_size: int):
        super().__init__()
        self.layer = layer
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.layer(x)  # (B, T, H)
        return self.out(hidden)[..., 0]  # (B, T)


def airline_inputs(train_months: int):
    """x (T, 2) and y (T,) for months 1 .. 143 (month 0 has no previous month), scaled, and the scale."""
    series = airline_series()
    passengers = series.values[:, 0]
    months = months_of(series.dates).astype(np.float64)
    low, high = passengers[:train_months].min(), passengers[:train_months].max()
    scaled = (passengers - low) / (high - low)
    x = np.stack([scaled[:-1], (months[1:] - 1) / 11], axis=1)  # (T, 2): p(t-1), m(t)
    return x, scaled[1:], (low, high), series.dates[1:]


def build(name: str, hidden_size: int, seed: int, initial: dict | None = None) -> MonthlyRegressor:
    torch.manual_seed(seed)
    if name == "cell":
        layer = HandRNN(2, hidden_size)
    elif name == "rnn":
        layer = nn.RNN(2, hidden_size, batch_first=True)
    else:
        layer = Stateless(2, hidden_size)
    model = MonthlyRegressor(layer, hidden_size).double()
    if initial is not None:
        model.load_state_dict(initial)
    return model


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, train: int, iterations: int, lr: float) -> None:
    """Full-batch Adam on the squared error of the first ``train`` months."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(iterations):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x)[0, :train], y[:train])
        loss.backward()
        optimizer.step()


def cell_against_rnn(cell: nn.Module, rnn: nn.Module, x: torch.Tensor, y: torch.Tensor, train: int) -> dict:
    """Largest differences of the outputs and of every parameter's gradient, at the models' current weights."""
    gradients = []
    for model in (cell, rnn):
        model.zero_grad()
        output = model(x)
        nn.functional.mse_loss(output[0, :train], y[:train]).backward()
        gradients.append({name: p.grad.clone() for name, p in model.named_parameters()})
        model.zero_grad()
    with torch.no_grad():
        outputs = float((cell(x) - rnn(x)).abs().max())
    return {"outputs": outputs, "gradients": max(float((gradients[0][k] - gradients[1][k]).abs().max())
                                                 for k in gradients[0])}


def run_airline_experiment(out: str | Path, iterations: int = 2000, hidden_size: int = 32, lr: float = 0.01,
                           train_months: int = 96, seed: int = 0, quiet: bool = False) -> dict:
    """Train the three models, write ``airline.json`` and ``airline_rnn.png`` into ``out``."""
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise SeqlabError(f"--iterations: expected an integer in 1..{MAX_ITERATIONS}, got {iterations}")
    if hidden_size < 1:
        raise SeqlabError(f"--hidden-size: expected a positive integer, got {hidden_size}")
    if not 24 <= train_months <= 132:
        raise SeqlabError(f"--train-months: expected 24..132 of the 144 months (some must test), got {train_months}")
    out = Path(out)
    x_np, y_np, (low, high), dates = airline_inputs(train_months)
    x = torch.tensor(x_np)[None]  # (1, T, 2) float64
    y = torch.tensor(y_np)
    train = train_months - 1  # targets p(1) .. p(train_months - 1)
    cell = build("cell", hidden_size, seed)
    models = {"cell": cell, "rnn": build("rnn", hidden_size, seed, cell.state_dict()),
              "mlp": build("mlp", hidden_size, seed)}
    same_weights = cell_against_rnn(models["cell"], models["rnn"], x, y, train)
    results, predictions = {}, {}
    for name, model in models.items():
        fit(model, x, y, train, iterations, lr)
        with torch.no_grad():
            passengers = model(x)[0].numpy() * (high - low) + low  # (T,)
        truth = y_np * (high - low) + low
        train_rmse = float(np.sqrt(np.mean((passengers[:train] - truth[:train]) ** 2)))
        test_rmse = float(np.sqrt(np.mean((passengers[train:] - truth[train:]) ** 2)))
        results[name] = {"train_rmse": train_rmse, "test_rmse": test_rmse, "test_over_train": test_rmse / train_rmse,
                         "parameters": sum(p.numel() for p in model.parameters())}
        predictions[name] = passengers
    summary = {"iterations": iterations, "hidden_size": hidden_size, "lr": lr, "seed": seed,
               "train_months": train_months, "test_months": len(y_np) - train, "models": results,
               "cell_vs_rnn_at_same_weights": same_weights}
    write_json(out / "airline.json", summary)
    _plot(dates, y_np * (high - low) + low, predictions, train, out / "airline_rnn.png")
    if not quiet:
        rows = [[name, r["train_rmse"], r["test_rmse"], r["test_over_train"]] for name, r in results.items()]
        print(format_table(["model", "train_rmse", "test_rmse", "test/train"], rows))
        print(f"hand-written cell against nn.RNN at the same weights: outputs within "
              f"{same_weights['outputs']:.2g}, gradients within {same_weights['gradients']:.2g}")
        print(f"Results: {out / 'airline.json'}, plot: {out / 'airline_rnn.png'}")
    return summary


def _plot(dates, truth, predictions, train: int, path: Path) -> None:
    fig = Figure(figsize=(9, 3.8))
    ax = fig.subplots()
    ax.plot(dates, truth, "k", lw=2, label="passengers")
    for name, values in predictions.items():
        ax.plot(dates, values, "--", label=name)
    ax.axvline(dates[train], color="grey", lw=1)
    ax.set(ylabel="passengers (thousands)", title="one month ahead from the month before; test after the line")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
