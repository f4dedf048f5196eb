"""Patch size against test accuracy for a plain GRU or LSTM on a long UCR set, in a bare loop like the recipe.

    python benchmarks/patch_sweep.py DATA CELL PATCH HEAD STEPS SEED [HIDDEN]
    e.g. python benchmarks/patch_sweep.py ACSF1 gru 24 last 1000 0

A quick loop outside the training engine, to compare ``model.patch`` values
before running the suite: the set's own train/test split (all training
series, no validation split), z-scored per feature on the training split,
``PATCH`` consecutive steps side by side as one step, batch from the
training-set size as the recipe's, AdamW 3e-3 with the one-cycle schedule
over ``STEPS`` steps, clipping at 1, the last weights. ``DROP`` in the
environment sets dropout before the output layer. Prints test and training
accuracy and the seconds taken.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
import torch
from aeon.datasets import load_classification
from torch import nn

from seqlab.models.recurrent import group_steps
from seqlab.training.recipe import auto_batch_size


def main() -> None:
    name, cell, patch, head, steps, seed = sys.argv[1:7]
    patch, steps, seed = int(patch), int(steps), int(seed)
    hidden = int(sys.argv[7]) if len(sys.argv) > 7 else 128
    drop = float(os.environ.get("DROP", "0"))
    torch.set_num_threads(1)
    X_train, y_train = load_classification(name, split="train")
    X_test, y_test = load_classification(name, split="test")
    classes = sorted(set(y_train))
    y_train = torch.tensor([classes.index(v) for v in y_train])
    y_test = np.array([classes.index(v) for v in y_test])
    X_train = np.asarray(X_train, np.float32).transpose(0, 2, 1)  # (N, T, F)
    X_test = np.asarray(X_test, np.float32).transpose(0, 2, 1)
    flat = X_train.reshape(-1, X_train.shape[2])
    mean, std = flat.mean(0), flat.std(0)
    X_train, _ = group_steps(torch.tensor((X_train - mean) / std), None, patch)  # (N, T', p*F)
    X_test, _ = group_steps(torch.tensor((X_test - mean) / std), None, patch)
    torch.manual_seed(seed)
    recurrence = (nn.GRU if cell == "gru" else nn.LSTM)(X_train.shape[2], hidden, batch_first=True)
    dropout, fc = nn.Dropout(drop), nn.Linear(hidden, len(classes))

    def logits(x):
        outputs, _ = recurrence(x)  # (B, T', H)
        return fc(dropout(outputs.mean(1) if head == "mean" else outputs[:, -1]))

    parameters = [*recurrence.parameters(), *fc.parameters()]
    optimizer = torch.optim.AdamW(parameters, 3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=steps, pct_start=0.1)
    n, batch = len(X_train), auto_batch_size(len(X_train))
    started, step = time.time(), 0
    while step < steps:
        order = torch.randperm(n)
        for start in range(0, n, batch):
            if step == steps:
                break
            index = order[start : start + batch]
            loss = nn.functional.cross_entropy(logits(X_train[index]), y_train[index])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            schedule.step()
            step += 1
    dropout.eval()
    with torch.no_grad():
        test = (logits(X_test).argmax(1).numpy() == y_test).mean()
        train = (logits(X_train).argmax(1) == y_train).float().mean()
    print(f"{name} {cell} patch={patch} T'={X_train.shape[1]} head={head} H={hidden} dropout={drop} steps={steps} "
          f"seed={seed}: test {test:.3f} train {train:.3f} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
