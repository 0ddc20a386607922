"""`CompareReport`: the aggregated results of a comparison, its JSON form and the files it writes.

`build(raw)` turns the harness's per-run results into the report dictionary (the schema of
report.json, documented in docs/compare.md), computes the claims card from it, and wraps it. The
dictionary is the single source: the Markdown and HTML writers, the plots and the terminal summary
all read it, so every number a reader sees is one that report.json holds.
"""

from __future__ import annotations

import datetime
import json
import math
import statistics
from pathlib import Path
from typing import Any

from gridseq._atomic import atomic_write_bytes, atomic_write_text, ensure_dir
from gridseq.compare import claims as claims_mod
from gridseq.compare.plan import REFERENCES
from gridseq.compare.probes import longest_solved, solved

SCHEMA = "gridseq.compare/1"
FILES = ("report.json", "report.md", "report.html")

MEASUREMENTS = {
    "train_samples_per_second": "training items per second of optimizer-step time (mean over seeds)",
    "train_seconds": "wall time of all epochs, training and validation",
    "latency_ms_b1": "median wall time of one forward pass on one test item, eval mode, all threads",
    "throughput_b256": "test items per second in forward passes of 256 items, all threads",
    "thread_scaling": "throughput_b256 with all threads / with one thread (how much the model parallelises)",
    "length_scaling": "batch-1 latency at T, 2T and 4T steps (a test item tiled along time); ratio = 4T / T",
    "memory": "one training step at the training batch size, MiB: activations_mb = bytes autograd saves for backward "
              "(exact, saved-tensor hooks); train_step_mb = weights + gradients + AdamW moments + activations; "
              "rss_growth_mb = measured growth of the process's peak resident memory over one step (Linux VmHWM; "
              "noisy: it depends on what the allocator already holds)",
    "padding_invariant": "same output (|diff| <= 1e-4 x max|output|) for each item alone and in a batch padded with "
                         "random values; fixed-length data are cut to random lengths in T/2..T first",
    "reads_whole_input": "whether the output changes when steps after T of a 2T-step input change "
                         "(False: the model reads only the first T steps)",
    "receptive_field": "input steps (pixels along a side, for images) one position of the last conv feature map sees",
    "input_steps_seen": "steps of a 4T-step input the (last) output depends on, measured by gradient",
    "gradient_flow": "‖∂L/∂h_t‖ per step of the last recurrent layer's forward direction, mean over the 64 longest "
                     "test items; first_to_last = ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖",
}


def _stats(values: list[float]) -> dict[str, Any]:
    clean = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return {
        "mean": statistics.mean(clean) if clean else None,
        "std": statistics.stdev(clean) if len(clean) > 1 else (0.0 if clean else None),
        "runs": values,
    }


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    return obj


