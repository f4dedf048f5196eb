"""Parameter counts and output shapes of every classifier for the seeds' input shapes.

    python benchmarks/model_table.py

Prints the Markdown table the README carries (``tests/test_readme.py``
checks that the two agree).
"""

from __future__ import annotations

import torch

from seqlab.models import build_model, count_parameters, get_model_entry, model_names

# The seeds' shapes: UT-HAR CSI (250 x 90, 7 activities); a DEAP window (2 s at 128 Hz x 32 EEG channels,
# 4 quadrants); token ids for the text classifier (vocabulary 10000, 2 classes); two UCR/UEA sets of the
# LSTM-FCN papers (JapaneseVowels: at most 29 steps of 12 coefficients, 9 speakers; ItalyPowerDemand: 24 hourly
# values, 2 classes).
SHAPES = {"ut-har": (250, 90, 7), "deap": (256, 32, 4), "text": (50, 10000, 2),
          "japanese-vowels": (29, 12, 9), "italy-power": (24, 1, 2)}
EXTRA_SHAPES = {"cnn1d-lstm": ["deap"], "cnn1d-gru": ["deap"],
                "lstm-fcn": ["japanese-vowels", "italy-power"], "gru-fcn": ["japanese-vowels", "italy-power"]}


def rows() -> list[list[str]]:
    table = []
    for name in model_names():
        entry = get_model_entry(name)
        if "classification" not in entry.tasks:
            continue
        keys = ["text"] if entry.tokens else ["ut-har"] + EXTRA_SHAPES.get(name, [])
        for key in keys:
            steps, features, classes = SHAPES[key]
            model = build_model(name, features, classes, steps=steps).eval()
            x = torch.randint(0, features, (2, steps)) if entry.tokens else torch.randn(2, steps, features)
            with torch.no_grad():
                shape = tuple(model(x).shape)
            shown = f"(B, {steps})" if entry.tokens else f"(B, {steps}, {features})"
            table.append([name, key, shown, f"(B, {shape[1]})", f"{count_parameters(model):,}"])
    return table


def markdown() -> str:
    lines = ["| model | data | input | output | parameters |", "|---|---|---|---|---:|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
