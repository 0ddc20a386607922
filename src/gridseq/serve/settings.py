"""`ServeSettings`: everything `gridseq serve` can be told, with the defaults a safe local server needs."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from gridseq._validation import check_positive_int
from gridseq.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class ServeSettings:
    """How to serve: which runs, where, and every limit.

    Args:
        runs: {URL name: run directory}; see `parse_runs`.
        host: the interface to bind; 127.0.0.1 (this machine only) unless you mean to expose it.
            Default: "127.0.0.1".
        port: TCP port (0 picks a free one). Default: 8000.
        token: the bearer token every request must carry, or None for no authentication. Never
            printed or logged (it is left out of `repr`). Default: None.
        max_body_bytes: the largest request body (413 beyond it); also the largest WebSocket message.
            Default: 10 MiB.
        batching: merge concurrent requests to one model into one forward pass. Default: True.
        max_batch: items one merged forward pass may hold. Default: 64.
        max_wait_ms: how long the first request of a batch waits for others to join it. Default: 2.
        max_items: items one request may hold. Default: 256.
        max_length: steps of a sequence / tokens of a text; None derives it from the model
            (4x its training length, at least 512). Default: None.
        max_pixels: H·W of one image. Default: 2048·2048.
        max_generate: tokens one language-model request generates, steps one forecast covers. Default: 1000.
        max_sessions: concurrent WebSocket streams (all models together). Default: 16.
        session_steps: steps one stream may take before it must reset. Default: 100,000.
        idle_timeout: seconds a stream may stay silent before the server closes it. Default: 60.
        shutdown_timeout: seconds in-flight requests get to finish on shutdown. Default: 30.
        threads: torch intra-op threads of a serving process (`run`; None: torch's default; `create_app`
            alone leaves torch as it is). One keeps small models fast while the
            event loop shares the cores (on 2 busy cores a 2-thread forward pass of the digits CNN took
            50x longer than a 1-thread one); raise it for large models on idle machines. Default: 1.
    """

    runs: dict[str, str]
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = field(default=None, repr=False)
    max_body_bytes: int = 10 * 1024 * 1024
    batching: bool = True
    max_batch: int = 64
    max_wait_ms: float = 2.0
    max_items: int = 256
    max_length: int | None = None
    max_pixels: int = 2048 * 2048
    max_generate: int = 1000
    max_sessions: int = 16
    session_steps: int = 100_000
    idle_timeout: float = 60.0
    shutdown_timeout: float = 30.0
    threads: int | None = 1

    def __post_init__(self) -> None:
        if not self.runs:
            raise ConfigError("serve needs at least one run directory.")
        for key in ("max_body_bytes", "max_batch", "max_items", "max_pixels", "max_generate", "max_sessions", "session_steps"):
            check_positive_int(getattr(self, key), key)
        check_positive_int(self.port, "port", minimum=0)
        if self.max_length is not None:
            check_positive_int(self.max_length, "max_length")
        if self.threads is not None:
            check_positive_int(self.threads, "threads")
        for key in ("max_wait_ms", "idle_timeout", "shutdown_timeout"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{key} must be a number >= 0, got {value!r}.")
        if self.token is not None and not self.token:
            raise ConfigError("the token is empty; put a secret in the token file (e.g. `openssl rand -hex 32`).")


def parse_runs(specs: list[str]) -> dict[str, str]:
    """{name: run directory} from `RUN_DIR` or `NAME=RUN_DIR` arguments; the name defaults to the
    directory's own name. ConfigError for a missing directory, a bad or duplicate name."""
    runs: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not _NAME.match(name) or Path(spec).exists():
            name, path = Path(spec.rstrip("/\\")).name, spec
        if not _NAME.match(name):
            raise ConfigError(f"cannot name a model {name!r} in URLs; give it a name: NAME={path} (letters, digits, _ . -).")
        if not Path(path).is_dir():
            raise ConfigError(f"{path} is not a directory; pass run directories written by `gridseq train` (e.g. runs/digits-cnn-s0).")
        if name in runs:
            raise ConfigError(f"two runs are named {name!r}; name them apart: NAME=RUN_DIR.")
        runs[name] = str(Path(path).resolve())
    return runs


def read_token_file(path: str | os.PathLike) -> str:
    """The bearer token in `path` (surrounding whitespace stripped). The token itself never appears in
    messages. ConfigError if the file is missing, empty or holds more than one line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the token file {path}: {type(e).__name__}.") from None
    token = text.strip()
    if not token:
        raise ConfigError(f"the token file {path} is empty; put a secret in it (e.g. `openssl rand -hex 32 > {path}`).")
    if any(c.isspace() for c in token) or not token.isprintable() or not token.isascii():
        raise ConfigError(f"the token in {path} holds whitespace, control or non-ASCII characters; use one line of "
                          f"printable ASCII (it travels in an HTTP header).")
    return token
