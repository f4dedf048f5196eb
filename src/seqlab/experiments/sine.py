"""The seeds' sine experiment: learn x[t+1] from x[t], then generate the wave from one value.

RNN, LSTM and GRU (hidden 16, one layer) are trained for 300 full-batch
Adam iterations (lr 0.01) to predict sin(t_{k+1}) from sin(t_k) at every
step of t = 0 .. 10 (100 points). Then each generates the wave
autoregressively from the single starting value sin(0): its own prediction
is the next input, and the recurrent state (h, or h and c) is carried from
step to step. The rollout RMSE against the true wave is reported for each.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
import numpy as np
import torch

from seqlab.errors import SeqlabError
from seqlab.io import save_figure, write_json
from seqlab.models.registry import build_model
from seqlab.reports.tables import format_table

CELLS = ("rnn", "lstm", "gru")


def sine_wave(points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, 10.0, points)
    return t, np.sin(t)


def train_one_step(cell: str, wave: np.ndarray, iterations: int, hidden_size: int, lr: float, seed: int):
    torch.manual_seed(seed)
    model = build_model(cell, 1, 1, hidden_size=hidden_size, head="step")
    x = torch.tensor(wave[:-1], dtype=torch.float32).view(1, -1, 1)  # (1, T-1, 1)
    y = torch.tensor(wave[1:], dtype=torch.float32).view(1, -1, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(iterations):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    return model, float(loss.item())


@torch.no_grad()
def generate(model, start: float, steps: int) -> np.ndarray:
    """Feed each prediction back as the next input, carrying the recurrent state."""
    model.eval()
    value = torch.tensor([[[start]]], dtype=torch.float32)  # (1, 1, 1)
    state, values = None, [start]
    for _ in range(steps - 1):
        value, state = model.forward_stateful(value, state)  # (1, 1, 1)
        values.append(float(value))
    return np.array(values)


# Most --iterations: each is one full-batch step of three small models, so this is minutes at most.
MAX_ITERATIONS = 100_000


def run_sine_experiment(out: str | Path, iterations: int = 300, hidden_size: int = 16, lr: float = 0.01,
                        seed: int = 0, quiet: bool = False) -> dict:
    """Train the three cells, generate 100 steps each, write ``sine.json`` and ``sine_rollout.png``."""
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise SeqlabError(f"--iterations: expected an integer in 1..{MAX_ITERATIONS}, got {iterations}")
    if hidden_size < 1:
        raise SeqlabError(f"--hidden-size: expected a positive integer, got {hidden_size}")
    if not 0 <= seed < 2**32:
        raise SeqlabError(f"--seed: expected an integer in 0 .. 2**32 - 1, got {seed}")
    out = Path(out)
    t, wave = sine_wave()
    results, rollouts = {}, {}
    for cell in CELLS:
        model, train_loss = train_one_step(cell, wave, iterations, hidden_size, lr, seed)
        rollout = generate(model, float(wave[0]), len(wave))
        rollouts[cell] = rollout
        results[cell] = {"train_mse": train_loss, "rollout_rmse": float(np.sqrt(np.mean((rollout - wave) ** 2)))}
    summary = {"iterations": iterations, "hidden_size": hidden_size, "lr": lr, "seed": seed,
               "points": len(wave), "models": results}
    write_json(out / "sine.json", summary)
    fig = Figure(figsize=(9, 3.8))
    ax = fig.subplots()
    ax.plot(t, wave, "k", lw=2, label="sin(t)")
    for cell in CELLS:
        ax.plot(t, rollouts[cell], "--", label=f"{cell} (RMSE {results[cell]['rollout_rmse']:.3f})")
    ax.set(xlabel="t", title=f"generated from sin(0) with carried state, after {iterations} iterations")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, out / "sine_rollout.png")
    if not quiet:
        rows = [[cell, r["train_mse"], r["rollout_rmse"]] for cell, r in results.items()]
        print(format_table(["model", "train_mse", "rollout_rmse"], rows))
        print(f"Results: {out / 'sine.json'}, plot: {out / 'sine_rollout.png'}")
    return summary
