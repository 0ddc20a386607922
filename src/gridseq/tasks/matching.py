"""Matching models to tasks: which registered models can train on a dataset, and the checks that say so.

The one module that reads both the model registry (kinds, `create_for`, a model's declared `topology`) and the
tasks (`Task.topologies`, `Task.fits`). It sits in the tasks layer, above `models/`: the registry knows data
kinds only and imports no task, so a model that does not fit a dataset's task is refused here, with the
models that do fit it named in the message.

    >>> from gridseq.data.contract import DatasetInfo
    >>> seg = DatasetInfo(name="seg", kind="image", input_shape=(3, 32, 32), num_classes=2, class_names=("a", "b"),
    ...                   task="segment")
    >>> "unet" in fitting(seg) and "cnn" not in fitting(seg)
    True
"""

from __future__ import annotations

from torch import nn

from gridseq.data.contract import DatasetInfo
from gridseq.errors import ConfigError
from gridseq.models import registry
from gridseq.models.traits import Traits, traits
from gridseq.tasks.base import Task, get


def fitting(info: DatasetInfo) -> list[str]:
    """The registered models that can train on a dataset: they take its kind of data and, built for it,
    have a topology its task can use (e.g. for shapes-seg: the per-pixel models, not `cnn`)."""
    try:
        task = get(info.task, info)
        wanted = task.topologies
    except ConfigError:
        task, wanted = None, None
    found = []
    for n in registry.names():
        if info.kind not in registry.entry(n).kinds:
            continue
        if wanted is not None:
            try:  # the topology can depend on the data (per-step RNNs), so build the model to read it
                model = registry.create_for(n, info)
            except ConfigError:  # e.g. a model needing an argument the dataset does not give
                continue
            topology = traits(model).topology
            if topology is not None and (topology not in wanted or not task.fits(model)):
                continue
        found.append(n)
    return found


def create_for(name: str, info: DatasetInfo, **overrides) -> nn.Module:
    """`gridseq.models.create_for(name, info, **overrides)`, refusing a model that does not take the dataset's
    kind of data with the models that fit its task (`fitting`) named — what the CLI, compare and tune build with.

    Raises:
        ConfigError: `name` is unknown, takes another kind of data, or its arguments are wrong.
    """
    e = registry.entry(name)
    if info.kind not in e.kinds:
        raise ConfigError(registry.wrong_kind(e, info, fitting(info)))
    return registry.create_for(name, info, **overrides)


def for_data(info: DatasetInfo, model: nn.Module | None = None) -> Task:
    """The task for a dataset (`info.task`), checked against `model`'s topology.

    A model without a topology (`traits(model).topology` is None: a plain nn.Module) is trusted to produce the right output;
    the task's loss still checks the output's shape.

    Raises:
        ConfigError: the task is unknown, or the model's topology cannot serve it (e.g. a
            many-to-many model, one output per step, on a classify dataset, one label per item).
    """
    # a model may declare the task it serves (a VAE on an image classification dataset: generate-image)
    declared = traits(model) if model is not None else Traits()
    task = get(declared.serves_task or info.task, info)
    topology = declared.topology
    wrong_topology = topology is not None and topology not in task.topologies
    if wrong_topology or (model is not None and topology is not None and not task.fits(model)):
        model_name = registry.model_name(model)
        suitable = ", ".join(fitting(info)) or "none registered"
        why = (f"is {topology} (one output per {'step' if topology == 'many-to-many' else 'item'}), but task "
               f"{task.name!r} on dataset {info.name!r} needs {_a(task.topologies[0])} {' or '.join(task.topologies)} model"
               if wrong_topology else f"does not give the output task {task.name!r} on dataset {info.name!r} reads")
        raise ConfigError(f"model {model_name!r} {why}; models for it: {suitable}.")
    return task


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