def environment(threads: int) -> dict[str, Any]:
    """Machine, versions and load (what the timings were measured under)."""
    import os
    import platform

    import numpy as np
    import torch

    import gridseq

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "gridseq": gridseq.__version__, "torch": torch.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
        "logical_cpus": os.cpu_count(), "torch_threads": threads,
        "loadavg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def build(raw) -> CompareReport:
    """The report of a finished comparison (`harness.RawResults`)."""
    task = raw.task
    primary, hib = task.primary, task.higher_is_better
    first_length = raw.lengths[0] if raw.lengths else None
    solved_rule = raw.info.preprocessing.get("solved") if raw.lengths else None
    models = []
    grad_length = gradient_length(raw, primary, hib, solved_rule)
    for spec in raw.specs:
        label = spec.label
        runs = [r for r in raw.runs if r.label == label]
        at_first = [r for r in runs if r.length == first_length]
        by_seed = {r.seed: r for r in at_first}
        aligned = [by_seed.get(seed) if by_seed.get(seed) and by_seed[seed].error is None else None for seed in raw.seeds]
        ok = [r for r in aligned if r is not None]
        setting = raw.settings[label]
        metric_names = sorted({k for r in ok for k in r.test})
        measured = raw.measured.get(label, {})
        samples = [r.samples_per_second if r else None for r in aligned]
        entry: dict[str, Any] = {
            "name": label, "model": setting["registry"], "family": setting["family"], "view": setting["view"],
            "config": setting["model"], "train": setting["train"], "parameters": raw.parameters[label],
            # "runs" lists follow the report's "seeds" (None for a failed run)
            "metrics": {k: _stats([r.test.get(k) if r else None for r in aligned]) for k in metric_names},
            "train_seconds": _stats([r.train_seconds if r else None for r in aligned]),
            "train_samples_per_second": _stats(samples)["mean"],
            "train_samples_per_second_runs": samples,
            "epochs": [r.epochs for r in at_first], "best_epoch": [r.best_epoch for r in at_first],
            **{k: measured.get(k) for k in ("latency_ms_b1", "throughput_b256", "thread_scaling", "length_scaling",
                                            "memory", "receptive_field", "input_steps_seen",
                                            "reads_whole_input", "sequence_length")},
            "padding_invariant": _all([r.padding["invariant"] for r in ok if r.padding]),
            "padding": {r.seed: r.padding for r in ok},
            "gradient_flow": _gradients([r for r in runs if r.length == grad_length and r.error is None], grad_length),
            "history": {r.seed: r.history for r in at_first},
            "errors": [{"seed": r.seed, "length": r.length, "error": r.error} for r in runs if r.error],
        }
        if first_length is not None:
            entry["length"] = first_length
        ref = REFERENCES.get(raw.dataset.lower())
        if ref and label in ref["values"]:
            entry["reference"] = {"value": ref["values"][label], "metric": ref["metric"], "source": ref["source"]}
        models.append(entry)
    sweep = _sweep(raw, primary, hib, solved_rule) if raw.lengths else None
    report = {
        "schema": SCHEMA,
        "dataset": raw.dataset,
        "data": {"info": raw.info.to_json(), "sizes": None},
        "task": {"name": task.name, "primary": primary, "higher_is_better": hib},
        "budget": {"kind": raw.budget.kind, "epochs": raw.budget.epochs, "seconds": raw.budget.seconds,
                   "description": raw.budget.describe()},
        "seeds": raw.seeds,
        "lengths": raw.lengths,
        "models": models,
        "sweep": sweep,
        "claims": [],
        "references": REFERENCES.get(raw.dataset.lower()),
        "measurements": MEASUREMENTS,
        "environment": {**environment(raw.threads), "loadavg_at_start": raw.load_at_start},
        "wall_seconds": raw.wall_seconds,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    report["warnings"] = _warnings(report)
    report = _jsonable(report)
    report["claims"] = evaluate(report)
    return CompareReport(report)


def evaluate(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The claims card of a report dictionary: computed from the numbers report.json holds, nothing else."""
    return claims_mod.evaluate_claims(claim_inputs(report), higher_is_better=report["task"]["higher_is_better"],
                                      references=report.get("references"), primary=report["task"]["primary"])


def claim_inputs(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model, per seed: the numbers the claims read (see gridseq.compare.claims), from report.json."""
    primary = report["task"]["primary"]
    seeds = [str(s) for s in report["seeds"]]
    sweep = report.get("sweep")
    out = []
    for m in report["models"]:
        metric_runs = m["metrics"].get(primary, {}).get("runs", [])
        samples = m.get("train_samples_per_second_runs") or [m.get("train_samples_per_second")] * len(seeds)
        grads = m.get("gradient_flow") or {}
        per_seed = {}
        for i, seed in enumerate(seeds):
            padding = (m.get("padding") or {}).get(seed)
            per_seed[seed] = {
                "metric": metric_runs[i] if i < len(metric_runs) else None,
                "samples_per_second": samples[i] if i < len(samples) else None,
                "padding_invariant": padding["invariant"] if padding else None,
                "gradient_first_to_last": (grads.get("first_to_last_trained") or {}).get(seed),
                "gradient_init_first_to_last": (grads.get("first_to_last_init") or {}).get(seed),
            }
            if sweep and sweep.get("threshold") is not None:
                by_length = {int(length): (r["runs"][i] if i < len(r["runs"]) else None)
                             for length, r in sweep["results"].get(m["name"], {}).items()}
                per_seed[seed]["longest_solved"] = longest_solved(by_length, sweep["threshold"], report["task"]["higher_is_better"])
        ts = m.get("thread_scaling")
        out.append({"name": m["name"], "family": m["family"], "registry": m["model"], "parameters": m["parameters"],
                    "thread_scaling": ts["ratio"] if ts else None, "reads_whole_input": m.get("reads_whole_input"),
                    "receptive_field": m.get("receptive_field"), "input_steps_seen": m.get("input_steps_seen"),
                    "runs": per_seed})
    return out


def _warnings(report: dict[str, Any]) -> list[str]:
    env = report["environment"]
    cpus = env.get("logical_cpus") or 1
    loads = [x[0] for x in (env.get("loadavg_at_start"), env.get("loadavg")) if x]
    if loads and max(loads) > cpus:
        hint = ": try --threads 1" if (env.get("torch_threads") or 1) > 1 else ""
        return [f"the machine was busy (1-minute load average up to {max(loads):.1f} on {cpus} CPUs): other processes "
                f"competed for the cores, so times, throughputs and thread scaling are unreliable (with more runnable "
                f"threads than cores, multi-threaded PyTorch can run slower than single-threaded{hint}); accuracies are unaffected"]
    return []


def _all(flags: list[bool]) -> bool | None:
    return all(flags) if flags else None


def _gradients(runs, length: int | None) -> dict[str, Any] | None:
    with_grad = [r for r in runs if r.gradient_trained]
    if not with_grad:
        return None
    first = with_grad[0]
    return {
        "layer": first.gradient_trained["layer"], "seed": first.seed, "length": length,
        "init": first.gradient_init["norms"] if first.gradient_init else None,
        "trained": first.gradient_trained["norms"],
        "first_to_last_init": {r.seed: r.gradient_init["first_to_last"] for r in with_grad if r.gradient_init},
        "first_to_last_trained": {r.seed: r.gradient_trained["first_to_last"] for r in with_grad},
    }


def gradient_length(raw, primary: str, hib: bool, rule: dict | None) -> int | None:
    """The length whose gradient flow a sweep reports: the longest length any model solved (its
    weights learned the task, and the sequence is as long as it gets), else the first length."""
    if not raw.lengths:
        return None
    threshold = (rule or {}).get("below", (rule or {}).get("above"))
    solved_lengths = [r.length for r in raw.runs if r.error is None and threshold is not None
                      and solved(r.test.get(primary), threshold, hib)]
    return max(solved_lengths) if solved_lengths else raw.lengths[0]


def _sweep(raw, primary: str, hib: bool, rule: dict | None) -> dict[str, Any]:
    threshold = (rule or {}).get("below", (rule or {}).get("above"))
    results, longest = {}, {}
    for spec in raw.specs:
        runs = [r for r in raw.runs if r.label == spec.label]
        by_length = {}
        for length in raw.lengths:
            values = [r.test.get(primary) if r.error is None else None for r in runs if r.length == length]
            stats = _stats(values)
            stats["solved"] = solved(stats["mean"], threshold, hib) if threshold is not None else None
            stats["solved_runs"] = [solved(v, threshold, hib) for v in values] if threshold is not None else None
            stats["train_seconds"] = _stats([r.train_seconds for r in runs if r.length == length and r.error is None])["mean"]
            stats["epochs"] = [r.epochs for r in runs if r.length == length]
            grads = [r.gradient_trained for r in runs if r.length == length and r.gradient_trained]
            if grads:
                stats["gradient_first_to_last"] = grads[0]["first_to_last"]
                stats["gradient_norms"] = grads[0]["norms"]
                first_init = next((r.gradient_init for r in runs if r.length == length and r.gradient_init), None)
                stats["gradient_norms_init"] = first_init["norms"] if first_init else None
            by_length[length] = stats
        results[spec.label] = by_length
        if threshold is not None:
            longest[spec.label] = longest_solved({L: s["mean"] for L, s in by_length.items()}, threshold, hib)
    return {"lengths": raw.lengths, "metric": primary, "threshold": threshold,
            "gradient_length": gradient_length(raw, primary, hib, rule),
            "solved_when": (f"{primary} {'>' if hib else '<'} {threshold}" if threshold is not None else None),
            "baseline": (rule or {}).get("baseline_mse", (rule or {}).get("chance")),
            "results": results, "longest_solved": longest}


class CompareReport:
    """The result of `gridseq.compare`: `data` is the report.json dictionary.

    Attributes:
        data: everything, JSON-able (see docs/compare.md for the schema).
        files: paths written by `write` (report.json, report.md, report.html, PNG plots).
    """

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.files: list[Path] = []

    @property
    def models(self) -> list[dict[str, Any]]:
        return self.data["models"]

    @property
    def claims(self) -> list[dict[str, Any]]:
        return self.data["claims"]

    def model(self, name: str) -> dict[str, Any]:
        """The entry of the model labelled `name`."""
        found = next((m for m in self.models if m["name"] == name), None)
        if found is None:
            raise KeyError(f"no model {name!r} in this report; models: {', '.join(m['name'] for m in self.models)}")
        return found

    def metric(self, name: str, metric: str | None = None) -> float | None:
        """The mean test `metric` (default: the task's primary) of model `name`."""
        metric = metric or self.data["task"]["primary"]
        return self.model(name)["metrics"].get(metric, {}).get("mean")

    def verdicts(self) -> dict[str, str]:
        """{claim id: verdict}."""
        return {c["id"]: c["verdict"] for c in self.claims}

    def to_json(self) -> dict[str, Any]:
        return self.data

    def recompute_claims(self) -> list[dict[str, Any]]:
        """Derive the claims card again from the numbers in `data` (e.g. after editing report.json)."""
        self.data["claims"] = evaluate(self.data)
        return self.data["claims"]

    @classmethod
    def read(cls, path: str | Path) -> CompareReport:
        """A report from its report.json (or the folder holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / "report.json"
        return cls(json.loads(path.read_text()))

    def write(self, out: str | Path, *, plots: bool = True) -> list[Path]:
        """Write report.json, report.md, report.html and (with matplotlib) the PNG plots into `out`."""
        from gridseq.compare import plots as plots_mod
        from gridseq.compare import render

        out = Path(out)
        ensure_dir(out)
        images: dict[str, bytes] = {}
        if plots:
            images, note = plots_mod.make_plots(self.data)
            if note:
                self.data["plots_note"] = note
        for name, png in images.items():
            atomic_write_bytes(out / name, png)
        self.data["plots"] = sorted(images)
        atomic_write_text(out / "report.json", json.dumps(self.data, indent=2) + "\n")
        atomic_write_text(out / "report.md", render.markdown(self.data))
        atomic_write_text(out / "report.html", render.html(self.data, images))
        self.files = [out / f for f in FILES] + [out / n for n in sorted(images)]
        return self.files

    def __repr__(self) -> str:
        verdicts = ", ".join(f"{k}: {v}" for k, v in self.verdicts().items())
        return f"CompareReport({self.data['dataset']!r}, models={[m['name'] for m in self.models]}, {verdicts})"
