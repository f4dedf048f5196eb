"""Baselines every run is measured against, one module per task, and the warning when the model loses.

* :mod:`~seqlab.baselines.classification`: majority class, MiniRocket.
* :mod:`~seqlab.baselines.regression`: the training mean, MiniRocket with a ridge regression.
* :mod:`~seqlab.baselines.forecast`: naive, seasonal naive, naive in the
  run's transformed space, ETS, ARIMA.
* :mod:`~seqlab.baselines.lm`: unigram and an interpolated Kneser-Ney
  character n-gram.

Each task writes them into ``metrics.json`` under ``baselines`` and adds a
line to ``warnings`` when the model does not beat the best of them.
``train.baselines: false`` leaves out the baselines that need fitting
(MiniRocket, ETS, ARIMA, the n-gram); the closed-form ones stay.
"""

from __future__ import annotations


def losing_warnings(model_score: float | None, baselines: dict[str, dict], key: str, what: str,
                    higher_is_better: bool) -> list[str]:
    """One warning when the best baseline's ``key`` is at least as good as the model's ``model_score``."""
    scored = {name: b[key] for name, b in baselines.items() if b.get(key) is not None}
    if model_score is None or not scored:
        return []
    pick = max if higher_is_better else min
    best = pick(scored, key=scored.get)
    beaten = model_score > scored[best] if higher_is_better else model_score < scored[best]
    if beaten:
        return []
    return [f"the model's {what} {model_score:.4g} does not beat the {best} baseline's {scored[best]:.4g}"]
