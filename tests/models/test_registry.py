"""The model registry (gridseq.models.registry): lookup by name, helpful errors for typos, defaults and
None overrides, building for a dataset, duplicate registration."""

import dataclasses
import logging

import pytest
from torch import nn

from gridseq import models, tasks
from gridseq._validation import check_positive_int
from gridseq.data.contract import DatasetInfo
from gridseq.errors import ConfigError
from gridseq.models import registry


class Toy(nn.Module):
    topology = "one-to-one"

    @dataclasses.dataclass(frozen=True)
    class Config:
        input_size: int
        num_classes: int
        hidden_size: int = 16
        activation: str = "relu"

        def __post_init__(self):
            check_positive_int(self.hidden_size, "hidden_size")

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.net = nn.Linear(config.input_size, config.num_classes)


def toy_from_info(info):
    return {"input_size": info.num_features, "num_classes": info.num_classes}


@pytest.fixture(autouse=True)
def private_registry(monkeypatch):
    # tests register freely into a copy; the real registry is restored afterwards
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    registry.register("toy_image", Toy, description="toy for images", kinds=("image",), from_info=toy_from_info)
    registry.register(
        "toy_seq", Toy, description="toy for sequences", kinds=("sequence", "series"),
        defaults={"hidden_size": 32, "activation": "tanh"}, from_info=toy_from_info,
    )


def info(kind="sequence", shape=(12, 3)):
    return DatasetInfo(name="demo", kind=kind, input_shape=shape, num_classes=4, class_names=("a", "b", "c", "d"))


# ---------------------------------------------------------------- names and lookup


def test_names_are_sorted_and_include_registered_ones():
    registry.register("aaa_first", Toy, description="", kinds=("image",))
    names = models.names()
    assert names == sorted(names)
    assert {"toy_image", "toy_seq", "aaa_first"} <= set(names)
    assert names[0] == "aaa_first"


def test_entry_describes_the_name():
    e = models.entry("toy_seq")
    assert (e.name, e.model_cls, e.kinds, e.config_cls) == ("toy_seq", Toy, ("sequence", "series"), Toy.Config)
    assert e.defaults == {"hidden_size": 32, "activation": "tanh"}


def test_lookup_ignores_case():
    assert models.entry("TOY_Seq").name == "toy_seq"
    assert models.create("Toy_Image", input_size=2, num_classes=3).gridseq_name == "toy_image"


def test_mixed_case_registration_is_found():
    registry.register("ToyNet", Toy, description="", kinds=("image",))
    assert models.entry("ToyNet").name == "ToyNet"
    assert models.entry("toynet").name == "ToyNet"


def test_unknown_model_suggests_and_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        models.create("toy_sqe", input_size=3, num_classes=2)
    message = str(err.value)
    assert "unknown model 'toy_sqe'" in message
    assert "Did you mean 'toy_seq'?" in message
    assert "Valid models:" in message and "toy_image" in message and "toy_seq" in message
    assert "gridseq.models.names()" in message


def test_unknown_model_without_close_match_has_no_suggestion():
    with pytest.raises(ConfigError, match="unknown model 'transformer'") as err:
        models.entry("transformer")
    assert "Did you mean" not in str(err.value)


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        models.entry("nope")


# ---------------------------------------------------------------- arguments


def test_defaults_then_user_arguments():
    model = models.create("toy_seq", input_size=3, num_classes=2)
    assert model.config == Toy.Config(input_size=3, num_classes=2, hidden_size=32, activation="tanh")
    assert models.create("toy_seq", input_size=3, num_classes=2, hidden_size=8).config.hidden_size == 8
    assert models.create("toy_image", input_size=3, num_classes=2).config.hidden_size == 16  # field default


def test_create_records_the_registry_name():
    assert models.create("toy_seq", input_size=3, num_classes=2).gridseq_name == "toy_seq"


def test_none_overrides_are_dropped_so_defaults_win():
    model = models.create("toy_seq", input_size=3, num_classes=2, hidden_size=None, activation=None)
    assert model.config.hidden_size == 32 and model.config.activation == "tanh"
    assert models.build_config("toy_image", input_size=1, num_classes=2, hidden_size=None).hidden_size == 16


def test_unknown_argument_names_valid_arguments_and_suggests():
    with pytest.raises(ConfigError) as err:
        models.create("toy_seq", input_size=3, num_classes=2, hiden_size=8)
    message = str(err.value)
    assert "unknown argument 'hiden_size' for model 'toy_seq'" in message
    assert "Did you mean 'hidden_size'?" in message
    assert "Valid arguments: input_size, num_classes, hidden_size, activation" in message


