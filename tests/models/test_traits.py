"""Model traits (`gridseq.models.traits`): every registered model's declaration matches what the model
does, a plain nn.Module gets the defaults, wrappers are seen through, and no caller probes a model's
attributes instead of reading its traits."""

import ast
import dataclasses
import functools
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from gridseq import models, tasks
from gridseq.data.contract import DatasetInfo
from gridseq.errors import ConfigError
from gridseq.models.traits import Traits, config_of, traits, unwrap
from gridseq.tasks import matching
from gridseq.train import optim

pytestmark = pytest.mark.usefixtures("one_thread")

B = 2
SRC = Path(__file__).resolve().parents[2] / "src" / "gridseq"


def _info(name, kind, shape, vocab_size=None, **kw):
    return DatasetInfo(name=name, kind=kind, input_shape=shape, num_classes=4, class_names=tuple("abcd"),
                       vocab_size=vocab_size, **kw)


SAMPLES = [
    _info("gray8", "image", (1, 8, 8)),
    _info("seq12", "sequence", (12, 3)),
    _info("tok12", "tokens", (12,), vocab_size=20),
    _info("series16", "series", (16, 1)),
    _info("video6", "video", (6, 1, 8, 8)),
]
LINES = _info("lines24", "sequence", (29, 24), task="transcribe")  # CTC transcription: models with output_lengths


def _sample_for(name):
    entry = models.entry(name)
    if entry.model_cls.TRAITS.output_lengths:
        return LINES
    return next(i for i in SAMPLES if i.kind in entry.kinds)


def _input(info):
    g = torch.Generator().manual_seed(1)
    if info.kind == "tokens":
        return torch.randint(1, info.vocab_size, (B, *info.input_shape), generator=g)
    return torch.randn(B, *info.input_shape, generator=g)


def _build(name, **overrides):
    info = _sample_for(name)
    fields = {f.name for f in dataclasses.fields(models.entry(name).config_cls)}
    return models.create_for(name, info, **{k: v for k, v in overrides.items() if k in fields}).eval(), info


@pytest.mark.parametrize("name", models.names())
def test_every_registered_family_declares_its_traits(name):
    cls = models.entry(name).model_cls
    assert isinstance(cls.__dict__.get("TRAITS"), Traits), f"{cls.__qualname__} needs a class attribute TRAITS = Traits(...)"
    assert cls.TRAITS.topology is None, "the topology lives in the `topology` attribute; traits() fills it in"
    model, _ = _build(name)
    declared = traits(model)
    assert declared.topology == model.topology


@pytest.mark.parametrize("name", models.names())
def test_declared_methods_exist_exactly_when_declared(name):
    model, _ = _build(name)
    t = traits(model)
    for flag, method in [("streams", "stream"), ("output_lengths", "output_lengths"), ("output_grid", "output_grid"),
                         ("encodes", "encode"), ("samples", "sample")]:
        assert getattr(t, flag) == callable(getattr(model, method, None)), f"{flag} is {getattr(t, flag)} but {method} is " \
                                                                           f"{'missing' if getattr(t, flag) else 'defined'}"
    # generate() as a decoder (a DCGAN's generate(z) maps noise to images: not a decoder)
    assert t.decodes == (model.topology in ("encoder-decoder", "one-to-many"))
    assert t.samples == (t.serves_task == "generate-image") == (model.topology == "generative")
    assert not t.attention or t.decodes


