"""Attributions over (time, feature) for any classifier, by Captum, plus attention weights where a model has them.

Symbols: N sequences, T time steps, F features, C classes.

The explained number is the logit of the target class (the predicted one
unless given) as a function of the normalised input x (T, F).

``integrated-gradients``: A = (x - x0) * the mean of dlogit/dx along the
    straight path from the baseline x0 to x (Gauss-Legendre, ``steps``
    points). x0 = 0, the training mean of every feature (the inputs are
    normalised). By the completeness axiom, A sums to logit(x) - logit(x0);
    the gap left by the finite path is reported as ``delta``.
``saliency``: A = dlogit/dx, the signed gradient at x (how fast the logit
    moves with each value), not its absolute value.

Padded steps of a variable-length sequence are not part of it: they are
left out of the attributions, the attention weights and the plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from seqlab.errors import SeqlabError
from seqlab.inspect.data import inspection_data, load_classifier
from seqlab.io import write_json

METHODS = ("integrated-gradients", "saliency")
EXPLAIN_FILE = "attributions.json"


def attribute(model, x: torch.Tensor, lengths: torch.Tensor | None, target: torch.Tensor,
              method: str = "integrated-gradients", steps: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attributions (N, T, F) of the ``target`` (N,) logits to ``x`` (N, T, F); IG's completeness gap (N,) or None."""
    from captum.attr import IntegratedGradients, Saliency

    if method not in METHODS:
        raise SeqlabError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    model.eval()

    def logits(inputs, input_lengths=None):
        return model(inputs, input_lengths)  # (N, C)

    extra = None if lengths is None else (lengths,)
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        if method == "saliency":
            return Saliency(logits).attribute(x, target=target, abs=False, additional_forward_args=extra).detach(), None
        if steps < 2:
            raise SeqlabError(f"--steps: expected an integer >= 2, got {steps}")
        attributions, delta = IntegratedGradients(logits).attribute(
            x, baselines=torch.zeros_like(x), target=target, additional_forward_args=extra, n_steps=steps,
            return_convergence_delta=True)
    return attributions.detach(), delta.detach()


def explain(run_dir: str | Path, input_path: str | Path, out: str | Path, method: str = "integrated-gradients",
            indices: list[int] | None = None, target: str | None = None, steps: int = 64) -> dict:
    """``seqlab explain``: ``attributions.json`` and one ``explain_<index>.png`` per sequence into ``out``.

    ``indices`` pick sequences of the input file (default: the first);
    ``target`` is a class name of the run (default: each sequence's
    predicted class). Returns what ``attributions.json`` holds.
    """
    from seqlab.reports.inspection import plot_attribution
    from seqlab.tasks.classification import attention_weights

    from seqlab.models.registry import get_model_entry

    run = load_classifier(run_dir, "explain")
    name = run.checkpoint["model"]["name"]
    if get_model_entry(name).tokens:
        raise SeqlabError(f"run folder {run.path}: model {name} reads token ids, which have no gradient; "
                          "`seqlab explain` attributes numeric features")
    data = inspection_data(run, input_path, labels=False)
    indices = [0] if not indices else list(indices)
    bad = [i for i in indices if not 0 <= i < len(data)]
    if bad:
        raise SeqlabError(f"--index {bad[0]}: {input_path} holds {len(data)} sequences; expected 0..{len(data) - 1}")
    class_names = run.class_names
    if target is not None and target not in class_names:
        raise SeqlabError(f"--target {target!r}: not a class of the run; its classes are {class_names}")
    chosen = data.subset(np.asarray(indices))
    x = torch.from_numpy(np.ascontiguousarray(chosen.X)).float()  # (N, T, F)
    lengths = None if chosen.lengths is None else torch.from_numpy(np.asarray(chosen.lengths, np.int64))
    if lengths is not None:
        x = x[:, : int(lengths.max())]
    model = run.model
    with torch.no_grad():
        probabilities = torch.softmax(model(x, lengths), dim=1)  # (N, C)
        attention = attention_weights(model, chosen) if getattr(model, "attention", None) is not None else None
    if attention is not None and attention.shape[1] != chosen.steps:
        attention = None  # attention over other steps than the input's (lstm-fcn's dimension shuffle): not drawn
    predicted = probabilities.argmax(dim=1)
    targets = predicted if target is None else torch.full_like(predicted, class_names.index(target))
    attributions, delta = attribute(model, x, lengths, targets, method, steps)
    feature_names = run.extras.get("feature_names") or [f"feature {f}" for f in range(x.shape[2])]
    records = []
    out = Path(out)
    for row, index in enumerate(indices):
        length = x.shape[1] if lengths is None else int(lengths[row])
        values = attributions[row, :length].numpy()  # (T_i, F)
        record = {"index": index, "id": str(chosen.ids[row]), "length": length,
                  "target": class_names[int(targets[row])], "predicted": class_names[int(predicted[row])],
                  "probability": float(probabilities[row, targets[row]]),
                  "attribution": values.tolist(), "total": float(values.sum()),
                  "delta": None if delta is None else float(delta[row]),
                  "attention": None if attention is None else attention[row, :length].tolist()}
        if chosen.y is not None:
            record["label"] = class_names[int(chosen.y[row])]
        records.append(record)
        plot_attribution(x[row, :length].numpy(), values, None if attention is None else attention[row, :length],
                         x.shape[1], feature_names, out / f"explain_{index}.png",
                         f"{method} for class {record['target']} (sequence {record['id']}, p={record['probability']:.2f})")
    report = {"run": str(run_dir), "input": str(input_path), "method": method,
              "baseline": "zeros (the training mean)" if method == "integrated-gradients" else None,
              "steps": steps if method == "integrated-gradients" else None,
              "features": feature_names, "sequences": records}
    write_json(out / EXPLAIN_FILE, report)
    return report

