"""Character language modelling: truncated BPTT over parallel streams, perplexity, sampling.

Symbols: B parallel streams, T steps per chunk (``lm.bptt``), V vocabulary.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from seqlab.baselines.lm import lm_report
from seqlab.config import RunConfig
from seqlab.data.text import UNKNOWN, TextData, load_text, streams, unigram_perplexity
from seqlab.errors import SeqlabError
from seqlab.io import write_text
from seqlab.models.language import RecurrentLM
from seqlab.reports.plots import plot_learning_curves
from seqlab.runs import MODEL_FILE, Run, load_run, require_task, save_run_checkpoint
from seqlab.tasks.base import TaskRecipe, TrainingSetup, fingerprint, model_options
from seqlab.training.module import LanguageModule
from seqlab.training.recipe import resolve_recipe


def _chunks_tensor(chunks):
    return [(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))) for x, y in chunks]


@torch.no_grad()
def stream_loss(model: nn.Module, ids: np.ndarray, bptt: int) -> float:
    """Mean cross-entropy (nats per character) of ``ids`` read as one stream with the state carried."""
    model.eval()
    total, count, state = 0.0, 0, None
    for x, y in _chunks_tensor(streams(ids, 1, bptt)):
        logits, state = model(x, state)  # (1, T, V)
        total += nn.functional.cross_entropy(logits[0], y[0], reduction="sum").item()
        count += y.numel()
    return total / count


class LanguageModelTask(TaskRecipe):
    """Next-character prediction: perplexity and bits per character, unigram and n-gram baselines, a text sample."""

    name = "lm"

    def prepare(self, config: RunConfig) -> TextData:
        return load_text(config.data.spec, config.lm.val_fraction)

    def fingerprint(self, config: RunConfig, data: TextData) -> str:
        return fingerprint(config, data.vocab, data.train, data.val)

    def build(self, config: RunConfig, data: TextData) -> TrainingSetup:
        model = RecurrentLM(len(data.vocab), cell=config.model["name"], **lm_options(config))
        module = LanguageModule(model, config.train.lr, config.train.weight_decay)
        # Chunks in text order: the carried state must see them consecutively.
        train_chunks = _chunks_tensor(streams(data.train, resolve_recipe(config.train, "lm").batch_size, config.lm.bptt))
        val_chunks = _chunks_tensor(streams(data.val, 1, config.lm.bptt))
        # batch_size=None: each chunk is already a batch of B streams; no shuffling.
        return TrainingSetup(model, module, DataLoader(train_chunks, batch_size=None),
                             DataLoader(val_chunks, batch_size=None))

    def evaluate(self, config: RunConfig, data: TextData, model: nn.Module) -> dict[str, Any]:
        val_loss = stream_loss(model, data.val, config.lm.bptt)
        return {
            "data": {"spec": config.data.spec, "train_chars": int(len(data.train)), "val_chars": int(len(data.val)),
                     "vocab_size": len(data.vocab)},
            "val": {"loss": val_loss, "perplexity": math.exp(val_loss), "bits_per_char": val_loss / math.log(2)},
            **lm_report(data.train, data.val, len(data.vocab), math.exp(val_loss), config.train.baselines),
        }

    def save(self, config: RunConfig, data: TextData, model: nn.Module, metrics: dict[str, Any],
             history: list[dict[str, float]], out: Path) -> None:
        save_run_checkpoint(
            out / MODEL_FILE, model,
            {"name": config.model["name"], "builder": "lm", "input_size": len(data.vocab),
             "output_size": len(data.vocab), "options": lm_options(config)},
            config.to_dict(), "lm", {"vocab": data.vocab},
        )
        plot_learning_curves(history, out / "learning_curves.png", f"{config.model['name']} on {config.data.spec}")
        sample = generate(model, data.vocab, prompt=_seed_prompt(data), length=400, temperature=0.8, seed=0)
        write_text(out / "samples.txt", sample + "\n")

    def evaluate_run(self, run: Run, data_spec: str | None, split: str) -> dict[str, Any]:
        return evaluate_lm(run, data_spec, split)


def lm_options(config: RunConfig) -> dict[str, Any]:
    """The model section as RecurrentLM's arguments (config resolution keeps only the options it takes)."""
    options = model_options(config)
    options["embedding_dim"] = config.lm.embedding_dim
    return options


