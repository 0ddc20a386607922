"""The served models: each run directory loaded in the background, with its limits, thread and batcher.

Loading reads config.json and model.safetensors only (`gridseq.predict.Predictor.from_run`, which opens
the directory with `gridseq.runs.Run`), so a run directory can never execute code. Until every model is loaded `/health` answers 503 "loading"; a model
that fails to load answers 503 with the reason and the others keep serving.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gridseq.errors import GridseqError
from gridseq.predict import Predictor
from gridseq.serve.batcher import MicroBatcher
from gridseq.serve.limits import limits_for
from gridseq.serve.settings import ServeSettings
from gridseq.serve.stream import streamable

_logger = logging.getLogger(__name__)

LOADING, READY, FAILED = "loading", "ready", "failed"


@dataclass
class ServedModel:
    """One run directory being served."""

    name: str
    run_dir: str
    state: str = LOADING
    error: str | None = None
    predictor: Predictor | None = None
    executor: ThreadPoolExecutor | None = field(default=None, repr=False)
    batcher: MicroBatcher | None = field(default=None, repr=False)
    stream_reason: str = ""

    def describe(self) -> dict[str, Any]:
        if self.predictor is None:
            out = {"name": self.name, "model": "", "task": "", "state": self.state}
            return {**out, "error": self.error} if self.error else out
        info = self.predictor.describe()
        stream = {"streaming": not self.stream_reason, **({"streaming_reason": self.stream_reason} if self.stream_reason else {})}
        batching = {"passes": self.batcher.passes, "items": self.batcher.items} if self.batcher else None
        return {**info, "state": self.state, **stream, **({"batching": batching} if batching else {})}


class ModelRegistry:
    """The models of one server, loaded by `start_loading` on a background thread.

    Args:
        settings: the server's settings (runs, limits, batching).
    """

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.models = {name: ServedModel(name, path) for name, path in settings.runs.items()}
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return all(m.state == READY for m in self.models.values())

    def status(self) -> str:
        states = {m.state for m in self.models.values()}
        return LOADING if LOADING in states else FAILED if FAILED in states else "ok"

    def start_loading(self) -> None:
        """Load every model on a background thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._load_all, name="gridseq-loader", daemon=True)
            self._thread.start()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Block until loading is over (for tests and scripts); whether it is."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is not None and not self._thread.is_alive()

    def _load_all(self) -> None:
        for served in self.models.values():
            start = time.perf_counter()
            try:
                predictor = Predictor.from_run(served.run_dir, name=served.name)
                predictor.limits = limits_for(predictor.info, self.settings)
            except GridseqError as e:
                served.error, served.state = str(e), FAILED
                _logger.error("cannot serve %s: %s", served.name, e)
                continue
            except Exception as e:  # a bug, but one model must not take the server down
                served.error, served.state = f"{type(e).__name__}: {e}", FAILED
                _logger.exception("cannot serve %s", served.name)
                continue
            served.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gridseq-{served.name}")
            if predictor.batchable:
                s = self.settings
                served.batcher = MicroBatcher(predictor, served.executor, max_batch=s.max_batch,
                                              max_wait=s.max_wait_ms / 1000, enabled=s.batching)
            served.stream_reason = streamable(predictor)[1]
            served.predictor = predictor
            served.state = READY
            _logger.info("serving %s (%s, %s) from %s, loaded in %.2f s", served.name, predictor.describe()["model"],
                         predictor.info.task, served.run_dir, time.perf_counter() - start)

    async def close(self) -> None:
        """Drain every batcher, then stop the model threads (after in-flight work)."""
        for served in self.models.values():
            if served.batcher is not None:
                await served.batcher.close()
            if served.executor is not None:
                served.executor.shutdown(wait=True)