@pytest.mark.parametrize("name", [n for n in models.names() if models.entry(n).model_cls.TRAITS.streams])
def test_a_streaming_model_steps_to_its_forward_output(name):
    model, info = _build(name, bidirectional=False, causal=True)  # a bidirectional layer cannot stream
    x = _input(info)
    full = model(x)
    with torch.no_grad():
        stepped = model.stream(batch_size=B).run(x)
    if stepped.shape != full.shape:  # many-to-one: the last step's output is the whole sequence's
        stepped = stepped[:, -1]
    torch.testing.assert_close(stepped, full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", [n for n in models.names() if models.entry(n).model_cls.TRAITS.output_lengths])
def test_output_lengths_counts_the_forward_frames(name):
    model, info = _build(name)
    x = _input(info)
    lengths = torch.tensor([x.shape[1], x.shape[1] // 2 + 3])
    frames = model.output_lengths(lengths)
    assert model(x, lengths).shape[1] == int(frames.max()) and frames.shape == (B,)


@pytest.mark.parametrize("name", [n for n in models.names() if models.entry(n).model_cls.TRAITS.output_grid])
def test_output_grid_is_the_forward_map(name):
    model, info = _build(name)
    x = _input(info)
    assert tuple(model(x).shape[1:]) == tuple(model.output_grid(tuple(x.shape[2:])))


@pytest.mark.parametrize("attention", ["bahdanau", "none"])
@pytest.mark.parametrize("name", [n for n in models.names() if models.entry(n).model_cls.TRAITS.decodes])
def test_a_decoder_generates_and_declares_its_attention_per_instance(name, attention):
    model, info = _build(name, attention=attention)
    t = traits(model)
    x = _input(info)
    model.encode(x)  # encodes: the input-reading half runs on its own
    ids, weights = model.generate(x, beam=1, max_length=5, return_attention=True)
    assert ids.dim() == 2 and ids.shape[0] == B and ids.shape[1] <= 5
    assert t.attention == (weights is not None) == (attention != "none")
    if t.feature_grid is not None:  # a captioner: its attention positions lie on an H' x W' grid
        assert weights is None or weights.shape[-1] == math.prod(t.feature_grid)


@pytest.mark.parametrize("classes", [4, 0])
@pytest.mark.parametrize("name", [n for n in models.names() if models.entry(n).model_cls.TRAITS.samples])
def test_a_generator_samples_and_declares_its_classes_and_optimizer(name, classes):
    model, info = _build(name, num_classes=classes)
    t = traits(model)
    assert t.conditional_classes == classes == model.config.num_classes
    y = torch.arange(3) % classes if classes else None
    assert model.sample(3, y).shape == (3, *info.input_shape)
    opt = optim.build_optimizer(model, "adam", lr=1e-3, weight_decay=0.0)
    assert opt.param_groups[0]["betas"] == (t.adam_betas or (0.9, 0.999))


@functools.cache
def _fitting(info_name):
    return tuple(matching.fitting(next(i for i in [*SAMPLES, LINES] if i.name == info_name)))


@pytest.mark.parametrize("name", models.names())
def test_declared_task_agrees_with_the_registry_matching(name):
    model, info = _build(name)
    t = traits(model)
    try:
        task = tasks.for_data(info, model)
    except ConfigError:
        task = None
    if t.serves_task is not None:  # it trains for its own task, whatever the dataset's: fitting() lists the dataset's
        assert task is not None and task.name == t.serves_task and name not in _fitting(info.name)
    else:
        assert (task is not None) == (name in _fitting(info.name)), "fitting() and for_data() read the same traits"


# ---------------------------------------------------------------- defaults and wrappers


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x):
        return self.linear(x)


def test_a_plain_module_gets_the_defaults():
    assert traits(Plain()) == Traits()
    assert config_of(Plain()) is None
    m = Plain()
    m.topology = "many-to-one"  # a user's module may still say what it is
    assert traits(m) == Traits(topology="many-to-one")
    assert optim.build_optimizer(Plain(), "adamw", lr=1e-3, weight_decay=0.0).param_groups[0]["betas"] == (0.9, 0.999)


def test_unwrap_strips_data_parallel_and_compile_wrappers():
    inner = models.create("lstm", input_size=3, num_classes=2, hidden_size=4)
    compiled = torch.compile(inner)  # not run: only its _orig_mod is read
    for wrapper in (nn.DataParallel(inner), compiled, nn.DataParallel(compiled)):
        assert unwrap(wrapper) is inner
        assert traits(wrapper) == traits(inner) and config_of(wrapper) is inner.config
    assert unwrap(inner) is inner


def test_unwrap_strips_distributed_data_parallel(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        inner = models.create("seq2seq", vocab_size=12, num_classes=8, hidden_size=4, attention="none")
        wrapped = nn.parallel.DistributedDataParallel(inner)
        assert unwrap(wrapped) is inner
        assert traits(wrapped) == traits(inner) and not traits(wrapped).attention and traits(wrapped).decodes
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------- no probing outside the protocol

PROBED_NAMES = {"model", "m", "net", "module", "inner"}
ALLOWED = {
    "models/traits.py": "the protocol itself reads TRAITS, topology, config and the wrappers' inner module",
    "models/registry.py": "create() sets gridseq_name and registered_name() is its one reader",
    "nn/time_distributed.py": "forwards methods of an arbitrary wrapped module by design",
    "datasets.py": "looks up a reader function on an arbitrary user module",
    "export/traceable.py": "introspects arbitrary modules to make them traceable",
}


def probes(tree: ast.AST) -> list[str]:
    """`getattr(x, ...)` / `hasattr(x, ...)` calls whose first argument is a bare name of a model."""
    return [ast.unparse(node) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
            and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in PROBED_NAMES]


def test_the_probe_scan_catches_probes_and_only_them():
    found = probes(ast.parse('getattr(model, "x", None)\nhasattr(m, "y")\ngetattr(self.model, "z")\n'
                             'getattr(config, "k")\nmodel.getattr(m)\nhasattr(inner, "w")'))
    assert found == ["getattr(model, 'x', None)", "hasattr(m, 'y')", "hasattr(inner, 'w')"]


def test_no_model_attribute_probes_outside_the_allow_list():
    bad = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel not in ALLOWED and (found := probes(ast.parse(path.read_text(encoding="utf-8")))):
            bad[rel] = found
    assert not bad, f"read gridseq.models.traits.traits(model) instead of probing the model: {bad}"
    assert all((SRC / rel).exists() for rel in ALLOWED), "drop allow-list entries for files that are gone"
