"""`--jobs N`: N worker processes on this machine share the study through its storage.

Workers are spawned (not forked: a forked copy of a process that already ran torch's thread pools can
hang), each loads the data once and runs `Worker.run` with cores / N threads; the parent only shows
progress. On Linux a worker dies with its parent (PR_SET_PDEATHSIG), so a killed `gridseq tune` leaves
no orphans training on; its running trials are then failed and retried by the next run.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import time

from gridseq.errors import GridseqError


def run(plan, jobs: int, display) -> None:
    threads = plan.threads or max(1, (os.cpu_count() or 1) // jobs)
    child_plan = dataclasses.replace(plan, threads=threads)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_work, args=(child_plan,), name=f"gridseq-tune-{i}") for i in range(jobs)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            display.poll()
            time.sleep(1.0)
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10)
        raise
    display.poll()
    failed = [p for p in procs if p.exitcode != 0]
    if failed:
        raise GridseqError(f"{len(failed)} of {jobs} tuning workers stopped with an error (exit codes "
                           f"{', '.join(str(p.exitcode) for p in failed)}); their messages are above. Rerun the same "
                           f"command to continue the study.")


def _work(plan) -> None:
    _die_with_parent()
    from gridseq.tune import _quiet_optuna
    from gridseq.tune.study import Worker

    _quiet_optuna()
    Worker(plan).run()


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: a worker outlives a killed parent, taking trials until the study has N
        pass
