"""Video models on frame features: TimeDistributed, crnn, frame-cnn — one batched CNN call, padding,
frame order, streaming equivalence, config errors; slow: moving-digits accuracies."""

import pytest
import torch

from gridseq import models
from gridseq.errors import ConfigError, ShapeError
from gridseq.models.cnn import CNN
from gridseq.nn.time_distributed import TimeDistributed

pytestmark = pytest.mark.usefixtures("one_thread")
FRAME = (1, 12, 12)


def _video(b=3, t=7):
    return torch.randn(b, t, *FRAME)


def test_time_distributed_is_one_batched_call_equal_to_a_loop():
    cnn = CNN(CNN.Config(input_shape=FRAME, num_classes=5, channels=(4, 8))).eval()
    calls = []
    cnn.features.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    td = TimeDistributed(cnn, method="forward_features")
    x = _video()
    out = td(x)
    assert calls == [3 * 7] and out.shape == (3, 7, cnn.num_features)
    loop = torch.stack([cnn.forward_features(x[:, t]) for t in range(7)], dim=1)
    torch.testing.assert_close(out, loop)


def test_time_distributed_encodes_only_valid_frames():
    cnn = CNN(CNN.Config(input_shape=FRAME, num_classes=5, channels=(4,))).eval()
    seen = []
    cnn.features.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    out = TimeDistributed(cnn)(_video(), torch.tensor([7, 3, 1]))
    assert seen == [11]
    assert out[1, 3:].abs().sum() == 0 and out[2, 1:].abs().sum() == 0 and out[1, :3].abs().sum() > 0


def test_time_distributed_rejects_a_missing_method_and_flat_input():
    with pytest.raises(ShapeError, match="no method 'encode'"):
        TimeDistributed(torch.nn.Linear(2, 2), method="encode")
    with pytest.raises(ShapeError, match=r"\(B, T, \.\.\.\)"):
        TimeDistributed(torch.nn.Linear(2, 2))(torch.randn(4, 2))


@pytest.mark.parametrize("variant", [
    {}, {"pooling": "mean", "spatial": "avg"}, {"pooling": "max", "mode": "lstm", "num_layers": 2},
    {"spatial": "both", "dropout": 0.3},
    {"per_step": True, "mode": "rnn"}, {"feature_dim": 0},
])
def test_crnn_stream_equals_forward_at_every_frame(variant):
    model = models.create("crnn", input_shape=FRAME, num_classes=6, channels=(4, 8), hidden_size=16, **variant).eval()
    x = _video()
    stream = model.stream(batch_size=3)
    with torch.no_grad():
        full = model(x)
        for t in range(x.shape[1]):
            expected = full[:, t] if variant.get("per_step") else model(x[:, : t + 1])
            torch.testing.assert_close(stream.step(x[:, t]), expected, atol=1e-5, rtol=1e-5)


def test_crnn_stream_uses_the_running_statistics_and_follows_new_weights():
    """The stream's frame encoder folds BatchNorm into the convolutions: with trained statistics it still
    equals forward, and weights loaded while a stream is open are the ones its next steps use."""
    def trained(seed):
        torch.manual_seed(seed)
        m = models.create("crnn", input_shape=FRAME, num_classes=6, channels=(4, 8), hidden_size=16)
        for _ in range(3):
            m(torch.randn(4, 5, *FRAME) * 2 + 1)  # training mode: the running statistics move
        return m.eval()

    model, other = trained(0), trained(1)
    x = _video()
    stream = model.stream(batch_size=3)
    with torch.no_grad():
        torch.testing.assert_close(stream.run(x)[:, -1], model(x), atol=1e-5, rtol=1e-5)
        model.load_state_dict(other.state_dict())
        stream.reset()
        torch.testing.assert_close(stream.run(x)[:, -1], other(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("per_step", [False, True])
def test_frame_cnn_stream_equals_forward(per_step):
    model = models.create("frame-cnn", input_shape=FRAME, num_classes=6, channels=(4,), per_step=per_step)
    model(torch.randn(4, 5, *FRAME) * 2 + 1)  # training mode: running statistics away from 0 and 1
    model.eval()
    x = _video()
    with torch.no_grad():
        ys = model.stream(batch_size=3).run(x)
        expected = model(x) if per_step else torch.stack([model(x[:, : t + 1]) for t in range(7)], 1)
    torch.testing.assert_close(ys, expected, atol=1e-5, rtol=1e-5)


def test_frame_cnn_is_blind_to_frame_order_and_crnn_is_not():
    x = _video()
    reverse = x.flip(1)
    frame_cnn = models.create("frame-cnn", input_shape=FRAME, num_classes=6).eval()
    crnn = models.create("crnn", input_shape=FRAME, num_classes=6).eval()
    with torch.no_grad():
        torch.testing.assert_close(frame_cnn(x), frame_cnn(reverse), atol=1e-5, rtol=1e-5)
        assert (crnn(x) - crnn(reverse)).abs().max() > 1e-3


def test_crnn_reuses_the_cnn_encoder_without_its_head():
    model = models.create("crnn", input_shape=FRAME, num_classes=6, channels=(4, 8), feature_dim=32)
    assert isinstance(model.frame_encoder.cnn, CNN)
    assert isinstance(model.frame_encoder.cnn.head, torch.nn.Identity)
    assert model.rnn.input_size == 32 and model.rnn.mode == "gru"


def test_bidirectional_crnn_classifies_offline_but_refuses_to_stream():
    model = models.create("crnn", input_shape=FRAME, num_classes=6, bidirectional=True)
    assert model(_video(), torch.tensor([7, 4, 2])).shape == (3, 6)
    with pytest.raises(ConfigError, match="bidirectional"):
        model.stream()


def test_crnn_accepts_a_video_infos_input_shape():
    model = models.create("crnn", input_shape=(10, *FRAME), num_classes=6)
    assert model.config.input_shape == FRAME


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"spatial": "mean"}, "spatial must be one of 'flatten', 'avg', 'both'"),
    ({"input_shape": (12, 12)}, r"input_shape must be the \(C, H, W\) of one frame"),
    ({"pooling": "first"}, "pooling must be one of"),
    ({"channels": (4, 8), "kernel_sizes": (3, 3, 3)}, "kernel_sizes must have one entry per conv block"),
    ({"feature_dim": -1}, "feature_dim must be an int >= 0"),
])
def test_crnn_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        models.create("crnn", **{"input_shape": FRAME, "num_classes": 6, **kwargs})


