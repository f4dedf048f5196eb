"""Language-model baselines: a smoothed character n-gram with its order chosen on the training text.

The n-gram is interpolated Kneser-Ney (Chen & Goodman 1998, section 3.5)
with one absolute discount per order, D_n = n1 / (n1 + 2 n2) (n1, n2: how
many n-grams of that order have count 1 and 2). For a context h of k = n-1
characters and its shortening h' (the last k-1):

    P_n(w | h) = max(c(h w) - D_n, 0) / c(h)  +  D_n * N1+(h .) / c(h) * P_{n-1}(w | h')

where the top order counts c are occurrences and every lower order uses
continuation counts (how many different characters precede h w). Below
order 1 sits the uniform distribution over the V vocabulary ids, so a
character the training text never showed (id 0, UNKNOWN) still gets a
probability. A context never seen falls through to the next order down.

The order is chosen by perplexity on the last ``holdout_fraction`` of the
training ids (counted on the rest), then the model is refitted on all the
training ids. Scoring follows :func:`seqlab.tasks.lm.stream_loss`: the
targets are ids[1:], each predicted from the characters before it within the
scored text.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from seqlab.baselines import losing_warnings
from seqlab.data.text import unigram_perplexity


def _as_text(ids: np.ndarray) -> str:
    """Ids as a string (one code point per id), so n-grams are fast string slices."""
    return "".join(map(chr, np.asarray(ids, dtype=np.int64).tolist()))


@dataclass
class _Level:
    """Counts of one order n: per context h (n-1 characters) its continuations w."""

    counts: dict[str, dict[str, int]]  # h -> {w: c(h w)}
    totals: dict[str, int]  # h -> sum over w of c(h w)
    discount: float


def _level(grams: Counter, n: int) -> _Level:
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for gram, c in grams.items():
        counts[gram[:-1]][gram[-1]] = c
    totals = {h: sum(ws.values()) for h, ws in counts.items()}
    frequency = Counter(grams.values())
    n1, n2 = frequency.get(1, 0), frequency.get(2, 0)
    discount = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
    return _Level(dict(counts), totals, min(max(discount, 0.05), 0.95))


class KneserNeyNgram:
    """An interpolated Kneser-Ney character model of ``order`` over ids 0 .. V-1."""

    def __init__(self, train_ids: np.ndarray, order: int, vocab_size: int):
        if order < 1:
            raise ValueError(f"order: expected an integer >= 1, got {order}")
        self.order, self.vocab_size = order, vocab_size
        text = _as_text(train_ids)
        top = Counter(text[i : i + order] for i in range(len(text) - order + 1))
        self.top = _level(top, order)  # occurrence counts at the top order
        # Continuation counts below it: c'(h w) = number of distinct x with c(x h w) > 0.
        self.lower: list[_Level] = []
        above = top
        for n in range(order - 1, 0, -1):
            continuation = Counter(gram[1:] for gram in above)
            self.lower.insert(0, _level(continuation, n))
            above = continuation
        # self.lower[n - 1] is order n (1 .. order-1); occurrence counts of those orders for top use:
        self.occurrences: list[_Level] = [
            _level(Counter(text[i : i + n] for i in range(len(text) - n + 1)), n) for n in range(1, order)
        ]

    def _interpolate(self, level: _Level, context: str, char: str, lower: float) -> float:
        total = level.totals.get(context)
        if not total:
            return lower
        continuations = level.counts[context]
        seen = continuations.get(char, 0)
        return (max(seen - level.discount, 0.0) + level.discount * len(continuations) * lower) / total

    def probabilities(self, context: str, char: str) -> list[float]:
        """P(char | context) for the models of order 1 .. len(context) + 1 (at most ``order``).

        Entry n-1 is what a model of order n assigns: continuation counts up
        to order n-1, occurrence counts at n. ``context`` holds the last
        characters before ``char`` (any length; only the last order-1 count).
        """
        k = min(len(context), self.order - 1)
        context = context[len(context) - k :]
        lower = 1.0 / self.vocab_size
        out = []
        for n in range(1, k + 2):
            h = context[k - (n - 1) :]
            top = self.top if n == self.order else self.occurrences[n - 1]
            out.append(self._interpolate(top, h, char, lower))
            if n < self.order:
                lower = self._interpolate(self.lower[n - 1], h, char, lower)
        return out

    def distribution(self, context_ids: np.ndarray) -> np.ndarray:
        """(V,) P(w | context) of the full model for every id w."""
        context = _as_text(context_ids)
        return np.array([self.probabilities(context, chr(w))[-1] for w in range(self.vocab_size)])

    def log_losses(self, ids: np.ndarray) -> np.ndarray:
        """(order,) mean negative log-likelihood (nats) of ids[1:] for the models of order 1 .. ``order``.

        Near the start of ``ids`` a higher-order model uses the shorter
        context there is, like a recurrent model whose state starts empty.
        """
        text = _as_text(ids)
        totals = np.zeros(self.order)
        for i in range(1, len(text)):
            p = self.probabilities(text[max(0, i - self.order + 1) : i], text[i])
            p += [p[-1]] * (self.order - len(p))
            totals -= np.log(p)
        return totals / max(len(text) - 1, 1)


def choose_order(train_ids: np.ndarray, vocab_size: int, max_order: int = 8, holdout_fraction: float = 0.1) -> int:
    """The order (1 .. ``max_order``) with the lowest perplexity on the tail of the training ids."""
    split = int(len(train_ids) * (1 - holdout_fraction))
    if split < 2 or len(train_ids) - split < 2:
        return 1
    losses = KneserNeyNgram(train_ids[:split], max_order, vocab_size).log_losses(train_ids[split:])
    return int(np.argmin(losses)) + 1


def lm_baselines(train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int, fitted: bool = True,
                 max_order: int = 8) -> dict[str, dict]:
    """``unigram`` (add-one character frequencies) and, when ``fitted``, ``ngram`` of the chosen order."""
    unigram = unigram_perplexity(train_ids, val_ids, vocab_size)
    out = {"unigram": {"perplexity": unigram, "bits_per_char": math.log2(unigram)}}
    if fitted:
        order = choose_order(train_ids, vocab_size, max_order)
        loss = float(KneserNeyNgram(train_ids, order, vocab_size).log_losses(val_ids)[-1])
        out["ngram"] = {"perplexity": math.exp(loss), "bits_per_char": loss / math.log(2), "order": order}
    return out


def lm_report(train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int, model_perplexity: float,
              fitted: bool = True) -> dict:
    """``{"baselines": ..., "warnings": [...]}``: the model against :func:`lm_baselines` on ``val_ids``."""
    baselines = lm_baselines(train_ids, val_ids, vocab_size, fitted)
    return {"baselines": baselines,
            "warnings": losing_warnings(model_perplexity, baselines, "perplexity", "validation perplexity", False)}
