"""Character language models: streams, truncated BPTT, perplexity, generation, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import run_cli
from seqlab.data.text import UNKNOWN, load_text, streams, unigram_perplexity
from seqlab.errors import SeqlabError
from seqlab.models.language import RecurrentLM
from seqlab.training.module import LanguageModule


def test_streams_continue_from_chunk_to_chunk():
    ids = np.arange(103)
    chunks = streams(ids, batch=4, bptt=10)
    x = np.concatenate([c[0] for c in chunks], axis=1)  # (4, 25)
    y = np.concatenate([c[1] for c in chunks], axis=1)
    np.testing.assert_array_equal(x[1], np.arange(25, 50))  # stream 1 reads its own stretch in order
    np.testing.assert_array_equal(y, x + 1)  # targets are the next character


def test_vocabulary_from_the_training_part_and_unknown_in_validation(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abababababababababab" + "abz")
    text = load_text(f"text:{path}", val_fraction=0.15)
    assert text.vocab == [UNKNOWN, "a", "b"]
    assert text.val[-1] == 0  # 'z' never appeared in training


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_generation_step_by_step_equals_the_whole_sequence(cell):
    torch.manual_seed(0)
    model = RecurrentLM(12, cell=cell, embedding_dim=5, hidden_size=7, num_layers=2).eval()
    ids = torch.randint(0, 12, (2, 11))
    whole, _ = model(ids)
    state, steps = None, []
    for t in range(11):
        logits, state = model(ids[:, t : t + 1], state)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), whole, rtol=1e-5, atol=1e-6)


def test_truncated_bptt_carries_values_and_cuts_gradients():
    torch.manual_seed(1)
    model = RecurrentLM(6, cell="gru", embedding_dim=3, hidden_size=4)
    module = LanguageModule(model, 1e-3, 0.0)
    ids = torch.randint(1, 6, (2, 21))
    first, second = (ids[:, :10], ids[:, 1:11]), (ids[:, 10:20], ids[:, 11:21])
    module.batch_loss(first, "train")
    carried = module.state["train"]
    assert not carried.requires_grad  # detached: the next chunk's backward stops here
    _, full_state = model(ids[:, :10])
    torch.testing.assert_close(carried, full_state.detach())  # ...but the values flow on
    loss, _, _ = module.batch_loss(second, "train")
    loss.backward()  # would fail ("backward through the graph a second time") without the detach
    expected, _ = model(ids[:, 10:20], full_state.detach())
    reference = torch.nn.functional.cross_entropy(expected.reshape(-1, 6), ids[:, 11:21].reshape(-1))
    torch.testing.assert_close(loss, reference)


def test_unigram_perplexity_of_a_uniform_text():
    train = np.array([1, 2, 3, 4] * 50)
    assert unigram_perplexity(train, np.array([1, 2, 3, 4]), 5) == pytest.approx(1 / (51 / 205), rel=1e-6)


def test_lm_trains_below_unigram_and_generates_reproducibly(tmp_path, capsys):
    out = tmp_path / "lm"
    status, _, err = run_cli(capsys, "train", "--data", "text:founding", "--model", "gru", "--hidden-size", "128",
                             "--epochs", "4", "--batch-size", "32", "--quiet", "--out", out)
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "lm"
    assert metrics["val"]["perplexity"] < 0.5 * metrics["baselines"]["unigram"]["perplexity"]
    assert (out / "samples.txt").read_text().strip()
    args = ["generate", "--run", out, "--prompt", "We the People", "--length", "80", "--temperature", "0.8",
            "--top-k", "5", "--seed", "3"]
    status, first, err = run_cli(capsys, *args)
    assert status == 0, err
    assert first.startswith("We the People") and len(first.rstrip("\n")) == len("We the People") + 80
    assert run_cli(capsys, *args)[1] == first
    assert run_cli(capsys, *args[:-1], "4")[1] != first
    status, _, _ = run_cli(capsys, "eval", "--run", out)
    assert json.loads((out / "eval.json").read_text())["val"]["perplexity"] == pytest.approx(metrics["val"]["perplexity"])


def test_bad_text_and_prompts(tmp_path, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait".encode("latin-1"))
    status, _, err = run_cli(capsys, "train", "--data", f"text:{bad}", "--quiet", "--out", tmp_path / "x")
    assert status == 2 and "not valid UTF-8 (byte 0xe9 at offset 3)" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    status, _, err = run_cli(capsys, "train", "--data", f"text:{empty}", "--quiet", "--out", tmp_path / "y")
    assert status == 2 and "empty text" in err
    status, _, err = run_cli(capsys, "train", "--data", "text:founding", "--model", "bigru", "--quiet",
                             "--out", tmp_path / "z")
    assert status == 2 and "bigru does not serve the lm task" in err

    model = RecurrentLM(4, cell="gru", embedding_dim=2, hidden_size=3)
    from seqlab.tasks.lm import generate

    vocab = [UNKNOWN, "a", "b", "c"]
    with pytest.raises(SeqlabError, match=r"characters not in the model's vocabulary: 'x', 'y'; remove them or pass --skip-unknown"):
        generate(model, vocab, "abxy", 5)
    assert generate(model, vocab, "abxy", 5, skip_unknown=True).startswith("ab")
    with pytest.raises(SeqlabError, match=r"--temperature: expected a positive finite number, got 0"):
        generate(model, vocab, "ab", 5, temperature=0)
