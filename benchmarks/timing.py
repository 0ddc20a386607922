"""Side-by-side timing: interleaved repetitions, warm-up, medians; and the run's machine record.

Every ratio in the benchmarks compares cases timed in the same run, round-robin: one repetition of
every case, then the next repetition (the order rotated each round), so a burst of load from another
process hits all cases alike. A ratio is a ratio of medians; the spread (min/max) is kept beside it.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Budget:
    """How hard a benchmark works: repetitions per case, warm-up rounds, and a size multiplier."""

    reps: int
    warmup: int
    scale: float  # work per repetition relative to the full run (steps, items)

    def steps(self, full: int, minimum: int = 2) -> int:
        """`full` scaled by the budget, at least `minimum`."""
        return max(minimum, round(full * self.scale))


QUICK = Budget(reps=5, warmup=1, scale=0.4)
FULL = Budget(reps=7, warmup=1, scale=1.0)


def interleaved(cases: dict[str, Callable[[], Any]], budget: Budget) -> dict[str, list[float]]:
    """Time each case `budget.reps` times, round-robin, after `budget.warmup` untimed rounds.

    A case is a callable doing one repetition of work; it may return a float, which is then used as
    its time instead of the wall time around the call (for cases that must exclude setup).

    Returns:
        {name: [seconds per repetition]}.
    """
    names = list(cases)
    for _ in range(budget.warmup):
        for name in names:
            cases[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(budget.reps):
        k = rep % len(names)
        for name in names[k:] + names[:k]:  # rotate, so no case always runs right after the same one
            t0 = time.perf_counter()
            measured = cases[name]()
            elapsed = time.perf_counter() - t0
            times[name].append(float(measured) if isinstance(measured, (int, float)) else elapsed)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def paired_ratios(numerator: list[float], denominator: list[float]) -> list[float]:
    """numerator[i] / denominator[i] for each interleaved round i: the two cases of a round ran back to back,
    so a burst of load hits both, and the ratios' range says how far one round's ratio can be trusted."""
    return [a / b for a, b in zip(numerator, denominator)]


def summary(values: list[float]) -> dict[str, float]:
    """median / min / max of a list of seconds, rounded for the JSON."""
    return {"median_s": round(median(values), 6), "min_s": round(min(values), 6), "max_s": round(max(values), 6)}


@dataclass
class Entry:
    """One benchmark result: the figure it is judged by (`ratio`) against its `target`.

    `target` None means "report only"; `higher` False means the ratio must stay at or below target.
    """

    name: str
    ratio: float | None
    target: float | None
    figures: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    higher: bool = True
    skipped: bool = False
    spread: tuple[float, float] | None = None  # the lowest and highest per-round ratio (`paired_ratios`)

    @property
    def met(self) -> bool | None:
        if self.ratio is None or self.target is None:
            return None
        return self.ratio >= self.target if self.higher else self.ratio <= self.target

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "ratio": None if self.ratio is None else round(self.ratio, 4), "target": self.target,
               "met": self.met, "figures": self.figures}
        if not self.higher:
            out["direction"] = "at most"
        if self.spread is not None:
            out["ratio_spread"] = [round(self.spread[0], 4), round(self.spread[1], 4)]
        if self.note:
            out["note"] = self.note
        if self.skipped:
            out["skipped"] = True
        return out


def machine() -> dict[str, Any]:
    """The machine, threads, versions and load the numbers were measured under."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), cpu)
        flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
        isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    except OSError:
        isa = []
    import gridseq
    import numpy as np

    return {
        "cpu": cpu, "isa": isa, "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(), "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
        "gridseq": gridseq.__version__, "platform": platform.platform(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
