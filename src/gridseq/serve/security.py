"""ASGI middleware in front of the app: bearer-token authentication and the request body size limit.

Both answer before the app sees the request: a request without the right token gets 401 (a WebSocket
handshake too) without its body being read, and a body declared larger than the limit gets 413 before it
is received. (Bodies sent without a Content-Length are counted as they arrive by the endpoint.)

The token is compared in constant time, as SHA-256 digests so that not even its length leaks, and it is
never logged: neither the expected token nor what a client sent appears in any message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

_UNAUTHORIZED = {"detail": "missing or invalid bearer token; send the header `Authorization: Bearer <token>`.", "error": "Unauthorized"}


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


async def send_json(send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = (), *, websocket: bool = False) -> None:
    """Send a complete JSON HTTP response (as the denial of a WebSocket handshake when `websocket`)."""
    data = json.dumps(body).encode()
    prefix = "websocket.http.response" if websocket else "http.response"
    await send({"type": f"{prefix}.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *headers]})
    await send({"type": f"{prefix}.body", "body": data})


class BearerAuth:
    """Require `Authorization: Bearer <token>` on every HTTP request and WebSocket handshake.

    Args:
        app: the ASGI app to protect.
        token: the secret (printable ASCII).
    """

    def __init__(self, app, token: str):
        self.app = app
        self._expected = _digest(b"Bearer " + token.encode("ascii"))
        logging.getLogger("uvicorn.error").addFilter(_denied_handshake)

    def __repr__(self) -> str:  # never show the token, not even its digest
        return f"{type(self).__name__}(app={self.app!r})"

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        sent = _header(scope, b"authorization") or b""
        if hmac.compare_digest(_digest(sent), self._expected):
            return await self.app(scope, receive, send)
        challenge = [(b"www-authenticate", b'Bearer realm="gridseq"')]
        if kind == "http":
            return await send_json(send, 401, _UNAUTHORIZED, challenge)
        if "websocket.http.response" in scope.get("extensions", {}):
            return await send_json(send, 401, _UNAUTHORIZED, challenge, websocket=True)
        await send({"type": "websocket.close", "code": 1008})  # the server cannot send a 401: close (403)


class BodyLimit:
    """413 for an HTTP request whose Content-Length exceeds `max_bytes`, before its body is read."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            declared = _header(scope, b"content-length")
            if declared is not None:
                try:
                    size = int(declared)
                except ValueError:
                    return await send_json(send, 400, {"detail": "the Content-Length header is not a number.", "error": "BadRequest"})
                if size > self.max_bytes:
                    return await send_json(send, 413, too_large(self.max_bytes))
        return await self.app(scope, receive, send)


def too_large(max_bytes: int) -> dict:
    return {"detail": f"the request body is over this server's limit of {max_bytes} bytes; send fewer or smaller inputs.",
            "error": "PayloadTooLarge"}


def _denied_handshake(record: logging.LogRecord) -> bool:
    # uvicorn's sans-I/O WebSocket protocol answers a handshake denied with an HTTP response (our 401)
    # correctly, then logs that the app "returned without completing handshake"; that line is noise here
    return record.getMessage() != "ASGI callable returned without completing handshake."
