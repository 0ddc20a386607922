"""scenes-captions: the captions describe the pictures (checked from the pixels), the placement rules
hold, the vocabulary is fixed, and the splits follow gridseq's seed rule."""

import numpy as np
import pytest
import torch

from gridseq import datasets
from gridseq.data.builtin import scenes_captions as sc
from gridseq.data.vocab import EOS, PAD, Vocab

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small():
    return sc.scenes_captions(0, "image", size=60)


def _centres(image: np.ndarray) -> dict[str, tuple[float, float]]:
    """{colour: (x, y)} of each shape, from the pixels whose colour is close to a palette colour."""
    out = {}
    for name, rgb in sc.COLOURS.items():
        close = np.abs(image - np.asarray(rgb)[:, None, None]).max(axis=0) < 0.12  # (H, W)
        if close.sum() >= 6:  # a small triangle covers ~18 pixels; stray noise matches a few at most
            ys, xs = np.nonzero(close)
            out[name] = (xs.mean() + 0.5, ys.mean() + 0.5)
    return out


def test_relation_and_caption_order():
    assert sc.relation((0, 0), (10, 3)) == "left of" and sc.relation((10, 3), (0, 0)) == "right of"
    assert sc.relation((5, 2), (6, 20)) == "above" and sc.relation((6, 20), (5, 2)) == "below"
    shapes = [dict(colour="white", kind="triangle", size="small", x=5, y=28),
              dict(colour="red", kind="square", size="big", x=5, y=5),
              dict(colour="blue", kind="circle", size="small", x=25, y=5)]
    # colour order red < blue < white, whatever order the shapes come in
    assert sc.caption(shapes) == "a big red square left of a small blue circle above a small white triangle"


def test_captions_match_the_pixels():
    """Recompute every caption's colours, count and relations from the rendered image."""
    images, captions = sc.scenes(150, np.random.default_rng(5))
    assert images.shape == (150, 3, 32, 32) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    counts = set()
    for image, text in zip(images, captions):
        centres = _centres(image)
        named = [w for w in text.split() if w in sc.COLOURS]
        counts.add(len(named))
        assert list(centres) == named, (text, sorted(centres))  # the same colours, in palette order
        relations = [w for w in text.replace("left of", "left").replace("right of", "right").split()
                     if w in ("left", "right", "above", "below")]
        for (a, b), word in zip(zip(named, named[1:]), relations):
            assert sc.relation(centres[a], centres[b]).split()[0] == word, text
    assert counts == {1, 2, 3}


def test_placement_leaves_no_borderline_relation():
    rng = np.random.default_rng(0)
    placed = 0
    for _ in range(300):
        shapes = sc._place(rng, 3)
        if shapes is None:
            continue
        placed += 1
        for a, b in zip(shapes, shapes[1:]):  # placed in caption order
            dx, dy = abs(a["x"] - b["x"]), abs(a["y"] - b["y"])
            assert max(dx, dy) >= sc.DOMINANCE * min(dx, dy)
            assert dx >= a["r"] + b["r"] + sc.GAP or dy >= a["r"] + b["r"] + sc.GAP
    assert placed > 100


def test_dataset_layout_vocabulary_and_targets(small):
    info = small.info
    assert info.kind == "image" and info.task == "caption" and info.input_shape == (3, 32, 32)
    assert (len(small.train), len(small.val), len(small.test)) == (60, 1000, 1000)
    vocab = Vocab.from_json(info.preprocessing["target_vocab"])
    assert len(vocab) == info.num_classes == 20 and vocab.level == "word"
    for split in small.splits().values():
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64 and split.lengths is None
        assert ((split.y == EOS).sum(1) == 1).all()
        decoded = [vocab.decode(row) for row in split.y.tolist()]
        assert decoded == split.targets
        after_eos = torch.cumsum(split.y == EOS, 1) - (split.y == EOS).long()  # 1 after a caption's <eos>
        assert ((split.y == PAD) == after_eos.bool()).all()  # padding exactly after <eos>, none inside
    x = small.train.x
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.1  # normalised with training statistics


def test_catalog_entry_and_seed_rule(small):
    record = next(r for r in datasets.describe() if r["name"] == "scenes-captions")
    assert record["kind"] == "image" and record["num_classes"] == small.info.num_classes
    other = sc.scenes_captions(1, "image", size=60)
    assert other.test.targets == small.test.targets  # test: constant (its normalisation follows the training split)
    assert np.array_equal(sc._raw(1, (60, 1000, 1000))["test"][0], sc._raw(0, (60, 1000, 1000))["test"][0])
    assert not torch.equal(other.val.x, small.val.x)  # val follows the seed
    again = datasets.load("scenes-captions", seed=0, size=60)
    assert torch.equal(again.train.x, small.train.x) and again.train.targets == small.train.targets
