"""Probes and measurements against independent computations."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gridseq import models, tasks
from gridseq.compare import measure, probes
from gridseq.data.contract import DatasetInfo, Split

INFO = DatasetInfo("toy", "sequence", (12, 3), 4, tuple("abcd"))


def _split(n=16, steps=12, lengths=None):
    g = torch.Generator().manual_seed(0)
    return Split(torch.randn(n, steps, 3, generator=g), torch.randint(0, 4, (n,), generator=g), lengths)


def test_gradient_flow_matches_a_hand_unrolled_elman_rnn():
    torch.manual_seed(0)
    model = models.create_for("rnn", INFO, hidden_size=6)
    split = _split()
    got = probes.gradient_flow(model, tasks.for_data(INFO, model), split)
    assert model.encoder.impl == "auto" and all(p.grad is None for p in model.parameters())  # left as it was

    # the same network unrolled by hand: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    rnn = model.encoder.rnn
    h, states = torch.zeros(16, 6), []
    for t in range(12):
        h = torch.tanh(split.x[:, t] @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h @ rnn.weight_hh_l0.T + rnn.bias_hh_l0)
        h.retain_grad()
        states.append(h)
    F.cross_entropy(model.head(h), split.y).backward()
    expected = [float(s.grad.norm(dim=1).mean()) for s in states]

    assert len(got["norms"]) == 12
    torch.testing.assert_close(torch.tensor(got["norms"]), torch.tensor(expected), rtol=1e-4, atol=1e-9)
    assert got["first_to_last"] == pytest.approx(expected[0] / expected[-1], rel=1e-4)


def test_gradient_flow_averages_only_valid_steps_and_skips_non_recurrent_models():
    torch.manual_seed(0)
    model = models.create_for("lstm", INFO, hidden_size=5, num_layers=2, bidirectional=True)
    lengths = torch.tensor([12] * 8 + [6] * 8)
    got = probes.gradient_flow(model, tasks.for_data(INFO, model), _split(lengths=lengths))
    assert got["layer"] == "layer1/forward" and len(got["norms"]) == 12 and all(v > 0 for v in got["norms"])
    cnn = models.create_for("cnn", INFO)
    assert probes.gradient_flow(cnn, tasks.for_data(INFO, cnn), _split()) is None


def test_receptive_field_agrees_with_the_gradient():
    tcn = models.create("tcn", input_size=3, num_classes=4, kernel_size=3, num_levels=3)
    assert probes.receptive_field(tcn) == tcn.config.receptive_field == 29
    seen = probes.input_steps_seen(tcn, _split(steps=20))  # 80 steps, the last output sees 29 of them
    assert seen == {"steps": 29, "of": 80, "all": False}

    cnn = models.create("cnn", input_shape=(40, 1), num_classes=2, channels=(4, 4), kernel_sizes=(5, 3), hidden=0)
    # conv 5 (+4), pool 2 (+1), conv 3 at stride 2 (+4), pool 2 (+2): 1 + 4 + 1 + 4 + 2
    assert probes.receptive_field(cnn) == 12
    # check one position of the feature map by perturbation (max pooling passes a gradient to one
    # element per window, so a gradient would undercount): exactly 12 input steps can change it
    cnn.eval()
    x = torch.randn(1, 1, 40)
    with torch.no_grad():
        base = cnn.features(x)[0, :, 4]
        moved = []
        for j in range(40):
            bumped = x.clone()
            bumped[0, 0, j] += 100.0
            moved.append(bool((cnn.features(bumped)[0, :, 4] != base).any()))
    touched = [j for j, m in enumerate(moved) if m]
    assert touched[-1] - touched[0] + 1 == 12
    assert probes.input_steps_seen(cnn, Split(torch.randn(4, 40, 1), torch.zeros(4, dtype=torch.int64)))["steps"] == 40

    rnn = models.create_for("gru", INFO, hidden_size=4)
    assert probes.receptive_field(rnn) is None
    assert probes.input_steps_seen(rnn, _split())["all"] is True


def test_padding_invariance_catches_a_model_that_reads_padding():
    class ReadsPadding(nn.Module):  # sums every step, padding included
        def forward(self, x, lengths=None):
            return x.sum(dim=1)

    split = _split()
    assert measure.padding_invariance(ReadsPadding(), split, variable_length=False)["invariant"] is False
    gru = models.create_for("gru", INFO, hidden_size=4)
    result = measure.padding_invariance(gru, split, variable_length=False)
    assert result["invariant"] is True and result["max_abs_diff"] < 1e-5
    assert measure.reads_whole_input(gru, split) is True
    mlp = models.create_for("mlp", INFO)
    assert measure.reads_whole_input(mlp, split) is False  # it cuts inputs to the 12 training steps


def test_memory_counts_saved_activations():
    mlp = nn.Sequential(nn.Linear(10, 1000), nn.ReLU(), nn.Linear(1000, 1))
    x = torch.randn(64, 10)
    got = measure.memory(mlp, lambda m: m(x).square().mean())
    # saved for backward: x (64x10), the first output/relu (64x1000, shared storage), the output (64x1)
    assert 64 * 1000 * 4 / 2**20 <= got["activations_mb"] <= 3 * 64 * 1000 * 4 / 2**20
    assert got["weights_mb"] == sum(p.numel() for p in mlp.parameters()) * 4 / 2**20
    assert got["train_step_mb"] == 4 * got["weights_mb"] + got["activations_mb"]


def test_speed_and_length_scaling_report_every_field():
    gru = models.create_for("gru", INFO, hidden_size=4)
    speed = measure.speed(gru, _split(), all_threads=1)
    assert speed["latency_ms_b1"] > 0 and speed["throughput_b256"] > 0 and speed["thread_scaling"]["threads"] == 1
    scaling = measure.length_scaling(gru, _split())
    assert scaling["lengths"] == [12, 24, 48] and len(scaling["latency_ms"]) == 3
