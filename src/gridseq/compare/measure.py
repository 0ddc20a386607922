"""Speed, memory and padding measurements of one trained model, each stated as what it measures.

Every timing runs in eval mode without gradients (`memory` runs a training step), after
warm-up calls, and reports a median of repetitions, because the machines gridseq runs on are shared
and noisy. Cases that are compared (1 thread vs all threads) are timed in alternating blocks, so a
burst of load from another process hits both alike.

- `latency_ms_b1`: median wall time of one forward pass on one test item.
- `throughput_b256`: items per second of forward passes on 256 test items.
- `thread_scaling`: that throughput with all threads divided by it with one thread.
- `length_scaling`: batch-1 latency at T, 2T and 4T steps (the item tiled along time).
- `memory`: a training step at the training batch size: the bytes autograd saves for backward
  (activations, exact, via saved-tensor hooks), weights, and `train_step_mb` = weights + gradients +
  AdamW's two moments + activations (temporaries come and go on top); beside it the measured growth
  of the process's peak resident memory (Linux VmHWM, reset through /proc/self/clear_refs after
  malloc_trim) over one step, which depends on what the allocator already holds.
- `padding`: whether outputs change when items are padded in a batch (with random values in the
  padding) instead of run alone.
"""

from __future__ import annotations

import copy
import ctypes
import logging
import re
import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from gridseq.data.contract import Split

_logger = logging.getLogger(__name__)


@contextmanager
def threads(n: int):
    """Run the block with `torch.set_num_threads(n)`, restoring the previous number after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def timed_round_robin(cases: dict[str, Callable[[], Any]], *, min_seconds: float = 0.3, min_reps: int = 5,
                      max_reps: int = 200, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each case: warm-up calls, then rounds of one call per case (order rotated)
    until every case has `min_reps` calls and `min_seconds` in total, or `max_reps` calls."""
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    rep = 0
    while rep < max_reps:
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - t0)
        rep += 1
        if rep >= min_reps and all(sum(t) >= min_seconds for t in times.values()):
            break
    return times


def _forward(model: nn.Module, x: Tensor, lengths: Tensor | None) -> Callable[[], Tensor]:
    def run():
        with torch.no_grad():
            return model(x) if lengths is None else model(x, lengths)
    return run


def _items(split: Split, n: int) -> tuple[Tensor, Tensor | None]:
    """`n` items of `split` (repeated if it has fewer), padded to their longest."""
    index = torch.arange(n) % len(split)
    batch = split.batch(index)
    return batch.x, batch.lengths


def speed(model: nn.Module, split: Split, *, all_threads: int | None = None) -> dict[str, Any]:
    """Batch-1 latency, batch-256 throughput, and the throughput with 1 vs all threads.

    Returns:
        {"latency_ms_b1", "throughput_b256", "thread_scaling": {"threads": n, "throughput_1",
        "throughput_n", "ratio"}}.
    """
    all_threads = all_threads or torch.get_num_threads()
    model.eval()
    x1, l1 = _items(split, 1)
    one = timed_round_robin({"b1": _forward(model, x1, l1)}, min_seconds=0.3, min_reps=10, max_reps=300, warmup=3)["b1"]
    x, lengths = _items(split, 256)
    run = _forward(model, x, lengths)
    run()  # warm-up
    per_call: dict[int, list[float]] = {1: [], all_threads: []}
    for _ in range(3):  # blocks of calls per thread count, alternating, so load bursts hit both
        for n in (1, all_threads) if all_threads != 1 else (1,):
            with threads(n):
                t = timed_round_robin({"b256": run}, min_seconds=0.15, min_reps=2, max_reps=20, warmup=1)["b256"]
            per_call[n] += t
    t = {"1": per_call[1], "n": per_call[all_threads]}
    thr_1, thr_n = 256 / statistics.median(t["1"]), 256 / statistics.median(t["n"])
    return {
        "latency_ms_b1": 1000 * statistics.median(one),
        "throughput_b256": thr_n,
        "thread_scaling": {"threads": all_threads, "throughput_1": thr_1, "throughput_n": thr_n, "ratio": thr_n / thr_1},
    }


def length_scaling(model: nn.Module, split: Split, factors: tuple[int, ...] = (1, 2, 4)) -> dict[str, Any] | None:
    """Batch-1 latency at T·f steps for each factor f (one test item tiled along time).

    Returns:
        {"lengths": [...], "latency_ms": [...], "ratio": latency(4T) / latency(T)}, or None for
        data without a time axis (images).
    """
    if split.x.dim() != 3:
        return None
    model.eval()
    x1, l1 = _items(split, 1)
    steps = int(l1[0]) if l1 is not None else x1.shape[1]
    base = x1[:, :steps]
    cases, lengths = {}, []
    for f in factors:
        x = base.repeat(1, f, 1)  # (1, f·T, F)
        lengths.append(x.shape[1])
        cases[str(f)] = _forward(model, x, torch.tensor([x.shape[1]]))
    t = timed_round_robin(cases, min_seconds=0.2, min_reps=5, max_reps=100, warmup=2)
    ms = [1000 * statistics.median(t[str(f)]) for f in factors]
    return {"lengths": lengths, "latency_ms": ms, "ratio": ms[-1] / ms[0]}


# ---- memory ----------------------------------------------------------------------------------------

def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def _reset_peak() -> bool:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap pages back, so new allocations show
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident size (Linux >= 4.0)
        return True
    except OSError:
        return False


