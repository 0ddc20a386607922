"""gridseq.data.targets: the one table of what a dataset's targets are, read below the tasks instead of task names."""

from gridseq import tasks
from gridseq.data.contract import DatasetInfo
from gridseq.data.targets import OTHER, TARGETS, targets_of


def info(task: str) -> DatasetInfo:
    return DatasetInfo(name="d", kind="sequence", input_shape=(5, 2), num_classes=3, class_names=("a", "b", "c"), task=task)


def test_every_task_a_dataset_can_name_has_its_targets_declared():
    # generate-image is a model's declaration (serves_task), never a dataset's task
    assert sorted(TARGETS) == sorted(n for n in tasks.names() if tasks.task_class(n).generates != "images")


def test_the_declarations_agree_with_the_tasks():
    assert [n for n in TARGETS if TARGETS[n].per_step] == ["tag", "lm", "transcribe"]
    assert [n for n in TARGETS if TARGETS[n].item_class] == ["classify"]
    for name in TARGETS:  # per-step targets are scored by many-to-many models
        assert not TARGETS[name].per_step or tasks.task_class(name).topologies == ("many-to-many",)
        assert not tasks.task_class(name).step_labels or TARGETS[name].per_step


def test_dataset_info_reads_the_table_and_an_unknown_task_gets_other():
    assert info("tag").targets.per_step and not info("classify").targets.per_step
    assert info("sign").targets is OTHER and targets_of(None) is OTHER
    assert not (OTHER.per_step or OTHER.item_class)
    assert "targets" not in info("tag").to_json()  # derived from the task, not stored


def test_only_tasks_whose_items_are_not_exchangeable_refuse_folds():
    assert sorted(n for n in tasks.names() if tasks.task_class(n).not_exchangeable) == ["forecast", "lm"]
