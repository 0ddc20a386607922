"""Micro-batching: concurrent requests to one model share one forward pass.

Each request's inputs are prepared (and checked) on their own; the batcher queues the prepared
batches, and a single worker task takes the first one, waits at most `max_wait` for others to join
until `max_batch` items are queued, merges those that fit together (`batch_key`),
runs the model once in the model's own thread and hands every request its rows. Under load the queue
fills while a forward pass runs, so the next pass is full at once: throughput grows with
concurrency. The wait applies only under load (the previous pass was shared, or requests queued up
while it ran), so a lone client never pays it.

If a merged pass fails, every request of it is rerun alone, so one bad request cannot fail others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from gridseq.data.contract import Batch
from gridseq.predict import Predictor

_logger = logging.getLogger(__name__)


@dataclass
class _Pending:
    batch: Batch
    options: dict[str, Any]
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Queue prepared batches for one model and run them merged.

    Args:
        predictor: the model to run.
        executor: where the model runs (one thread per model keeps its passes in order).
        max_batch: items one merged pass may hold (a single larger request still runs whole).
        max_wait: seconds the first request of a pass waits for company; 0 takes only what is queued.
        enabled: False runs every request on its own (no merging), for comparison.
    """

    def __init__(self, predictor: Predictor, executor: Executor, *, max_batch: int = 64, max_wait: float = 0.002,
                 enabled: bool = True):
        self.predictor = predictor
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.enabled = enabled
        self.passes = 0  # forward passes run, and the items they held (for /models stats)
        self.items = 0
        self._busy = False  # whether requests are arriving faster than passes run
        self._queue: asyncio.Queue[_Pending | None] | None = None
        self._worker: asyncio.Task | None = None

    async def submit(self, batch: Batch, options: dict[str, Any]) -> dict[str, Any]:
        """The decoded predictions for `batch` (raises what decoding it alone would raise)."""
        loop = asyncio.get_running_loop()
        if not self.enabled:
            return (await loop.run_in_executor(self.executor, self._run, [_Pending(batch, options, None)]))[0].unwrap()
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._work(), name=f"gridseq-batcher-{self.predictor.name}")
        pending = _Pending(batch, options, loop.create_future())
        self._queue.put_nowait(pending)
        return await pending.future

    async def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        if self._worker is not None:
            self._queue.put_nowait(None)
            await self._worker
            self._worker = None

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            group, items = [first], len(first.batch)
            # wait for company only under load (the last pass was shared, or requests queued behind it):
            # a lone client never pays max_wait
            deadline = loop.time() + (self.max_wait if self._busy else 0.0)
            while items < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        nxt = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                if nxt is None:
                    stopping = True
                    break
                group.append(nxt)
                items += len(nxt.batch)
            self._busy = len(group) > 1
            by_key: dict[tuple, list[_Pending]] = defaultdict(list)
            for p in group:
                by_key[batch_key(p.batch, p.options)].append(p)
            for members in by_key.values():
                try:
                    results = await loop.run_in_executor(self.executor, self._run, members)
                except Exception as e:  # the executor is gone (shutdown): fail these requests, keep going
                    results = [_Result(error=e)] * len(members)
                for p, result in zip(members, results):
                    if not p.future.done():  # the client may have gone away
                        if result.error is not None:
                            p.future.set_exception(result.error)
                        else:
                            p.future.set_result(result.value)
            self._busy = self._busy or not self._queue.empty()

    def _run(self, members: list[_Pending]) -> list[_Result]:
        """One merged forward pass (in the model's thread); each request decoded from its rows."""
        predictor = self.predictor
        merged = concat_batches([p.batch for p in members])
        try:
            output = predictor.forward(merged, members[0].options)
            parts = split_rows(merged, output, [len(p.batch) for p in members])
        except Exception as e:
            if len(members) == 1:
                return [_Result(error=e)]
            _logger.debug("a merged pass of %d requests failed (%s); running them one by one", len(members), e)
            return [self._run([p])[0] for p in members]
        self.passes += 1
        self.items += len(merged)
        results = []
        for p, (batch, out) in zip(members, parts):
            try:
                results.append(_Result(value=predictor.decode(out, batch, p.options)))
            except Exception as e:
                results.append(_Result(error=e))
        return results


@dataclass
class _Result:
    value: Any = None
    error: BaseException | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


# ---- merging prepared batches (micro-batching) --------------------------------------------------------

def batch_key(batch: Batch, options: dict[str, Any]) -> tuple:
    """Batches with equal keys can be concatenated and run in one model call: the same per-item shape
    (any length when they carry lengths) and the same options that change the forward pass."""
    shape = tuple(batch.x.shape[2:]) if batch.lengths is not None else tuple(batch.x.shape[1:])
    return (batch.lengths is not None, shape, batch.x.dtype, options.get("beam", 1))


def concat_batches(batches: list[Batch]) -> Batch:
    """One batch from batches with the same `batch_key`, padding along time when they carry lengths."""
    if len(batches) == 1:
        return batches[0]
    if batches[0].lengths is None:
        return Batch(torch.cat([b.x for b in batches]))
    time = max(b.x.shape[1] for b in batches)
    xs = [torch.nn.functional.pad(b.x, (0, 0) * (b.x.dim() - 2) + (0, time - b.x.shape[1])) for b in batches]
    return Batch(torch.cat(xs), None, torch.cat([b.lengths for b in batches]))


def split_rows(batch: Batch, output: Tensor, sizes: list[int]) -> list[tuple[Batch, Tensor]]:
    """The (batch, output) pair of each original batch, from the merged batch and its output."""
    out, start = [], 0
    for n in sizes:
        rows = slice(start, start + n)
        lengths = None if batch.lengths is None else batch.lengths[rows]
        out.append((Batch(batch.x[rows], None, lengths), output[rows]))
        start += n
    return out
