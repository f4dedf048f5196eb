"""Sensing architectures: SenseFi equivalence, padding, attention, causality, shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqlab.errors import SeqlabError
from seqlab.models import build_model, count_parameters
from seqlab.models.tcn import receptive_field


class SenseFiCNNGRU(nn.Module):
    """SenseFi's UT_HAR_CNN_GRU as published, minus its final Softmax (the double-softmax bug)."""

    def __init__(self, num_classes=7):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv1d(250, 250, 12, 3), nn.ReLU(True), nn.Conv1d(250, 250, 5, 2),
                                     nn.ReLU(True), nn.Conv1d(250, 250, 5, 1))
        self.gru = nn.GRU(8, 128, num_layers=1)
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(128, num_classes))

    def forward(self, x):
        x = self.encoder(x.view(-1, 250, 90)).permute(1, 0, 2)
        _, ht = self.gru(x)
        return self.classifier(ht[-1])


def test_cnn_gru_is_sensefis_network_without_the_softmax():
    torch.manual_seed(0)
    ours = build_model("cnn-gru", 90, 7, steps=250).eval()
    theirs = SenseFiCNNGRU().eval()
    assert count_parameters(ours) == count_parameters(theirs) == 1429645
    with torch.no_grad():
        for a, b in zip(theirs.parameters(), ours.parameters()):
            a.copy_(b)
    x = torch.randn(3, 250, 90)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ours(x).sum(dim=1), torch.ones(3))  # logits, not probabilities


def test_parallel_network_matches_the_seed_dimensions():
    model = build_model("cnn-gru-parallel", 90, 7, steps=250)
    assert model.project[1].in_features == 2000 and model.project[1].out_features == 100
    assert model.rnn.rnn.num_layers == 2 and model.rnn.rnn.hidden_size == 80
    assert model.classifier.in_features == 180
    lstm = build_model("cnn-lstm-parallel", 90, 7, steps=250)
    assert isinstance(lstm.rnn.rnn, nn.LSTM)


class SeedParallelCNNGRU(nn.Module):
    """Seed 000's Parallel_CNN_GRU, as the article writes it, with its 250 time stamps as ``T``."""

    def __init__(self, T: int = 250):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv1d(T, T, 12, 3), nn.ReLU(True), nn.Conv1d(T, T, 5, 2), nn.ReLU(True),
                                 nn.Conv1d(T, T, 5, 1), nn.Dropout(0.5), nn.Flatten(), nn.Linear(T * 8, 100))
        self.gru = nn.GRU(input_size=90, hidden_size=80, num_layers=2, batch_first=True)
        self.fc = nn.Linear(180, 7)

    def forward(self, X):
        _, h = self.gru(X)
        return self.fc(torch.cat((self.cnn(X), h.permute(1, 0, 2)[:, -1, :]), dim=1))


def test_parallel_network_computes_the_seed_network():
    torch.manual_seed(7)
    seed = SeedParallelCNNGRU(T=30).eval()  # 30 time stamps instead of 250, to keep the test small
    ours = build_model("cnn-gru-parallel", 90, 7, steps=30).eval()
    renamed = {"cnn.7.weight": "project.1.weight", "cnn.7.bias": "project.1.bias", "fc.weight": "classifier.weight",
               "fc.bias": "classifier.bias"}
    ours.load_state_dict({renamed.get(k, k.replace("gru.", "rnn.rnn.")): v for k, v in seed.state_dict().items()})
    x = torch.randn(2, 30, 90)
    torch.testing.assert_close(ours(x), seed(x))
    assert ours.cnn_dropout.p == 0.5 and not any(isinstance(m, nn.ReLU) for m in ours.project)


SHAPES = [("cnn-gru", {}), ("cnn-gru", {"conv_axis": "time"}), ("cnn-gru-parallel", {}), ("cnn-lstm-parallel", {}),
          ("ablstm", {}), ("cnn1d-lstm", {}), ("cnn1d-gru", {}), ("tcn", {})]