def test_wrong_frame_size_and_layout_are_shape_errors():
    model = models.create("crnn", input_shape=FRAME, num_classes=6).eval()
    with pytest.raises(ShapeError, match="takes 12x12 frames"):
        model(torch.randn(2, 5, 1, 16, 16))
    with pytest.raises(ShapeError, match=r"permute\(0, 1, 4, 2, 3\)"):
        model(torch.randn(2, 5, 12, 12, 1))
    with pytest.raises(ShapeError, match="takes 12x12 frames"):
        model.stream().step(torch.randn(1, 1, 16, 16))


# ---------------------------------------------------------------- training (slow)


def _val_factors(model, ds):
    from gridseq.data.builtin.moving_digits import factor_accuracy

    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(ds.val.x[i : i + 250]).argmax(-1) for i in range(0, len(ds.val), 250)])
    return {"accuracy": float((pred == ds.val.y).double().mean()), **factor_accuracy(pred, ds.val.y)}


@pytest.mark.slow
def test_crnn_learns_digit_and_direction_frame_cnn_only_the_digit():
    """Short budgets with the moving-digits defaults (full runs: docs/vision.md#video). The CRNN reads
    the direction from the frame order; the single-frame CNN learns the digit but stays near chance
    (0.25) on the direction."""
    from gridseq import defaults
    from gridseq.datasets import load
    from gridseq.train.trainer import fit

    ds = load("moving-digits", seed=0)
    settings = {"train": {**defaults.lookup("moving-digits", "crnn")["train"], "epochs": 3}}
    torch.manual_seed(0)
    crnn = models.create_for("crnn", ds.info, **defaults.lookup("moving-digits", "crnn")["model"])
    fit(crnn, ds, seed=0, progress=False, **settings["train"])
    got = _val_factors(crnn, ds)
    assert got["direction_accuracy"] > 0.95 and got["digit_accuracy"] > 0.8, got
    torch.manual_seed(0)
    frame_cnn = models.create_for("frame-cnn", ds.info, **defaults.lookup("moving-digits", "frame-cnn")["model"])
    fit(frame_cnn, ds, seed=0, progress=False, **settings["train"])
    got = _val_factors(frame_cnn, ds)
    assert got["digit_accuracy"] > 0.8 and got["direction_accuracy"] < 0.35, got


def test_predictor_takes_npy_clips_frame_folders_and_arrays(tmp_path):
    import numpy as np
    from PIL import Image

    from gridseq.data.builtin.moving_digits import moving_digits
    from gridseq.predict import Predictor

    info = moving_digits(0, "video", frames=9, size=17).info
    model = models.create_for("crnn", info, channels=(4,), hidden_size=8)
    predictor = Predictor(model, info)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.integers(0, 256, (9, 17, 17), dtype=np.uint8))
    (tmp_path / "frames").mkdir()
    for t in range(6):  # a shorter clip: padded in the batch, with lengths
        Image.fromarray(rng.integers(0, 256, (17, 17), dtype=np.uint8)).save(tmp_path / "frames" / f"{t}.png")
    out = predictor.predict([str(tmp_path / "a.npy"), str(tmp_path / "frames"), rng.random((4, 17, 17)).tolist()], top_k=3)
    assert len(out["predictions"]) == 3 and all(p in info.class_names for p in out["predictions"])
    assert all(len(p) == 3 for p in out["probabilities"])
    batch = predictor.prepare([str(tmp_path / "a.npy"), str(tmp_path / "frames")])
    assert batch.x.shape == (2, 9, 1, 17, 17) and batch.lengths.tolist() == [9, 6]
    assert predictor.describe()["input"]["size"] == [17, 17]
