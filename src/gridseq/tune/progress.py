"""Progress of a study on stderr: on a terminal a live bar (trial n/N, best so far, pruned and failed
counts); otherwise (piped, or `CI=true`) one line per finished trial. It reads the study itself, so it
shows every process's trials, not only this one's."""

from __future__ import annotations

import os
import sys
import time

from rich.console import Console

from gridseq.tune import space as spaces
from gridseq.tune.report import short
from gridseq.tune.study import TIME_LIMIT


class Display:
    def __init__(self, study, trials: int, metric: str, *, enabled: bool | None = None):
        self.study, self.trials, self.metric = study, trials, metric
        self.enabled = enabled is not False
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.seen: set[int] = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        self.started = time.perf_counter()
        self.bar = None
        in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
        if self.enabled and sys.stderr.isatty() and not in_ci:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(TextColumn("tuning"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                                TimeElapsedColumn(), console=self.console)

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
            self.task_id = self.bar.add_task("tuning", total=self.trials, status="")
            self.poll()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.poll()
            self.bar.stop()

    def trial_done(self, study, frozen) -> None:
        self.poll()

    def poll(self) -> None:
        """Announce trials finished since the last look (by any process) and refresh the counts."""
        if not self.enabled:
            return
        from gridseq.tune.study import counts

        trials = self.study.get_trials(deepcopy=False)
        c = counts(self.study)
        new = sorted((t for t in trials if t.state.is_finished() and t.number not in self.seen), key=lambda t: t.number)
        for t in new:
            self.seen.add(t.number)
            if t.user_attrs.get("surplus"):
                continue
            self._print(self._line(t, c))
        if self.bar is not None:
            self.bar.update(self.task_id, completed=min(c["finished"], self.trials), status=self._status(c))

    def _best(self):
        try:
            return self.study.best_trial
        except ValueError:  # no complete trial yet
            return None

    def _status(self, c) -> str:
        best = self._best()
        shown = f"best {self.metric} {best.value:.4f} (trial {best.number})" if best is not None else "no complete trial yet"
        late = f" · {c['timed_out']} stopped by the time limit" if c.get("timed_out") else ""
        return f"{shown} · {c['pruned']} pruned · {c['failed']} failed{late} · {c['running']} running"

    def _line(self, t, c) -> str:
        settings = " ".join(f"{k.split('.', 1)[1]}={short(v)}" for k, v in spaces.decode_params(t.params).items())
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else 0.0
        state = t.state.name.lower()
        if state == "complete":
            what = f"{self.metric} {t.value:.4f}"
        elif state == "pruned":
            epoch = max(t.intermediate_values) if t.intermediate_values else 0
            what = f"{t.user_attrs.get('stopped', 'pruned')} at epoch {epoch}"
        elif t.user_attrs.get("stopped") == TIME_LIMIT:
            epoch = max(t.intermediate_values) if t.intermediate_values else 0
            what = f"stopped by the time limit at epoch {epoch} (it runs again when the study continues)"
        else:
            what = f"failed: {t.user_attrs.get('error', 'see the log')}"
        best = self._best()
        tail = f"best {best.value:.4f} (trial {best.number})" if best is not None else "no complete trial yet"
        return f"[{min(c['finished'], self.trials)}/{self.trials}] trial {t.number}: {what} in {seconds:.1f} s — {tail} — {settings}"

    def _print(self, line: str) -> None:
        (self.bar.console if self.bar is not None else self.console).print(line, markup=False)

