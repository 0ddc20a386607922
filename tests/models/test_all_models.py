"""One harness for every registered model (Keras `run_layer_test`, timm `test_models`): registering a
model is enough to have it built for each kind of data it accepts and checked for output shape,
finite outputs and gradients, eval determinism, independence from batch and padding, save/load
and layout errors.

A case is (model name, sample dataset, variant). Variants are keyed by config field names, so a
family that has the field (e.g. `per_step`, `head`, `bidirectional`) is also checked in that form.
"""

import dataclasses
import json

import pytest
import torch

import gridseq
from gridseq import models
from gridseq.data.contract import KINDS, DatasetInfo
from gridseq.errors import ShapeError

B = 3
TOPOLOGIES = ("one-to-one", "many-to-one", "many-to-many", "encoder-decoder", "one-to-many", "generative")


pytestmark = pytest.mark.usefixtures("one_thread")


def _info(name, kind, shape, variable_length=False, vocab_size=None):
    k = 4
    return DatasetInfo(
        name=name, kind=kind, input_shape=shape, num_classes=k, class_names=tuple(map(str, range(k))),
        variable_length=variable_length, vocab_size=vocab_size,
    )


SAMPLES = [
    _info("gray8", "image", (1, 8, 8)),
    _info("rgb16", "image", (3, 16, 16)),
    _info("seq12", "sequence", (12, 3), variable_length=True),
    _info("tok12", "tokens", (12,), variable_length=True, vocab_size=20),
    _info("series16", "series", (16, 1)),
    _info("video6", "video", (6, 1, 8, 8), variable_length=True),
    # CTC transcription (crnn-ctc): 24-high lines of any width; used by models with output_lengths only
    dataclasses.replace(_info("lines24", "sequence", (29, 24), variable_length=True), task="transcribe"),
]
# extra forms of a model, applied when the config has every field named here
VARIANTS = [
    {"per_step": True},
    {"head": "dense"},
    {"bidirectional": True, "num_layers": 2},
    # recurrent families again on the readable reference path: every topology, both implementations
    {"impl": "reference"},
    {"impl": "reference", "per_step": True},
    {"impl": "reference", "bidirectional": True, "num_layers": 2},
]


def _cases():
    cases = []
    for name in models.names():
        entry = models.entry(name)
        if entry.model_cls.topology == "generative":  # image generators (loss terms out): tests/models/test_generative.py
            continue
        fields = {f.name for f in dataclasses.fields(entry.config_cls)}
        for info in SAMPLES:
            if info.kind not in entry.kinds or (info.task == "transcribe") != hasattr(entry.model_cls, "output_lengths"):
                continue
            cases.append(pytest.param(name, info, {}, id=f"{name}-{info.name}"))
            for variant in VARIANTS:
                # bidirectional is checked where it is subtle: variable lengths (each direction's own end)
                if set(variant) <= fields and not (variant.get("bidirectional") and not info.variable_length):
                    label = "-".join(f"{k}={v}" for k, v in variant.items())
                    cases.append(pytest.param(name, info, variant, id=f"{name}-{info.name}-{label}"))
    return cases


CASES = _cases()


