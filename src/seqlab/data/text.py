"""Text for character language models: strict UTF-8, a vocabulary from the training part.

Index 0 of every vocabulary is ``UNKNOWN``: characters of the validation
text (or of a prompt, when asked) that the training text never showed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqlab.errors import SeqlabError

UNKNOWN = "\ufffd"
FILES = Path(__file__).parent / "files"
BUILTIN_TEXTS = {"founding": FILES / "founding_documents.txt"}


@dataclass
class TextData:
    """A text split into training and validation ids over one vocabulary."""

    name: str
    vocab: list[str]  # index -> character; vocab[0] is UNKNOWN
    train: np.ndarray  # (N_train,) int64
    val: np.ndarray  # (N_val,) int64


def encode(text: str, vocab: list[str]) -> np.ndarray:
    lookup = {ch: i for i, ch in enumerate(vocab)}
    return np.array([lookup.get(ch, 0) for ch in text], dtype=np.int64)


def read_text(spec: str) -> tuple[str, str]:
    """``text:FILE`` or ``text:founding`` -> (name, content); refuses non-UTF-8 and empty files."""
    target = spec[len("text:"):] if spec.startswith("text:") else spec
    path = BUILTIN_TEXTS.get(target, Path(target))
    if not path.is_file():
        raise SeqlabError(f"{path}: file not found")
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SeqlabError(
            f"{path}: not valid UTF-8 (byte 0x{raw[error.start]:02x} at offset {error.start}); expected a UTF-8 text file"
        ) from None
    if not content.strip():
        raise SeqlabError(f"{path}: empty text; expected characters to learn from")
    return str(path), content


def load_text(spec: str, val_fraction: float = 0.1) -> TextData:
    """The last ``val_fraction`` of the text is held out; the vocabulary comes from the rest."""
    name, content = read_text(spec)
    split = int(len(content) * (1 - val_fraction))
    train_text, val_text = content[:split], content[split:]
    if len(val_text) < 2 or len(train_text) < 2:
        raise SeqlabError(f"{name}: {len(content)} characters are too few to split into training and validation")
    vocab = [UNKNOWN] + sorted(set(train_text))
    return TextData(name, vocab, encode(train_text, vocab), encode(val_text, vocab))


def streams(ids: np.ndarray, batch: int, bptt: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cut ``ids`` into ``batch`` parallel streams and consecutive chunks of ``bptt`` steps.

    Chunk k of stream b continues chunk k-1 of stream b, so a state carried
    from chunk to chunk has read exactly the text before it. Returns
    (inputs (B, T), targets (B, T)) per chunk; targets are inputs shifted by one.
    """
    batch = max(1, min(batch, (len(ids) - 1) // 2))
    length = (len(ids) - 1) // batch
    x = ids[: batch * length].reshape(batch, length)  # (B, L)
    y = ids[1 : batch * length + 1].reshape(batch, length)
    return [(x[:, i : i + bptt], y[:, i : i + bptt]) for i in range(0, length, bptt)]


def unigram_perplexity(train: np.ndarray, val: np.ndarray, vocab_size: int) -> float:
    """Perplexity on ``val`` of character frequencies counted on ``train`` (add-one smoothed)."""
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(np.exp(-log_p[val].mean()))
