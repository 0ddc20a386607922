"""Training: `fit`, `evaluate`, checkpoints and resume, progress, run directories.

    >>> from gridseq.train import fit, evaluate, FitResult
    >>> from gridseq.train import cross_validate, refit  # the small-data protocol (crossval.py)
"""

from gridseq.train.callbacks import Callback, TrainState
from gridseq.train.crossval import CVProgress, CVResult, cross_validate, refit
from gridseq.train.evaluation import evaluate, resolve_device, seed_everything
from gridseq.train.run_dir import open_run, read_history
from gridseq.train.trainer import FitResult, fit

__all__ = ["CVProgress", "CVResult", "Callback", "FitResult", "TrainState", "cross_validate", "evaluate", "fit", "open_run", "read_history", "refit", "resolve_device", "seed_everything"]
