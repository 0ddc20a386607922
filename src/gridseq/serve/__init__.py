"""`gridseq serve`: run directories behind an HTTP + WebSocket API (FastAPI + uvicorn, the `serve` extra).

    gridseq serve runs/digits-cnn-s0 runs/walks-lstm-s0 --token-file token.txt

    >>> from gridseq.serve import ServeSettings, create_app
    >>> app = create_app(ServeSettings(runs={"digits": "runs/digits-cnn-s0"}))  # doctest: +SKIP

See docs/serving.md for the API, the limits and the security model.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from dataclasses import asdict

from gridseq.errors import ConfigError
from gridseq.serve.settings import ServeSettings, parse_runs, read_token_file

_logger = logging.getLogger(__name__)
_ENV = "GRIDSEQ_SERVE_SETTINGS"  # how `--workers N` hands the settings (never the token) to each worker

__all__ = ["ServeSettings", "create_app", "parse_runs", "read_token_file", "run"]


def create_app(settings: ServeSettings, registry=None):
    """The ASGI app for `settings` (see gridseq.serve.app)."""
    from gridseq.serve.app import create_app as _create

    return _create(settings, registry)


def check_installed() -> None:
    """ConfigError naming the extra to install if FastAPI or uvicorn is missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"serving needs FastAPI and uvicorn ({e.name} is missing); install them with: pip install 'gridseq[serve]'.") from None


def run(settings: ServeSettings, *, workers: int = 1, token_file: str | None = None, access_log: bool = True,
        log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM let in-flight requests finish first).

    Args:
        settings: what to serve and how.
        workers: server processes; each loads every model (more than 1 needs `token_file`, not a token
            in `settings`, when authenticating).
        token_file: the token's file, re-read by each worker process.
        access_log: log one line per request (method, path, status; never headers).
        log_level: uvicorn's log level.
    """
    import uvicorn

    check_installed()
    _warn_if_exposed(settings)
    _set_threads(settings)
    common = dict(host=settings.host, port=settings.port, ws_max_size=settings.max_body_bytes, access_log=access_log,
                  timeout_graceful_shutdown=int(round(settings.shutdown_timeout)) or None, log_level=log_level, lifespan="on")
    if workers > 1:
        env = {k: v for k, v in asdict(settings).items() if k != "token"}
        os.environ[_ENV] = json.dumps({**env, "token_file": token_file if settings.token else None})
        uvicorn.run("gridseq.serve:app_from_env", factory=True, workers=workers, **common)
        return
    uvicorn.Server(uvicorn.Config(create_app(settings), **common)).run()


def app_from_env():
    """The app of one `--workers` process, from the settings `run` put in the environment."""
    data = json.loads(os.environ[_ENV])
    token_file = data.pop("token_file", None)
    settings = ServeSettings(**data, token=read_token_file(token_file) if token_file else None)
    _set_threads(settings)
    return create_app(settings)


def _set_threads(settings: ServeSettings) -> None:
    # process-wide, so only a serving process sets it (create_app in a notebook or test leaves torch alone)
    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)


def _warn_if_exposed(settings: ServeSettings) -> None:
    try:
        loopback = ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        loopback = settings.host == "localhost"
    if not loopback and not settings.token:
        _logger.warning("serving on %s without --token-file: anyone who can reach port %d can use these models.",
                        settings.host, settings.port)
