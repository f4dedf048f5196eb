"""The reset-before GRU: the reference against finite differences, the module against nn.GRU and itself
(the module against the reference: tests/test_recurrence.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from seqlab.models import build_model
from seqlab.models.reset_before import ResetBeforeGRU
from seqlab.recurrence import oracle as cells
from seqlab.reference import ReferenceRNN


def test_reference_gradients_match_finite_differences():
    rng = np.random.default_rng(5)
    ref = ReferenceRNN("gru", 2, 3, num_layers=2, bidirectional=True, reset_after=False, seed=2)
    x, lengths = rng.normal(size=(2, 4, 2)), np.array([4, 3])
    h0, G = rng.normal(size=(4, 2, 3)), rng.normal(size=(2, 4, 6))

    def loss():
        out, h_n, _ = ref.forward(x, h0, lengths=lengths)
        return float((out * G).sum() + h_n.sum())

    loss()
    grads = ref.backward(G, np.ones((4, 2, 3)))
    eps = 1e-6
    checks = [(ref.params[n], grads[n], n) for n in ("weight_hh_l0", "bias_hh_l1_reverse", "weight_ih_l1")]
    for array, grad, name in [*checks, (x, grads["x"], "x"), (h0, grads["h0"], "h0")]:
        for index in [tuple(rng.integers(0, s) for s in array.shape) for _ in range(4)]:
            old = array[index]
            array[index] = old + eps
            up = loss()
            array[index] = old - eps
            down = loss()
            array[index] = old
            assert abs((up - down) / (2 * eps) - grad[index]) < 1e-7, (name, index)


def test_reset_placement_is_a_different_model_once_the_state_is_not_zero():
    """The same weights give the same first step from h = 0 (r * h = 0 either way), then diverge."""
    torch.manual_seed(0)
    before = ResetBeforeGRU(3, 4, batch_first=True)
    after = nn.GRU(3, 4, batch_first=True)
    after.load_state_dict(before.state_dict())
    x = torch.randn(2, 5, 3)
    # from h = 0, W_hn (r * h) + b_hn = b_hn and r * (W_hn h + b_hn) = r * b_hn: they differ by (1 - r) b_hn
    params = before.state_dict()
    no_bias = {k: (v if k != "bias_hh_l0" else torch.cat([v[:8], torch.zeros(4)])) for k, v in params.items()}
    before.load_state_dict(no_bias)
    after.load_state_dict(no_bias)
    a, b = before(x)[0], after(x)[0]
    torch.testing.assert_close(a[:, 0], b[:, 0])
    assert (a[:, 1:] - b[:, 1:]).abs().max() > 1e-3


def test_step_by_step_cell_loop_equals_whole_sequence():
    rng = np.random.default_rng(6)
    ref = ReferenceRNN("gru", 3, 4, reset_after=False)
    x = rng.normal(size=(2, 5, 3))
    out, h_n, _ = ref.forward(x)
    p = ref.params
    h = np.zeros((2, 4))
    for t in range(5):
        h, _ = cells.gru_forward(x[:, t], h, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"],
                                 reset_after=False)
        np.testing.assert_array_equal(out[:, t], h)
    np.testing.assert_array_equal(h_n[0], h)


def test_unbatched_and_time_major_inputs_and_bias_false():
    torch.manual_seed(1)
    module = ResetBeforeGRU(3, 4, bias=False)
    assert not [n for n, _ in module.named_parameters() if n.startswith("bias")]
    x = torch.randn(5, 2, 3)  # (T, B, F)
    out, h_n = module(x)
    out1, h1 = module(x[:, 1])  # unbatched (T, F)
    torch.testing.assert_close(out1, out[:, 1])
    torch.testing.assert_close(h1, h_n[:, 1])


def test_zoo_gru_option_and_fast_backend_refusal():
    model = build_model("bigru", 3, 2, hidden_size=4, reset_after=False, merge="sum")
    assert isinstance(model.encoder.rnn, ResetBeforeGRU)
    x, lengths = torch.randn(2, 5, 3), torch.tensor([5, 3])
    assert model(x, lengths).shape == (2, 2)
    from seqlab.errors import SeqlabError

    with pytest.raises(SeqlabError, match="model.reset_after.*backend torch"):
        build_model("gru", 3, 2, hidden_size=4, reset_after=False, backend="fast")


def test_onnx_export_writes_linear_before_reset_0_gru_nodes_that_match_eager(tmp_path):
    """ONNX Runtime's GRU (linear_before_reset=0) against the eager module: the exporter runs several
    batch sizes and lengths, variable within a batch, and fails above its tolerance."""
    import onnx

    from seqlab.errors import SeqlabError
    from seqlab.export import export_run
    from test_export import make_run

    run = make_run(tmp_path / "run", "bigru", {"reset_after": False, "num_layers": 2, "hidden_size": 5})
    report = export_run(run, "onnx", tmp_path / "m.onnx")
    assert report.max_abs_diff <= 1e-4 and len(report.cases) >= 6 and "linear_before_reset=0" in report.note
    nodes = [n for n in onnx.load(str(tmp_path / "m.onnx")).graph.node if n.op_type == "GRU"]
    assert len(nodes) == 2  # one per layer, both directions in each
    for node in nodes:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attributes["linear_before_reset"] == 0 and attributes["direction"] == b"bidirectional"
    with pytest.raises(SeqlabError, match="--format torchscript: this GRU has reset_after: false"):
        export_run(run, "torchscript", tmp_path / "m.pt")
    with pytest.raises(SeqlabError, match="ncnn's GRU layer applies the reset gate after the product"):
        export_run(run, "ncnn", tmp_path / "m.param")


@pytest.mark.slow
def test_streaming_onnx_export_of_a_reset_before_gru_matches_the_whole_sequence_model(tmp_path):
    from seqlab.export import export_run
    from test_export import make_run

    stream = make_run(tmp_path / "stream", "gru", {"reset_after": False, "hidden_size": 5, "num_layers": 2})
    assert export_run(stream, "onnx", tmp_path / "s.onnx", streaming=True).max_abs_diff <= 1e-4
