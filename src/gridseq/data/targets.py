"""What a dataset's targets are: one table from a task's name to the kind of its targets.

The data layer, the models and the trainer read this declaration (`DatasetInfo.targets`) instead of comparing
`info.task` with a task's name: they sit below `gridseq.tasks` and cannot import it, and what they need to
know is the shape of the targets (masks move with their images, a forecast head is horizon × targets wide,
per-step targets need a model that emits one output per step), not which task reads them.

    >>> targets_of("tag").per_step, targets_of("classify").item_class, targets_of("forecast").kind
    (True, True, 'window')

A task of your own that is not in the table gets `OTHER` (nothing per step, no class per item); add its
entry here when it needs per-step models or stratified folds.
"""

from __future__ import annotations

from dataclasses import dataclass

_PER_STEP = ("steps", "next-token", "transcript")


@dataclass(frozen=True)
class Targets:
    """The kind of a dataset's targets.

    Args:
        kind: "class" (one class per item), "value" (real values per item), "window" (a forecast window:
            horizon × target series), "steps" (one class per input step), "next-token" (the next token at
            every step of a running text), "transcript" (a label sequence scored at every frame, CTC),
            "mask" (a class per pixel), "boxes" (boxes with a class each), "sequence" (a target token
            sequence, seq2seq), "caption" (a text per image), or "other" (a task the table does not know).
    """

    kind: str

    @property
    def per_step(self) -> bool:
        """Whether the targets are scored at every input step (tagging, language modelling, CTC frames), so a
        model built for them is many-to-many (`per_step=True`)."""
        return self.kind in _PER_STEP

    @property
    def item_class(self) -> bool:
        """Whether each item has one class (whole-item labels: pooled heads, label-preserving augmentation,
        stratified folds)."""
        return self.kind == "class"


OTHER = Targets("other")

# task name (DatasetInfo.task) -> what its targets are
TARGETS = {
    "classify": Targets("class"),
    "regress": Targets("value"),
    "forecast": Targets("window"),
    "tag": Targets("steps"),
    "lm": Targets("next-token"),
    "transcribe": Targets("transcript"),
    "segment": Targets("mask"),
    "detect": Targets("boxes"),
    "seq2seq": Targets("sequence"),
    "caption": Targets("caption"),
}


def targets_of(task: str | None) -> Targets:
    """The declaration of the targets of data for `task` (a `DatasetInfo.task` name); `OTHER` if unknown."""
    return TARGETS.get(task, OTHER) if isinstance(task, str) else OTHER