def saved_activations(model: nn.Module, loss_of: Callable[[nn.Module], Tensor]) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of `loss_of(model)` (each storage
    counted once, the model's own weights excluded): a training step's activation memory."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    sizes: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        try:
            storage = t.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
        except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. sparse, nested)
            key, size = id(t), t.numel() * t.element_size()
        if key not in weights:
            sizes[key] = max(sizes.get(key, 0), size)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_of(model)
    del loss
    return sum(sizes.values())


def memory(model: nn.Module, loss_of: Callable[[nn.Module], Tensor]) -> dict[str, Any]:
    """A training step's memory at the training batch size, in MiB (see the module docstring).

    Args:
        model: the model; a deep copy is trained so the original is untouched.
        loss_of: `loss_of(model)` runs the forward pass of one training batch and returns the loss.
    Returns:
        {"activations_mb": exact bytes saved for backward, "weights_mb", "train_step_mb": weights +
        gradients + AdamW's two moments + activations, "rss_growth_mb": measured growth of the process's
        peak resident memory over one step (Linux; None elsewhere; noisy, allocator-dependent)}.
    """
    work = copy.deepcopy(model).train()
    weights = sum(p.numel() * p.element_size() for p in work.parameters() if p.requires_grad)
    activations = saved_activations(work, loss_of)
    optimizer = torch.optim.AdamW(work.parameters(), lr=1e-6)

    def step() -> None:
        loss = loss_of(work)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: optimizer state and allocator pools exist from here on
    rss = None
    before = _status_kb("VmRSS")
    if before is not None and _reset_peak():
        step()
        rss = max(0, (_status_kb("VmHWM") or before) - before) / 1024
    mib = 2**20
    return {"activations_mb": activations / mib, "weights_mb": weights / mib,
            "train_step_mb": (4 * weights + activations) / mib, "rss_growth_mb": rss}


# ---- padding invariance -------------------------------------------------------------------------------

def _valid_outputs(out: Tensor, length: int) -> Tensor:
    return out[:length] if out.dim() >= 2 else out  # per-step outputs (T, K): only valid steps count


def padding_invariance(model: nn.Module, split: Split, *, variable_length: bool, n: int = 32, seed: int = 0) -> dict[str, Any] | None:
    """Whether each item's output is the same alone and inside a padded batch.

    Variable-length data use the test items' own lengths; fixed-length data are cut to random lengths
    between T/2 and T first. The padding is filled with random values (not zeros), so a model that
    reads padding shows it.

    Returns:
        {"invariant": bool, "max_abs_diff": float, "items": n, "lengths": "own" | "cut to T/2..T"},
        or None for data without a time axis (images) or models that take no lengths.
    """
    if split.x.dim() != 3 or len(split) == 0:
        return None
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    n = min(n, len(split))
    batch = split.batch(torch.arange(n))
    x, lengths = batch.x.clone(), batch.lengths
    steps = x.shape[1]
    if lengths is None or not variable_length:
        low = max(1, steps // 2)
        lengths = torch.randint(low, steps + 1, (n,), generator=gen)
        lengths[0] = steps  # one item keeps the full length, so the batch is as long as the data
    padded = x.clone()
    mask = torch.arange(steps)[None, :] >= lengths[:, None]  # (B, T) True at padding
    noise = torch.randn(padded.shape, generator=gen) * (x.std() + 1)
    padded[mask] = noise[mask]
    try:
        with torch.no_grad():
            together = model(padded, lengths)
            alone = [model(x[i : i + 1, : int(lengths[i])], lengths[i : i + 1])[0] for i in range(n)]
    except TypeError:
        return None
    diff, scale = 0.0, 1.0
    for i in range(n):
        a = _valid_outputs(alone[i], int(lengths[i]))
        b = _valid_outputs(together[i], int(lengths[i]))
        if a.shape != b.shape:
            return {"invariant": False, "max_abs_diff": float("inf"), "items": n,
                    "lengths": "own" if variable_length else "cut to T/2..T"}
        diff = max(diff, float((a - b).abs().max()))
        scale = max(scale, float(a.abs().max()))
    return {"invariant": diff <= 1e-4 * scale, "max_abs_diff": diff, "items": n,
            "lengths": "own" if variable_length else "cut to T/2..T"}


def reads_whole_input(model: nn.Module, split: Split, factor: int = 2, seed: int = 0) -> bool | None:
    """Whether the output depends on steps beyond the data's length T (the split's longest item): the
    longest test item is tiled to factor·T steps and everything after step T replaced by noise. False
    means the model cuts inputs to T (mlp, cnn)."""
    if split.x.dim() != 3 or len(split) == 0:
        return None
    model.eval()
    steps = split.x.shape[1]  # T: the longest item, the length fixed-size models are built for
    longest = int(torch.argmax(split.lengths)) if split.lengths is not None else 0
    item = split.batch(torch.tensor([longest])).x  # (1, L, F), L <= T its own length
    long = item.repeat(1, -(-factor * steps // item.shape[1]), 1)[:, : factor * steps]  # (1, factor·T, F)
    other = long.clone()
    gen = torch.Generator().manual_seed(seed)
    other[:, steps:] = torch.randn(other[:, steps:].shape, generator=gen)
    length = torch.tensor([long.shape[1]])
    try:
        with torch.no_grad():
            a, b = model(long, length), model(other, length)
    except TypeError:
        return None
    if a.dim() == 3:
        return None  # per-step outputs: every step reads its own input; the memory probes ask the question
    return bool((a - b).abs().max() > 1e-6)

