"""`gridseq inspect` and `gridseq.inspect`: the arrays are the model's own (conv outputs, recurrent states,
decoder steps), and the PNGs of tiny runs trained here are valid images of exactly the documented size."""

import json
import random
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gridseq import inspect as gi
from gridseq.errors import ConfigError
from gridseq.inspect import plots
from gridseq.models.cnn import CNN
from gridseq.models.rnn import RNNConfig, RNNModel
from gridseq.models.seq2seq import Seq2Seq, Seq2SeqConfig
from tests.test_cli import assert_one_line_error, run

pytestmark = pytest.mark.usefixtures("one_thread")


def _size(path):
    with Image.open(path) as img:
        img.verify()  # a complete, valid PNG
    with Image.open(path) as img:
        return img.format, img.size


def _train(capsys, run_dir, *argv):
    code, _, err = run(capsys, "train", *argv, "--epochs", 1, "--threads", 1, "--run-dir", run_dir, "--no-progress")
    assert code == 0, err
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny runs, trained once for the module: a 2-block CNN and a 2-layer bidirectional LSTM on digits, a
    seq2seq on a reversal TSV, an MLP (nothing to inspect)."""
    root = tmp_path_factory.mktemp("inspect")
    capsys = _NoCapture()
    rng = random.Random(0)
    with open(root / "reverse.tsv", "w", encoding="utf-8") as f:
        for _ in range(120):
            word = "".join(rng.choice("abcde") for _ in range(rng.randint(2, 5)))
            f.write(f"{word}\t{word[::-1]}\n")
    return {
        "cnn": _train(capsys, root / "cnn", "digits", "--model", "cnn", "--model.channels=[4,8]"),
        "lstm": _train(capsys, root / "lstm", "digits", "--model", "lstm", "--hidden-size", 8, "--num-layers", 2,
                       "--bidirectional"),
        "seq2seq": _train(capsys, root / "s2s", root / "reverse.tsv", "--task", "seq2seq", "--model", "seq2seq",
                          "--hidden-size", 16, "--model.max_length=8"),
        "mlp": _train(capsys, root / "mlp", "digits", "--model", "mlp"),
        "root": root,
    }


class _NoCapture:
    """`run` reads capsys after each call; a module fixture has no capsys, so discard output instead."""

    def readouterr(self):
        return "", ""


# --- the PNGs of real runs ------------------------------------------------------------------------

def test_cnn_run_writes_filters_and_feature_maps_of_the_documented_size(capsys, runs, tmp_path):
    code, out, err = run(capsys, "inspect", runs["cnn"], "--out", tmp_path, "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["item"] == "test[0]" and len(record["edge_scores"]) == 4
    assert [p.split("/")[-1] for p in record["files"]] == ["filters.png", "feature_maps.png"]
    # 4 filters: one row of 4 cells of 96 px, at least 384 wide, under a 48 px title band
    assert _size(tmp_path / "filters.png") == ("PNG", (384, 96 + 48))
    # the input then 4 maps: 5 cells in a row
    assert _size(tmp_path / "feature_maps.png") == ("PNG", (5 * 96, 96 + 48))


def test_lstm_run_traces_every_layer_and_direction(capsys, runs):
    code, out, err = run(capsys, "inspect", runs["lstm"], "--index", 3)
    assert code == 0, err
    path = runs["lstm"] / "inspect" / "rnn_trace.png"  # the default --out
    assert str(path) in out and "test[3]" in out
    # 2 layers x 2 directions = 4 columns of 512 px; 6 LSTM rows (i f g o h c) of 128 px + 64 head + 32 foot
    assert _size(path) == ("PNG", (4 * 512, 64 + 6 * 128 + 32))
    assert not (runs["lstm"] / "inspect" / "filters.png").exists()


def test_seq2seq_run_writes_encoder_trace_and_attention(capsys, runs, tmp_path):
    code, out, err = run(capsys, "inspect", runs["seq2seq"], "--input", "abcd", "--out", tmp_path, "--json")
    assert code == 0, err
    assert json.loads(out)["item"] == "'abcd'"
    model, _ = __import__("gridseq").train.open_run(runs["seq2seq"])
    ids = model.generate(torch.tensor([_source_ids(runs["seq2seq"], "abcd")]))[0].tolist()
    steps = ids.index(3) + 1 if 3 in ids else len(ids)  # <eos> = 3 ends the output
    # (U, S) = (steps, 4 characters): max(448, 160 + 24 S) x max(320, 128 + 24 U)
    assert _size(tmp_path / "attention.png") == ("PNG", (max(448, 160 + 24 * 4), max(320, 128 + 24 * steps)))
    # the bidirectional LSTM encoder: 2 columns (forward, backward) of i f g o h c, at least 768 wide
    assert _size(tmp_path / "rnn_trace.png") == ("PNG", (1024, 64 + 6 * 128 + 32))
    code, _, err = run(capsys, "inspect", runs["seq2seq"], "--layer", "decoder.rnn", "--out", tmp_path / "dec")
    assert code == 0, err
    # the one-way decoder: one column, widened to 768; a row per LSTM gate and state
    assert _size(tmp_path / "dec" / "rnn_trace.png") == ("PNG", (768, 64 + 6 * 128 + 32))


def _source_ids(run_dir, text):
    from gridseq.data.vocab import Vocab

    config = json.loads((run_dir / "config.json").read_text())
    return Vocab.from_json(config["data"]["info"]["preprocessing"]["vocab"]).encode(text)


def test_image_file_input(capsys, runs, tmp_path):
    Image.fromarray((np.eye(8) * 255).astype(np.uint8)).save(tmp_path / "diag.png")
    code, out, err = run(capsys, "inspect", runs["cnn"], "--input", tmp_path / "diag.png", "--out", tmp_path / "o")
    assert code == 0, err
    assert "diag.png" in out and _size(tmp_path / "o" / "feature_maps.png")[1] == (480, 144)


@pytest.mark.parametrize("argv, fragments", [
    (["--index", "100000"], ["out of range", "pass an index from 0 to"]),
    (["--input", "no/such.png"], ["is not a file"]),
    (["--layer", "encodr"], ["no recurrent layer 'encodr'", "Did you mean 'encoder'?"]),
])
def test_errors_are_one_line(capsys, runs, argv, fragments):
    assert_one_line_error(*run(capsys, "inspect", runs["lstm"], *argv)[::2], *fragments)


def test_help(capsys):
    code, out, _ = run(capsys, "inspect", "--help")
    assert code == 0 and out.startswith("usage: gridseq inspect") and "--layer" in out


def test_a_model_without_conv_recurrence_or_attention_has_nothing_to_inspect(capsys, runs):
    assert_one_line_error(*run(capsys, "inspect", runs["mlp"])[::2], "nothing to inspect")


@pytest.mark.slow  # not training to accuracy, but generating scenes-captions' 2,000 val/test scenes takes ~20 s
@pytest.mark.skipif("captioner" not in __import__("gridseq").models.names(), reason="captioner not registered yet")
def test_captioner_run_writes_attention_over_the_image(capsys, tmp_path):
    run_dir = _train(capsys, tmp_path / "cap", "scenes-captions", "--model", "captioner", "--hidden-size", 16,
                     "--data.size=40", "--model.max_length=6")
    code, _, err = run(capsys, "inspect", run_dir, "--out", tmp_path / "o")
    assert code == 0, err
    from gridseq import datasets, train

    model, _ = train.open_run(run_dir)
    ids = model.generate(datasets.load("scenes-captions", seed=0, size=40).test.x[:1])[0].tolist()
    cells = 1 + min(ids.index(3) + 1 if 3 in ids else len(ids), 23)  # the image, then one cell per word
    cols = min(6, cells)
    assert _size(tmp_path / "o" / "attention.png") == ("PNG", (max(384, 160 * cols), 160 * -(-cells // cols) + 48))
    assert {p.name for p in (tmp_path / "o").iterdir()} >= {"filters.png", "feature_maps.png", "rnn_trace.png"}


# --- the arrays are the model's own ----------------------------------------------------------------

def test_captioner_arrays_cover_encoder_decoder_and_attention_grid():
    from gridseq.inspect.run import _grid
    from gridseq.models.captioner import Captioner, CaptionerConfig

    m = Captioner(CaptionerConfig(input_shape=(3, 16, 16), num_classes=9, channels=(4, 8), hidden_size=6, max_length=4)).eval()
    x = torch.rand(1, 3, 16, 16)
    assert gi.conv_filters(m).shape == (4, 3, 3, 3) and gi.feature_maps(m, x).shape == (1, 4, 16, 16)
    ids, w = gi.attention(m, x)
    assert w.shape == (1, ids.shape[1], 16)  # 16 -> 8 -> 4: a 4x4 grid of positions
    assert _grid(m, w[0]).shape == (ids.shape[1], 4, 4)
    trace = gi.rnn_trace(m, x)  # the first recurrent layer is the decoder's: one step per output word
    assert trace["layer0/forward"]["h"].shape == (1, ids.shape[1], 6)


def test_feature_maps_are_the_first_convolution_of_the_input():
    m = CNN(CNN.Config(input_shape=(1, 8, 8), num_classes=10, channels=(4, 8))).train()
    x = torch.rand(2, 1, 8, 8)
    conv = m.features[0]
    conv_mod = next(mod for mod in conv.modules() if isinstance(mod, torch.nn.Conv2d))
    expected = F.conv2d(x, conv_mod.weight, conv_mod.bias, padding=conv_mod.padding)
    np.testing.assert_allclose(gi.feature_maps(m, x), expected.detach().numpy(), atol=1e-5)
    np.testing.assert_array_equal(gi.conv_filters(m), conv_mod.weight.detach().numpy())
    assert m.training  # put back as it was


def test_trace_states_are_the_layer_outputs_on_a_padded_batch():
    m = RNNModel(RNNConfig(num_classes=3, input_size=4, hidden_size=5, mode="gru", num_layers=2, bidirectional=True))
    x, lengths = torch.randn(3, 7, 4), torch.tensor([7, 4, 2])
    trace = gi.rnn_trace(m, x, lengths)
    assert sorted(trace) == ["layer0/backward", "layer0/forward", "layer1/backward", "layer1/forward"]
    with torch.no_grad():
        outputs, _ = m.encoder(x, lengths)  # (B, T, 2H), the fused path
    np.testing.assert_allclose(trace["layer1/forward"]["h"], outputs[..., :5].numpy(), atol=1e-5)
    np.testing.assert_allclose(trace["layer1/backward"]["h"], outputs[..., 5:].numpy(), atol=1e-5)
    assert np.all(trace["layer0/forward"]["z"][2, 2:] == 0)  # padded steps


def test_decoder_trace_follows_greedy_decoding_step_by_step():
    torch.manual_seed(1)
    m = Seq2Seq(Seq2SeqConfig(vocab_size=12, num_classes=9, hidden_size=6, mode="lstm", max_length=5)).eval()
    x = torch.randint(4, 12, (1, 6))
    trace = gi.rnn_trace(m, x, layer="decoder.rnn")["layer0/forward"]
    ids = m.generate(x)[0]
    # replay the decoder by hand: the state after step t is the traced h, c at t
    enc = m.encode(x)
    memory = m.decoder.prepare(enc.memory, enc.mask)
    state, token = enc.state, torch.tensor([2])  # <bos>
    for t in range(len(ids)):
        _, state, _ = m.decoder.step(token, state, memory)
        np.testing.assert_allclose(trace["h"][0, t], state[0][-1, 0].detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(trace["c"][0, t], state[1][-1, 0].detach().numpy(), atol=1e-5)
        token = ids[t : t + 1]
    assert trace["h"].shape == (1, len(ids), 6)


def test_attention_rows_sum_to_one_over_the_source():
    m = Seq2Seq(Seq2SeqConfig(vocab_size=12, num_classes=9, hidden_size=6, max_length=5)).eval()
    x, lengths = torch.randint(4, 12, (2, 6)), torch.tensor([6, 3])
    ids, w = gi.attention(m, x, lengths)
    assert w.shape[:2] == ids.shape and w.shape[2] == 6
    np.testing.assert_allclose(w[1, 0].sum(), 1.0, atol=1e-5)
    assert np.all(w[1, :, 3:] == 0)  # padded source positions get no weight
    with pytest.raises(ConfigError, match="without attention"):
        gi.attention(Seq2Seq(Seq2SeqConfig(vocab_size=12, num_classes=9, hidden_size=6, attention="none")), x)


def test_edge_scores():
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float)
    filters = np.stack([sobel, sobel.T, np.ones((3, 3)), np.eye(3) - np.eye(3)[::-1]])[:, None]
    scores = gi.edge_scores(filters)
    assert scores[0] > 0.95 and scores[1] > 0.95  # vertical and horizontal edges
    assert scores[2] == 0.0  # a constant filter has no edge
    assert scores[3] < 0.5  # a cross is not an edge
    rng = np.random.default_rng(0)
    assert 0.40 < np.mean(gi.edge_scores(rng.normal(size=(2000, 1, 3, 3)))) < 0.52  # random filters
    assert np.isnan(gi.edge_scores(np.ones((2, 3, 1, 1)))).all()  # 1x1 kernels have no edges
    assert gi.edge_scores(np.array([[[-1.0, 0.0, 1.0]]]))[0] > 0.99  # 1D: an antisymmetric step


def test_no_conv_no_recurrence_errors():
    m = RNNModel(RNNConfig(num_classes=3, input_size=4, hidden_size=5))
    with pytest.raises(ConfigError, match="no convolutional layer"):
        gi.conv_filters(m)
    with pytest.raises(ConfigError, match="no recurrent layer 'nope'"):
        gi.rnn_trace(m, torch.randn(1, 3, 4), layer="nope")


# --- plotting ----------------------------------------------------------------------------------------

def test_plot_sizes_follow_the_documented_formulas(tmp_path):
    assert _size(gi.plot_filters(np.random.randn(70, 3, 5, 5), tmp_path / "f.png"))[1] == (8 * 96, 8 * 96 + 48)  # 64 shown
    assert _size(gi.plot_filters(np.random.randn(6, 2, 7), tmp_path / "f1.png"))[1] == (6 * 96, 96 + 48)
    assert _size(gi.plot_feature_maps(np.random.randn(16, 40), tmp_path / "m1.png", image=np.random.randn(40, 1)))[1] == (1024, 528)
    assert _size(gi.plot_attention(np.full((50, 60), 0.1), tmp_path / "a.png"))[1] == (160 + 24 * 48, 128 + 24 * 48)
    assert _size(gi.plot_image_attention(np.random.rand(3, 16, 16), np.random.rand(7, 4, 4), tmp_path / "i.png",
                                         words=list("abcdefg")))[1] == (6 * 160, 2 * 160 + 48)
    trace = {"layer0/forward": {"pre": np.random.randn(9, 4), "h": np.random.randn(9, 4)}}
    assert _size(gi.plot_rnn_trace(trace, tmp_path / "t.png", steps=list("abcdefghi")))[1] == (768, 64 + 2 * 128 + 32)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_missing_matplotlib_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'gridseq\[plot\]'"):
        plots.plot_filters(np.zeros((2, 1, 3, 3)), tmp_path / "f.png")
    assert not (tmp_path / "f.png").exists()
