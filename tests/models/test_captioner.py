"""The captioner: shapes of teacher-forced and decoded outputs, attention over the feature map, the
agreement of forward / greedy / beam-1 decoding, config and layout errors, and that it can learn."""

import pytest
import torch

from gridseq import models
from gridseq.data.contract import DatasetInfo
from gridseq.data.vocab import EOS, PAD
from gridseq.errors import ConfigError, ShapeError
from gridseq.models.captioner import Captioner, CaptionerConfig

pytestmark = pytest.mark.usefixtures("one_thread")

V = 12


def make(**kw):
    return Captioner(CaptionerConfig(**{"input_shape": (3, 16, 16), "num_classes": V, "hidden_size": 24,
                                        "channels": (8, 16), **kw}))


def test_shapes_of_teacher_forcing_greedy_and_beam():
    model = make().eval()
    x = torch.randn(4, 3, 16, 16)
    target = torch.tensor([[5, 6, 7, EOS], [8, EOS, PAD, PAD], [4, 4, EOS, PAD], [9, 10, 11, EOS]])
    assert model(x, target=target).shape == (4, 4, V)
    assert model.feature_grid == (4, 4)  # 16 → 8 → 4
    greedy = model(x)
    assert greedy.shape[0] == 4 and greedy.shape[1] <= model.config.max_length and greedy.shape[2] == V
    ids, attention = model.generate(x, beam=3, max_length=6, return_attention=True)
    assert ids.dtype == torch.int64 and ids.shape[0] == 4 and ids.shape[1] <= 6
    assert attention.shape == (4, ids.shape[1], 16)  # one weight per feature-map position
    live = ids.ne(PAD)  # steps up to and including each caption's <eos>
    torch.testing.assert_close(attention.sum(-1)[live], torch.ones(int(live.sum())))
    assert attention.view(4, ids.shape[1], *model.feature_grid).shape[2:] == (4, 4)


def test_greedy_generate_beam_one_and_forward_agree():
    model = make(mode="lstm", attention="luong").eval()
    x = torch.randn(3, 3, 16, 16)
    ids = model.generate(x, max_length=7)
    assert torch.equal(ids, model.generate(x, beam=1, max_length=7))
    logits = model.decoder.greedy(model.encode(x).state, model.encode(x).memory, max_length=7).logits
    first = logits[:, 0].clone()
    first[:, [PAD, 2]] = float("-inf")  # <pad> and <bos> are never generated
    assert torch.equal(first.argmax(-1), ids[:, 0])
    # teacher forcing on the greedy output reproduces the greedy logits (same inputs at every step)
    target = torch.where(ids.eq(PAD), torch.full_like(ids, PAD), ids)
    forced = model(x, target=target)
    valid = ids.ne(PAD)
    torch.testing.assert_close(forced[valid], logits[:, : ids.shape[1]][valid], atol=1e-5, rtol=1e-4)


def test_beam_search_finds_a_caption_at_least_as_likely_as_greedy():
    torch.manual_seed(3)
    model = make().eval()
    x = torch.randn(6, 3, 16, 16)
    enc = model.encode(x)
    greedy = model.decoder.greedy(enc.state, enc.memory, max_length=5)
    beam = model.decoder.beam_search(enc.state, enc.memory, beam=4, max_length=5)
    assert (beam.scores >= greedy.scores - 1e-5).all()


def test_without_attention_the_vector_is_the_only_condition():
    model = make(attention="none").eval()  # no memory, so no position embedding either
    assert model.decoder.attention is None and model.positions is None
    ids, attention = model.generate(torch.randn(2, 3, 16, 16), max_length=4, return_attention=True)
    assert attention is None and ids.shape[0] == 2
    model.train()
    model(torch.randn(2, 3, 16, 16), target=torch.tensor([[5, EOS], [6, EOS]])).sum().backward()
    assert all(p.grad is not None for p in model.parameters())  # nothing unused (DDP would refuse it)


def test_position_embedding_changes_the_memory_by_position():
    model = make().eval()
    x = torch.zeros(1, 3, 16, 16)
    with_pos = model.encode(x).memory  # (1, S, C')
    positions = model.positions.data.clone()  # (S, C')
    model.positions.data.zero_()
    torch.testing.assert_close(with_pos - model.encode(x).memory, positions.unsqueeze(0))
    assert positions.abs().sum(1).min() > 0  # every position gets its own offset


@pytest.mark.parametrize(("kw", "fragment"), [
    ({"input_shape": (16, 3)}, "(C, H, W)"),
    ({"num_classes": 3}, "int >= 4"),
    ({"attention": "dot", "hidden_size": 24}, "as wide as the decoder state"),
    ({"kernel_sizes": (3, 3, 3)}, "one entry per conv block"),
    ({"teacher_forcing": 1.5}, "teacher_forcing"),
    ({"attention": "cosine"}, "attention"),
])
def test_config_errors_name_the_problem(kw, fragment):
    with pytest.raises(ConfigError, match=None) as e:
        make(**kw)
    assert fragment in str(e.value)


def test_dot_attention_when_memory_matches_the_state():
    model = make(attention="dot", hidden_size=16).eval()  # channels[-1] = 16 = hidden_size
    assert model.generate(torch.randn(2, 3, 16, 16), max_length=3).shape[0] == 2


def test_layout_errors_are_shape_errors():
    model = make().eval()
    with pytest.raises(ShapeError, match="channels-last"):
        model(torch.randn(2, 16, 16, 3))
    with pytest.raises(ShapeError, match="one caption per image"):
        model(torch.randn(2, 3, 16, 16), target=torch.tensor([[5, EOS]]))
    with pytest.raises(ShapeError):
        model(torch.randn(2, 3, 16, 16), target=torch.tensor([[5, V + 3], [5, EOS]]))  # beyond the vocabulary


def test_create_for_a_caption_dataset_and_registry_entry():
    info = DatasetInfo(name="scenes", kind="image", input_shape=(3, 32, 32), num_classes=20, class_names=(),
                       task="caption")
    model = models.create_for("captioner", info)
    assert model.topology == "one-to-many" and model.config.num_classes == 20 and model.feature_grid == (4, 4)
    assert models.entry("captioner").kinds == ("image",)


def test_learns_to_caption_a_few_images():
    """Overfit 8 images with 2-3 word captions: teacher-forced training makes free decoding exact."""
    torch.manual_seed(0)
    x = torch.randn(8, 3, 16, 16)
    target = torch.tensor([[4 + i % 5, 4 + (i * 3) % 7, EOS] if i % 2 else [4 + i % 8, EOS, PAD] for i in range(8)])
    model = make(channels=(8, 16), hidden_size=32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        logits = model(x, target=target)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD)
        loss.backward()
        opt.step()
    model.eval()
    ids = model.generate(x, max_length=5)
    got = torch.nn.functional.pad(ids, (0, max(0, 3 - ids.shape[1])))[:, :3]
    assert torch.equal(got, target), (loss.item(), ids)
