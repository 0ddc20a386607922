"""SIGTERM and Ctrl-C (SIGINT) during `fit`: finish the current optimizer step, write a checkpoint, stop.

Schedulers (Slurm, Kubernetes, systemd) and torchrun ask a job to stop with SIGTERM, then kill it
a grace period later; a person at a terminal presses Ctrl-C. While `fit` trains, `StopOnSignal`
turns the first of either into a request the trainer reads at the next step boundary: it
checkpoints there (every rank agrees on the step under torch.distributed) and raises `Terminated`
(SIGTERM; the CLI exits with 143, 128 + SIGTERM, as shells report a process killed by it) or
`Interrupted` (Ctrl-C; a KeyboardInterrupt, so code that handles Ctrl-C still sees one; the CLI
exits with 130). The CLI prints either as one line; `fit(..., resume=True)` then continues exactly
from that step.

A second signal stops at once, the usual convention: a second SIGTERM kills the process as if no
handler were set, a second Ctrl-C raises a plain KeyboardInterrupt where the program is (the last
checkpoint written before it is the one `resume=True` continues from).

The handlers are installed only from the main thread and only over the default disposition
(SIG_DFL; for SIGINT also Python's `default_int_handler`), so a program that handles either signal
itself, or a shell that started the job with SIGINT ignored, keeps its own.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Self

from gridseq.errors import Interrupted, Terminated
from gridseq.train import distributed

__all__ = ["Interrupted", "StopOnSignal", "StopOnSigterm", "Terminated", "signal_name"]

_logger = logging.getLogger(__name__)

HANDLED = (signal.SIGTERM, signal.SIGINT)
_DEFAULTS = {signal.SIGTERM: (signal.SIG_DFL,), signal.SIGINT: (signal.SIG_DFL, signal.default_int_handler)}


def signal_name(signum: int) -> str:
    """How messages name a signal: "Ctrl-C (SIGINT)" or "SIGTERM"."""
    return "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name


class StopOnSignal:
    """While active (`with StopOnSignal() as stop:`), SIGTERM and SIGINT set a flag instead of stopping the process.

    `stop.received` is the first signal this process got (None before any); `stop.requested()` is the
    flag, agreed by every rank under torch.distributed (a collective call: every rank must make it at
    the same point). `release(signum)` puts that signal's previous handler back early.
    """

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                if signal.getsignal(signum) in _DEFAULTS[signum]:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum in list(self._previous):
            self.release(signum)

    def release(self, signum: int) -> None:
        """Give `signum` back to the handler it had before (from here on it acts as it did before `fit`)."""
        if signum in self._previous:
            signal.signal(signum, self._previous.pop(signum))

    def _handle(self, signum, frame) -> None:
        if self.received is not None:  # the second one: stop now, as without a handler
            previous = self._previous.get(signum, signal.SIG_DFL)
            self.__exit__()
            if signum == signal.SIGINT and callable(previous):
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received = signum
        _logger.info("%s: stopping after the current step (send it again to stop at once)", signal_name(signum))

    def requested(self) -> bool:
        """Whether any rank got SIGTERM or SIGINT (False on every rank when none did)."""
        if not self.installed and not distributed.is_distributed():
            return self.received is not None
        return distributed.any_rank(self.received is not None)


StopOnSigterm = StopOnSignal  # the name before Ctrl-C was handled too
