"""Task kinds: loss, metrics and decoding for each kind of problem, and which model topology serves it.

    >>> from gridseq import tasks
    >>> tasks.get("classify").primary
    'accuracy'
"""

from gridseq.tasks import classify, forecast  # noqa: F401  (registers "classify" and "forecast")
from gridseq.tasks.base import Metrics, Task, for_data, get, names, register
from gridseq.tasks.classify import ClassifyTask, ConfusionMetrics
from gridseq.tasks.forecast import ForecastMetrics, ForecastTask

__all__ = ["ClassifyTask", "ConfusionMetrics", "ForecastMetrics", "ForecastTask", "Metrics", "Task", "for_data", "get", "names", "register"]
