"""SIGTERM during `fit`: finish the current optimizer step, write a checkpoint, stop.

Schedulers (Slurm, Kubernetes, systemd) and torchrun ask a job to stop with SIGTERM, then kill it
a grace period later. While `fit` runs, `StopOnSigterm` turns the first SIGTERM into a request the
trainer reads at the next step boundary: it checkpoints there (every rank agrees on the step under
torch.distributed) and raises `Terminated`, which the CLI prints as one line and exit code 143
(128 + SIGTERM, as shells report a process killed by it). `fit(..., resume=True)` then continues
exactly from that step. A second SIGTERM kills the process at once, as if no handler were set.

The handler is installed only from the main thread and only over the default disposition, so a
program that handles SIGTERM itself keeps its own handler.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Self

from gridseq.errors import Terminated
from gridseq.train import distributed

__all__ = ["StopOnSigterm", "Terminated"]

_logger = logging.getLogger(__name__)


class StopOnSigterm:
    """While active (`with StopOnSigterm() as stop:`), SIGTERM sets a flag instead of killing the process.

    `stop.requested()` is the flag, agreed by every rank under torch.distributed (a collective call:
    every rank must make it at the same point).
    """

    def __init__(self):
        self.received = False
        self.installed = False
        self._previous = None

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self.installed = True
        return self

    def __exit__(self, *exc) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self._previous)
            self.installed = False

    def _handle(self, signum, frame) -> None:
        if self.received:  # the second one: die now, as without a handler
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self.received = True
        _logger.info("SIGTERM: stopping after the current step (send it again to stop at once)")

    def requested(self) -> bool:
        """Whether any rank got SIGTERM (False on every rank when none did)."""
        if not self.installed and not distributed.is_distributed():
            return False
        return distributed.any_rank(self.received)