def _seed_prompt(text) -> str:
    return "".join(text.vocab[i] for i in text.val[:20] if i)


def evaluate_lm(run: Run, data_spec: str | None, split: str) -> dict[str, Any]:
    from seqlab.data.text import encode, read_text

    if split not in ("val", "test"):
        raise SeqlabError(f"--split {split}: a language-model run evaluates its validation text (val)")
    vocab = run.extras["vocab"]
    cfg = run.config["lm"]
    if data_spec is None:
        text = load_text(run.config["data"]["spec"], cfg["val_fraction"])
        train_ids, ids = text.train, text.val
    else:
        _, content = read_text(data_spec)
        ids = encode(content, vocab)
        train_ids = load_text(run.config["data"]["spec"], cfg["val_fraction"]).train
    loss = stream_loss(run.model, ids, cfg["bptt"])
    return {"task": "lm", "model": run.checkpoint["model"]["name"], "data": data_spec or run.config["data"]["spec"],
            "split": "val", "val": {"loss": loss, "perplexity": math.exp(loss), "bits_per_char": loss / math.log(2)},
            "baselines": {"unigram": {"perplexity": unigram_perplexity(train_ids, ids, len(vocab))}}}


# Longest ``seqlab generate --length``: one model step per character, about a minute at most.
MAX_LENGTH = 100_000


@torch.no_grad()
def generate(model: RecurrentLM, vocab: list[str], prompt: str, length: int, temperature: float = 1.0,
             top_k: int = 0, seed: int = 0, skip_unknown: bool = False) -> str:
    """Warm the state up on ``prompt``, then sample ``length`` characters one at a time.

    Characters of the prompt outside the vocabulary are an error, or are
    dropped with ``skip_unknown``. The same seed gives the same text.
    """
    if not 0 <= length <= MAX_LENGTH:
        raise SeqlabError(f"--length: expected an integer in 0..{MAX_LENGTH}, got {length}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise SeqlabError(f"--temperature: expected a positive finite number, got {temperature}")
    if not 0 <= seed < 2**32:
        raise SeqlabError(f"--seed: expected an integer in 0 .. 2**32 - 1, got {seed}")
    lookup = {ch: i for i, ch in enumerate(vocab) if i}
    unknown = sorted({ch for ch in prompt if ch not in lookup})
    if unknown and not skip_unknown:
        shown = ", ".join(repr(ch) for ch in unknown[:10])
        raise SeqlabError(f"--prompt: characters not in the model's vocabulary: {shown}; "
                          "remove them or pass --skip-unknown to drop them")
    ids = [lookup[ch] for ch in prompt if ch in lookup]
    if not ids:
        raise SeqlabError("--prompt: expected at least one character from the model's vocabulary")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    logits, state = model(torch.tensor([ids]))  # (1, T, V)
    last = logits[0, -1]
    out = []
    for _ in range(length):
        scores = last / temperature
        scores[0] = -math.inf  # never sample the unknown symbol
        if top_k:
            kth = torch.topk(scores, min(top_k, len(scores) - 1)).values[-1]
            scores = scores.masked_fill(scores < kth, -math.inf)
        index = int(torch.multinomial(torch.softmax(scores, dim=0), 1, generator=generator))
        out.append(vocab[index])
        logits, state = model(torch.tensor([[index]]), state)
        last = logits[0, -1]
    return prompt + "".join(out)


def generate_from_run(run_dir: str | Path, prompt: str, length: int, temperature: float = 1.0, top_k: int = 0,
                      seed: int = 0, skip_unknown: bool = False) -> str:
    run = load_run(run_dir)
    require_task(run, "lm", "generate")
    if top_k < 0:
        raise SeqlabError(f"--top-k: expected an integer >= 0, got {top_k}")
    return generate(run.model, run.extras["vocab"], prompt, length, temperature, top_k, seed, skip_unknown)


__all__ = ["UNKNOWN", "evaluate_lm", "generate", "generate_from_run", "stream_loss", "LanguageModelTask"]
