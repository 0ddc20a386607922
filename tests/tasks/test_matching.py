"""gridseq.tasks.matching: the one module that matches models to tasks (the registry below it knows data kinds only)."""

import pytest

from gridseq import models, tasks
from gridseq.data.contract import DatasetInfo
from gridseq.errors import ConfigError
from gridseq.tasks import matching

IMAGES = DatasetInfo(name="cls", kind="image", input_shape=(1, 8, 8), num_classes=3, class_names=("a", "b", "c"))


def test_a_model_of_another_kind_is_refused_naming_the_models_that_fit_the_task():
    with pytest.raises(ConfigError) as err:
        matching.create_for("lstm", IMAGES)
    fit = ", ".join(tasks.fitting(IMAGES))
    assert str(err.value) == (f"model 'lstm' takes sequence or series or tokens data, but dataset 'cls' is image data; "
                              f"models for it: {fit}.")
    assert "unet" not in fit and "cnn" in fit  # per-pixel models do not fit whole-image labels


def test_the_registry_alone_names_the_models_that_take_the_kind():
    with pytest.raises(ConfigError, match=r"models for it: .*unet") as err:
        models.create_for("lstm", IMAGES)
    assert "model 'lstm' takes sequence or series or tokens data, but dataset 'cls' is image data" in str(err.value)


def test_a_fitting_model_is_built_as_the_registry_builds_it():
    assert matching.create_for("cnn", IMAGES, hidden_size=None).config == models.create_for("cnn", IMAGES).config
