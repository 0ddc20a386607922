"""Task kinds: loss, metrics and decoding for each kind of problem, and which model topology serves it.

    >>> from gridseq import tasks
    >>> tasks.get("classify").primary
    'accuracy'
"""

from gridseq.tasks import classify  # noqa: F401  (registers "classify")
from gridseq.tasks.base import Metrics, Task, for_data, get, names, register
from gridseq.tasks.classify import ClassifyTask, ConfusionMetrics

__all__ = ["ClassifyTask", "ConfusionMetrics", "Metrics", "Task", "for_data", "get", "names", "register"]