def sample_input(info):
    """A batch of B items for `info`, and lengths (B,) when its items vary in length (longest = T)."""
    g = torch.Generator().manual_seed(1)
    if info.kind == "tokens":
        t = info.input_shape[0]
        x = torch.randint(1, info.vocab_size, (B, t), generator=g)  # id 0 is padding
    else:
        x = torch.randn(B, *info.input_shape, generator=g)
    if not info.variable_length:
        return x, None
    t = info.input_shape[0]
    lengths = torch.tensor([t, t // 2 + 1, 2])
    for i, n in enumerate(lengths):
        x[i, n:] = 0  # what collate's padding looks like
    return x, lengths


def build(name, info, variant):
    return models.create_for(name, info, **variant)


def expected_shape(model, info, x, out=None):
    k = info.num_classes
    if model.topology in ("encoder-decoder", "one-to-many"):  # greedy decoding without a target: U' <= max_length steps
        return (B, min(out.shape[1], model.config.max_length), k)
    if model.topology in ("one-to-one", "many-to-one"):
        return (B, k)
    if hasattr(model, "output_grid"):  # dense detector: K + 4 maps at 1/stride of the input
        return (B, *model.output_grid(tuple(x.shape[2:])))
    if info.kind == "image":
        return (B, k, *x.shape[2:])  # dense per-pixel scores at the input's size
    if hasattr(model, "output_lengths"):  # per frame of a time-downsampling CNN (CTC)
        return (B, int(model.output_lengths(torch.tensor(x.shape[1]))), k)
    return (B, x.shape[1], k)  # per step


def run(model, x, lengths):
    return model(x) if lengths is None else model(x, lengths)


# ---------------------------------------------------------------- registry-level checks


def test_there_are_models_to_check():
    assert CASES, "no registered model accepts any sample kind"


@pytest.mark.parametrize("name", models.names())
def test_entry_is_complete(name):
    entry = models.entry(name)
    assert entry.description.strip(), "a one-line description for `gridseq models`"
    assert entry.kinds and set(entry.kinds) <= set(KINDS)
    assert {i.kind for i in SAMPLES} >= set(entry.kinds), "add a sample for this kind to SAMPLES"
    assert entry.from_info is not None, "create_for(name, info) needs from_info"
    params = getattr(entry.config_cls, "__dataclass_params__", None)
    assert params is not None and params.frozen, "Model.Config must be a frozen dataclass"
    assert getattr(entry.model_cls, "topology", None) in TOPOLOGIES


@pytest.mark.parametrize(("name", "info", "variant"), CASES)
def test_config_is_json_and_round_trips(name, info, variant):
    model = build(name, info, variant)
    assert model.gridseq_name == name
    assert dataclasses.is_dataclass(model.config) and model.topology in TOPOLOGIES
    config = json.loads(json.dumps(dataclasses.asdict(model.config)))  # JSON-able fields only
    assert models.create(name, **config).config == model.config  # lists come back as tuples


# ---------------------------------------------------------------- forward / backward


@pytest.mark.parametrize(("name", "info", "variant"), CASES)
def test_output_shape_and_finite(name, info, variant):
    model = build(name, info, variant)
    x, lengths = sample_input(info)
    out = run(model, x, lengths)
    assert tuple(out.shape) == expected_shape(model, info, x, out), f"topology {model.topology}"
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all(), "output holds NaN or Inf"


@pytest.mark.parametrize(("name", "info", "variant"), CASES)
def test_backward_reaches_every_parameter(name, info, variant):
    model = build(name, info, variant)
    x, lengths = sample_input(info)
    out = run(model, x, lengths)
    (out * torch.randn_like(out)).sum().backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert params
    no_grad = [n for n, p in params if p.grad is None]
    assert not no_grad, f"parameters the output does not depend on: {no_grad}"
    bad = [n for n, p in params if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad}"


@pytest.mark.parametrize(("name", "info", "variant"), CASES)
def test_eval_is_deterministic(name, info, variant):
    model = build(name, info, variant).eval()
    x, lengths = sample_input(info)
    with torch.no_grad():
        assert torch.equal(run(model, x, lengths), run(model, x, lengths))


@pytest.mark.parametrize(("name", "info", "variant"), CASES)
def test_items_do_not_depend_on_their_batch(name, info, variant):
    """In eval mode each item gives the same outputs alone (and unpadded) as inside a padded batch:
    catches reads past a sequence's end and reshapes that mix batch and time."""
    model = build(name, info, variant).eval()
    x, lengths = sample_input(info)
    with torch.no_grad():
        batched = run(model, x, lengths)
        for i in range(B):
            n = x.shape[1] if lengths is None else int(lengths[i])
            alone = run(model, x[i : i + 1, :n], None if lengths is None else lengths[i : i + 1])
            if hasattr(model, "output_lengths"):  # valid output frames after the CNN's time downsampling
                n = int(model.output_lengths(torch.tensor(n)))
            if (info.kind == "image" and model.topology != "one-to-many") or batched.dim() == 2:
                got, want = batched[i], alone[0]
            elif model.topology in ("encoder-decoder", "one-to-many"):  # its own decoded steps, then zeros after its <eos>
                assert batched[i, alone.shape[1]:].eq(0).all(), f"item {i}: logits after its own <eos>"
                got, want = batched[i, : alone.shape[1]], alone[0]
            else:  # per step: compare the valid steps
                got, want = batched[i, :n], alone[0, :n]
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4, msg=f"item {i} (length {n})")


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize(("name", "info", "variant"), CASES)
def test_save_load_gives_identical_outputs(name, info, variant, tmp_path):
    model = build(name, info, variant)
    x, lengths = sample_input(info)
    run(model, x, lengths).sum().backward()  # one training-mode pass, so e.g. BatchNorm stats are non-trivial
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    gridseq.save(model, tmp_path)
    loaded = gridseq.load(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    model.eval()
    with torch.no_grad():
        assert torch.equal(run(model, x, lengths), run(loaded, x, lengths))


# ---------------------------------------------------------------- layout errors


def wrong_layouts(info, x, lengths):
    """(what is wrong, x, lengths) for the common mistakes with this kind of data."""
    kind = info.kind
    cases = [("no batch dimension", x[0], None)]
    if kind == "image":
        cases.append(("channels-last (B, H, W, C)", x.permute(0, 2, 3, 1), None))
    if kind == "sequence":
        cases += [("(T, B, F) with lengths", x.transpose(0, 1), lengths), ("(B, F, T)", x.transpose(1, 2), None)]
    if kind == "series":
        cases += [("(B, T) without the feature dim", x[..., 0], None), ("(B, F, T)", x.transpose(1, 2), None)]
    if kind == "tokens":
        cases += [("float ids", x.float(), lengths), ("(T, B) with lengths", x.t(), lengths)]
        cases.append(("ids beyond the vocabulary", x + info.vocab_size, lengths))
    if kind == "video":
        cases.append(("channels-last frames", x.permute(0, 1, 3, 4, 2), lengths))
    if lengths is not None:
        cases.append(("lengths beyond T", x, lengths + x.shape[1]))
        cases.append(("float lengths", x, lengths.float()))
    if x.is_floating_point():
        nan = x.clone()
        nan[0, 0] = float("nan")
        cases.append(("NaN in the input", nan, lengths))
    cases.append(("a list instead of a tensor", x.tolist(), None))
    return cases


@pytest.mark.parametrize(("name", "info", "variant"), [c for c in CASES if not c.values[2]])
def test_rejects_wrong_layouts_with_shape_error(name, info, variant):
    model = build(name, info, variant).eval()
    x, lengths = sample_input(info)
    missed = []
    for what, bad_x, bad_lengths in wrong_layouts(info, x, lengths):
        try:
            run(model, bad_x, bad_lengths)
            missed.append(f"{what}: accepted")
        except ShapeError:
            pass
        except Exception as e:  # noqa: BLE001 - any other error is what the check is for
            missed.append(f"{what}: {type(e).__name__}: {e}")
    assert not missed, "\n".join(missed)


def _randomise_batchnorm(model):
    """Running statistics and affine weights far from their initial 0/1, so a wrong fold shows."""
    g = torch.Generator().manual_seed(2)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.randn(n, generator=g))
                m.bias.data.copy_(torch.randn(n, generator=g))


# BatchNorms that no convolution feeds directly, so folding keeps them; every other one must fold (a new
# model whose conv feeds its BatchNorm through a ModuleDict or its own forward declares `conv_bn_pairs`)
LEFT_UNFOLDED = {"resnet1d": 1}  # the identity shortcut of its residual block is a lone BatchNorm


@pytest.mark.parametrize(("name", "info", "variant"), [c for c in CASES if not c.values[2]])
def test_batchnorm_folding_keeps_eval_outputs(name, info, variant):
    from gridseq.nn.fuse import count_batchnorm, fold_batchnorm

    torch.manual_seed(0)
    model = build(name, info, variant)
    _randomise_batchnorm(model)
    model.eval()
    x, lengths = sample_input(info)
    with torch.no_grad():
        before = run(model, x, lengths)
        folded = fold_batchnorm(model)
        after = run(folded, x, lengths)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    assert count_batchnorm(model) >= count_batchnorm(folded), "the original is not changed"
    assert count_batchnorm(folded) == LEFT_UNFOLDED.get(name, 0)
