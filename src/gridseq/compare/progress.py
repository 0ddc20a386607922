"""Progress of a whole comparison on stderr: which model, seed (and length) is training, and the ETA.

On a terminal a rich progress bar over all jobs (one job = one model trained with one seed at one
length) with the current job's epoch; otherwise (piped, or `CI=true`) one line per finished job. The
ETA sums, over the jobs still to run, the mean time of finished jobs of the same model (scaled by
length in a sweep), or of all finished jobs for a model not yet seen, or the time budget when one
was given.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass

from rich.console import Console


@dataclass(frozen=True)
class Job:
    """One training run of a comparison."""

    label: str
    seed: int
    length: int | None = None

    def describe(self) -> str:
        return f"{self.label} seed {self.seed}" + (f" length {self.length}" if self.length is not None else "")


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Announces jobs and estimates the time left; silent with `enabled=False`.

    Args:
        jobs: every job in the order they will run.
        budget_seconds: the training budget per job, if one was given (an ETA before any job ends).
        enabled: None = automatic (a bar on an interactive stderr, lines otherwise), False = silent.
    """

    def __init__(self, jobs: list[Job], *, budget_seconds: float | None = None, enabled: bool | None = None):
        self.jobs = jobs
        self.budget = budget_seconds
        self.done: dict[Job, float] = {}
        self.enabled = enabled is not False
        in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.bar = None
        if self.enabled and sys.stderr.isatty() and not in_ci:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("elapsed {task.fields[elapsed]}  ETA {task.fields[eta]}"),
                                    console=self.console)
        self.started = time.perf_counter()
        self.job_started = self.started
        self.task_id = None

    def __enter__(self) -> Progress:
        if self.bar is not None:
            self.bar.start()
            self.task_id = self.bar.add_task("comparing", total=len(self.jobs), elapsed="0:00", eta=self._eta_text())
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def estimate(self, job: Job) -> float | None:
        """Seconds `job` is expected to take, from finished jobs (None when nothing is known yet)."""
        same = [(j, s) for j, s in self.done.items() if j.label == job.label]
        pool = same or list(self.done.items())
        if pool:
            def scaled(j: Job, s: float) -> float:
                return s * (job.length / j.length) if job.length and j.length else s
            value = statistics.mean(scaled(j, s) for j, s in pool)
            # a time budget bounds training; the first job of a model also carries its measurements
            return min(value, self.budget * 1.5) if self.budget else value
        return self.budget * 1.1 if self.budget else None

    def remaining(self, current: Job | None = None) -> float | None:
        pending = [j for j in self.jobs if j not in self.done]
        estimates = [self.estimate(j) for j in pending]
        if any(e is None for e in estimates):
            return None
        left = sum(estimates)
        if current is not None and current in pending:  # the running job is partly done
            left -= min(time.perf_counter() - self.job_started, self.estimate(current) or 0.0)
        return max(left, 0.0)

    def _eta_text(self, current: Job | None = None) -> str:
        left = self.remaining(current)
        return "?" if left is None else _clock(left)

    def start(self, job: Job) -> None:
        self.job_started = time.perf_counter()
        if self.bar is not None:
            self.bar.update(self.task_id, description=f"{job.describe()}", eta=self._eta_text(job),
                            elapsed=_clock(time.perf_counter() - self.started))

    def epoch(self, job: Job, epoch: int, epochs: int, value: float | None, metric: str) -> None:
        if self.bar is not None:
            shown = f" val_{metric} {value:.4f}" if value is not None else ""
            self.bar.update(self.task_id, description=f"{job.describe()}: epoch {epoch}/{epochs}{shown}",
                            eta=self._eta_text(job), elapsed=_clock(time.perf_counter() - self.started))

    def finish(self, job: Job, summary: str) -> None:
        self.done[job] = time.perf_counter() - self.job_started
        n = len(self.done)
        line = (f"[{n}/{len(self.jobs)}] {job.describe()}: {summary} in {self.done[job]:.1f} s — "
                f"elapsed {_clock(time.perf_counter() - self.started)}, ETA {self._eta_text()}")
        if self.bar is not None:
            self.bar.console.print(line, markup=False)
            self.bar.update(self.task_id, completed=n, eta=self._eta_text(), elapsed=_clock(time.perf_counter() - self.started))
        elif self.enabled:
            self.console.print(line, markup=False)

    def note(self, message: str) -> None:
        if self.enabled:
            (self.bar.console if self.bar is not None else self.console).print(message, markup=False)
