"""Task kinds: loss, metrics and decoding for each kind of problem, and which model topology serves it.

    >>> from gridseq import tasks
    >>> tasks.get("classify").primary
    'accuracy'
"""

from gridseq.tasks import classify, forecast, lm, regress, seq2seq, tag  # noqa: F401  (registers the task kinds)
from gridseq.tasks import generate_image  # noqa: F401  (registers generate-image)
from gridseq.tasks.base import LOWER_IS_BETTER, Metrics, SumMetrics, Task, get, names, register, streaming, task_class
from gridseq.tasks.matching import fitting, for_data
from gridseq.tasks.classify import ClassifyTask, ConfusionMetrics
from gridseq.tasks.forecast import ForecastMetrics, ForecastTask
from gridseq.tasks.lm import LMMetrics, LMTask
from gridseq.tasks.regress import RegressionMetrics, RegressTask
from gridseq.tasks.seq2seq import Seq2SeqMetrics, Seq2SeqTask
from gridseq.tasks.tag import StepMetrics, TagTask
from gridseq.tasks.transcribe import TranscribeMetrics, TranscribeTask
from gridseq.tasks.caption import CaptionMetrics, CaptionTask
from gridseq.tasks.segment import SegmentMetrics, SegmentTask
from gridseq.tasks.generate_image import GenerateImageTask, GenerationMetrics
from gridseq.tasks.detect import DetectMetrics, DetectTask

__all__ = ["LOWER_IS_BETTER", "ClassifyTask", "ConfusionMetrics", "ForecastMetrics", "ForecastTask", "LMMetrics", "LMTask", "Metrics",
           "RegressionMetrics", "RegressTask", "Seq2SeqMetrics", "Seq2SeqTask", "StepMetrics", "SumMetrics", "TagTask", "Task", "fitting", "for_data", "get", "names", "register", "streaming", "task_class"]
__all__ += ["SegmentMetrics", "SegmentTask"]
__all__ += ["CaptionMetrics", "CaptionTask"]
__all__ += ["TranscribeMetrics", "TranscribeTask"]
__all__ += ["DetectMetrics", "DetectTask"]
__all__ += ["GenerateImageTask", "GenerationMetrics"]
