"""Training: `fit`, `evaluate`, checkpoints and resume, progress, run directories.

    >>> from gridseq.train import fit, evaluate, FitResult
"""

from gridseq.train.callbacks import Callback, TrainState
from gridseq.train.run_dir import open_run, read_history
from gridseq.train.evaluation import evaluate, resolve_device, seed_everything
from gridseq.train.trainer import FitResult, fit

__all__ = ["Callback", "FitResult", "TrainState", "evaluate", "fit", "open_run", "read_history", "resolve_device", "seed_everything"]