@pytest.mark.parametrize("name,options", SHAPES)
@pytest.mark.parametrize("steps,features", [(250, 90), (8, 8), (37, 3)])
def test_every_model_works_on_any_shape(name, options, steps, features):
    model = build_model(name, features, 4, steps=steps, **options)
    assert model(torch.randn(2, steps, features)).shape == (2, 4)


@pytest.mark.parametrize("name,options", [("ablstm", {}), ("cnn1d-lstm", {}), ("cnn1d-gru", {"pool": 3}),
                                          ("tcn", {}), ("cnn-gru", {"conv_axis": "time"})])
def test_padded_batch_gives_each_sequence_its_own_output(name, options):
    torch.manual_seed(0)
    model = build_model(name, 3, 4, steps=40, **options).double().eval()
    lengths = torch.tensor([40, 23, 31]) if name != "cnn-gru" else torch.tensor([40, 36, 38])
    x = torch.randn(3, 40, 3, dtype=torch.float64)
    x[torch.arange(40)[None, :] >= lengths[:, None]] = 7.0  # padding must not matter
    batched = model(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(batched[i], model(x[i : i + 1, :n])[0], rtol=1e-9, atol=1e-9)


def test_ablstm_attention_sums_to_one_on_valid_steps_and_is_zero_on_padding():
    model = build_model("ablstm", 5, 3, hidden_size=8)
    lengths = torch.tensor([12, 4, 9])
    weights = model.attention_weights(torch.randn(3, 12, 5), lengths)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    assert torch.all(weights[torch.arange(12)[None, :] >= lengths[:, None]] == 0)
    assert torch.all(weights[torch.arange(12)[None, :] < lengths[:, None]] > 0)
    with pytest.raises(SeqlabError, match="model.head: expected attention"):
        build_model("ablstm", 5, 3, head="mean")


def test_tcn_receptive_field_is_exact():
    torch.manual_seed(0)
    model = build_model("tcn", 1, 1, channels=4, levels=3, kernel_size=3, dropout=0.0).double().eval()
    rf = model.receptive_field
    assert rf == receptive_field(3, 3) == 1 + 2 * 2 * 7
    x = torch.randn(1, 40, 1, dtype=torch.float64)
    base = model(x)
    inside, outside = x.clone(), x.clone()
    inside[0, 40 - rf] += 1.0  # the oldest step the last output sees
    outside[0, 40 - rf - 1] += 1.0  # one step older
    assert not torch.allclose(model(inside), base)
    torch.testing.assert_close(model(outside), base)


def test_text_lstm_reads_token_ids_with_lengths():
    torch.manual_seed(0)
    model = build_model("text-lstm", 50, 3).eval()
    ids = torch.randint(1, 50, (3, 10, 1)).float()
    lengths = torch.tensor([10, 3, 6])
    out = model(ids, lengths)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[i], model(ids[i : i + 1, :n])[0], rtol=1e-5, atol=1e-6)


def test_text_lstm_has_the_layers_of_seed_003():
    model = build_model("text-lstm", 50, 3, embedding_dim=6, hidden_size=5)
    assert [type(m) for m in model.mlp] == [nn.Linear, nn.GELU, nn.Linear]
    assert (model.mlp[0].in_features, model.mlp[0].out_features, model.mlp[2].out_features) == (6, 5, 5)
    assert model.lstm.rnn.hidden_size == 10 and model.lstm.num_layers == 3  # width 2H
    assert model.norm.normalized_shape == (10,)
    assert [type(m) for m in model.head] == [nn.Linear, nn.GELU, nn.LayerNorm, nn.Linear]
    assert model.head[0].in_features == 15 and model.head[2].normalized_shape == (5,)  # 2H + H pooled


def test_feature_axis_models_need_the_training_length():
    model = build_model("cnn-gru", 90, 7, steps=250)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 250, F\)"):
        model(torch.randn(1, 200, 90))
    with pytest.raises(SeqlabError, match="needs the sequence length"):
        build_model("cnn-gru", 90, 7)