def test_every_unknown_argument_is_named():
    with pytest.raises(ConfigError, match=r"unknown arguments 'hiden_size', 'activaton'.*'hidden_size'.*'activation'"):
        models.build_config("toy_seq", input_size=3, num_classes=2, hiden_size=8, activaton="relu")


def test_missing_required_arguments():
    with pytest.raises(ConfigError, match=r"model 'toy_image' needs input_size, num_classes; pass input_size=\.\.\."):
        models.create("toy_image")
    with pytest.raises(ConfigError, match="needs num_classes"):
        models.create("toy_image", input_size=3)


def test_invalid_value_is_reported_by_the_config():
    with pytest.raises(ConfigError, match="hidden_size must be a positive int, got 0"):
        models.create("toy_seq", input_size=3, num_classes=2, hidden_size=0)


# ---------------------------------------------------------------- create_for


def test_create_for_fills_data_arguments():
    model = models.create_for("toy_seq", info())
    assert (model.config.input_size, model.config.num_classes) == (3, 4)
    assert model.gridseq_name == "toy_seq"


def test_create_for_overrides_win_and_none_is_dropped():
    model = models.create_for("toy_seq", info(), num_classes=7, hidden_size=None)
    assert model.config.num_classes == 7 and model.config.hidden_size == 32


def test_create_for_wrong_kind_lists_suitable_models():
    with pytest.raises(ConfigError) as err:
        models.create_for("toy_seq", info(kind="image", shape=(1, 8, 8)))
    message = str(err.value)
    assert "model 'toy_seq' takes sequence or series data" in message
    assert "dataset 'demo' is image data" in message
    assert "models for it:" in message and "toy_image" in message
    assert "toy_seq," not in message and not message.rstrip(".").endswith("toy_seq")


def test_create_for_a_kind_nobody_takes():
    registry._entries.clear()
    registry.register("toy_image", Toy, description="", kinds=("image",), from_info=toy_from_info)
    with pytest.raises(ConfigError, match="models for it: none registered"):
        models.create_for("toy_image", info(kind="video", shape=(5, 1, 8, 8)))


def test_create_for_without_from_info_needs_explicit_arguments():
    registry.register("bare", Toy, description="", kinds=("sequence",))
    with pytest.raises(ConfigError, match="needs input_size"):
        models.create_for("bare", info())
    assert models.create_for("bare", info(), input_size=3, num_classes=4).config.input_size == 3


# ---------------------------------------------------------------- register


def test_duplicate_registration_warns_and_replaces(caplog):
    class Other(Toy):
        pass

    with caplog.at_level(logging.WARNING, logger="gridseq.models.registry"):
        registry.register("toy_seq", Other, description="again", kinds=("sequence",))
    assert any("overwriting model 'toy_seq'" in r.getMessage() and "Other" in r.getMessage() for r in caplog.records)
    assert models.entry("toy_seq").model_cls is Other


def test_first_registration_does_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="gridseq.models.registry"):
        registry.register("brand_new", Toy, description="", kinds=("image",))
    assert caplog.records == []


@pytest.mark.parametrize("kinds", [("images",), "image", ("image", "text")])
def test_register_rejects_unknown_kinds(kinds):
    with pytest.raises(ConfigError, match="kinds must be a tuple drawn from image, sequence, tokens, video, series"):
        registry.register("bad", Toy, description="", kinds=kinds)
    assert "bad" not in models.names()


def test_register_requires_a_config_dataclass():
    with pytest.raises(ConfigError, match="Linear needs a nested dataclass `Config`"):
        registry.register("bad", nn.Linear, description="", kinds=("image",))


def test_fitting_lists_models_whose_topology_the_task_can_use():
    seg = DatasetInfo(name="seg", kind="image", input_shape=(3, 32, 32), num_classes=4, class_names=tuple("abcd"), task="segment")
    cls = DatasetInfo(name="cls", kind="image", input_shape=(3, 32, 32), num_classes=4, class_names=tuple("abcd"))
    assert {"unet", "fcn8s", "fcn"} <= set(tasks.fitting(seg)) and "cnn" not in tasks.fitting(seg)
    assert "cnn" in tasks.fitting(cls) and not {"unet", "fcn8s", "captioner"} & set(tasks.fitting(cls))


def test_wrong_topology_error_names_the_models_that_fit():
    seg = DatasetInfo(name="seg", kind="image", input_shape=(3, 32, 32), num_classes=4, class_names=tuple("abcd"), task="segment")
    with pytest.raises(ConfigError, match=r"needs a many-to-many model; models for it: .*unet"):
        tasks.for_data(seg, registry.create_for("cnn", seg))
