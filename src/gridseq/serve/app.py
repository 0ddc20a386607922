"""The FastAPI app: health, model listing, prediction and WebSocket streaming.

    GET  /health                    200 {"status": "ok"} once every model is loaded; 503 while loading
    GET  /models                    every model: name, task, input spec, classes, options, streaming
    GET  /models/{name}             one of them
    POST /models/{name}/predict     {"inputs": [...], "lengths": [...]?, "options": {...}?} -> predictions
    WS   /models/{name}/stream      JSON messages {"input": step} / {"reset": true} -> the output per step
    GET  /docs, /openapi.json       the OpenAPI schema, generated from gridseq.serve.schemas

Status codes: 400 a body that is not UTF-8 JSON, 401 a missing or wrong bearer token, 404 an unknown
model, 413 a body over the limit, 415 a non-JSON content type, 422 a request the model cannot take (the
gridseq message says why), 503 a model still loading or failed. Every error body is
`{"detail": message, "error": type}`. A 500 is a bug.

WebSocket streams close with 1000 when the client is done, 1001 after `idle_timeout` of silence or on
shutdown, 1003 for a model that cannot stream, 1008 at the session's step limit, 1013 when the server
already holds `max_sessions` streams (each with a JSON {"error": reason} message first).
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridseq import __version__
from gridseq._validation import did_you_mean
from gridseq.errors import DataError, GridseqError
from gridseq.serve import contract, schemas
from gridseq.serve.registry import FAILED, LOADING, ModelRegistry, ServedModel
from gridseq.serve.security import BearerAuth, BodyLimit, too_large
from gridseq.serve.settings import ServeSettings
from gridseq.serve.stream import StreamSession

_logger = logging.getLogger(__name__)

INLINE_BODY = 64 * 1024  # smaller bodies are prepared on the event loop; larger ones on a worker thread
_ERRORS = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge",
           415: "UnsupportedMediaType", 422: "UnprocessableEntity", 503: "ServiceUnavailable"}
_ERROR_RESPONSES = {code: {"model": schemas.ErrorResponse, "description": name} for code, name in _ERRORS.items()
                    if code not in (405,)}
PREDICT_STATUSES = (400, 401, 404, 413, 415, 422, 503)


class ApiError(Exception):
    """An HTTP error with a readable message (and the gridseq error type when there is one)."""

    def __init__(self, status: int, detail: str, error: str | None = None):
        self.status, self.detail, self.error = status, detail, error or _ERRORS.get(status, "Error")


def create_app(settings: ServeSettings, registry: ModelRegistry | None = None):
    """The ASGI app serving `settings.runs`, wrapped in the body limit and (with a token) authentication.

    Args:
        settings: runs, limits, batching, token.
        registry: the models (default: a new `ModelRegistry(settings)`); loading starts with the app.
    Returns:
        An ASGI app; the FastAPI app inside is `.fastapi` on the returned object when wrapped.
    """
    registry = registry or ModelRegistry(settings)
    sessions = {"open": 0}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        registry.start_loading()
        yield
        await registry.close()  # uvicorn has let in-flight requests finish before this point

    app = FastAPI(title="gridseq", version=__version__, lifespan=lifespan,
                  description="Predictions and streaming from gridseq run directories.")
    app.state.registry = registry
    app.state.settings = settings

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return JSONResponse({"detail": exc.detail, "error": exc.error}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"detail": str(exc.detail), "error": _ERRORS.get(exc.status_code, "Error")},
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        return JSONResponse({"detail": f"invalid request: {message}.", "error": "UnprocessableEntity"}, status_code=422)

    def responses(*codes: int) -> dict:
        """The documented error responses among `codes` (401 only when the server has a token)."""
        return {code: _ERROR_RESPONSES[code] for code in codes if code != 401 or settings.token}

    def lookup(name: str, *, ready: bool = True) -> ServedModel:
        served = registry.models.get(name)
        if served is None:
            raise ApiError(404, f"no model named {name!r}.{did_you_mean(name, registry.models)} "
                                f"Served models: {', '.join(registry.models)} (GET /models).")
        if ready and served.state == LOADING:
            raise ApiError(503, f"model {name!r} is still loading; retry shortly (GET /health says when every model is ready).")
        if ready and served.state == FAILED:
            raise ApiError(503, f"model {name!r} failed to load: {served.error}")
        return served

    @app.get("/health", response_model=schemas.Health, responses={503: {"model": schemas.Health}, **responses(401)})
    async def health():
        """Whether every model is loaded: 200 "ok", or 503 "loading" / "failed"."""
        body = {"status": registry.status(), "models": {n: m.state for n, m in registry.models.items()}}
        return JSONResponse(body, status_code=200 if registry.ready else 503)

    @app.get("/models", response_model=schemas.ModelList, responses=responses(401))
    async def list_models():
        """Every served model: task, input spec, classes, options, whether it streams."""
        return JSONResponse({"models": [m.describe() for m in registry.models.values()]})

    @app.get("/models/{name}", response_model=schemas.ModelInfo, responses=responses(401, 404))
    async def model_info(name: str):
        """One served model (see GET /models)."""
        return JSONResponse(lookup(name, ready=False).describe())

    @app.post("/models/{name}/predict", response_model=schemas.PredictResponse,
              responses=responses(*PREDICT_STATUSES),
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}}}})
    async def predict(name: str, request: Request):
        """Predict for a batch of inputs: `{"inputs": [...], "lengths": [...]?, "options": {...}?}`."""
        served = lookup(name)
        body = await _read_body(request, settings.max_body_bytes)
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if ctype != "application/json" and not ctype.endswith("+json"):
            # JSON only: a browser page cannot send that cross-origin without a CORS preflight, which this server refuses
            raise ApiError(415, f"send the request as JSON with Content-Type: application/json (curl: -H 'Content-Type: "
                                f"application/json'), got {ctype!r}.")
        try:
            req = schemas.parse_predict(body)
        except DataError as e:
            raise ApiError(400, str(e)) from None
        except ValidationError as e:
            malformed, message = schemas.describe_errors(e)
            raise ApiError(400 if malformed else 422, message) from None
        predictor = served.predictor
        try:
            options = predictor.check_options(req.options.model_dump(exclude_none=True))
            if served.batcher is not None:
                prepare = partial(predictor.prepare, req.inputs, req.lengths, invert=options.get("invert", False))
                batch = prepare() if len(body) <= INLINE_BODY else await asyncio.to_thread(prepare)
                result = await served.batcher.submit(batch, options)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(served.executor, partial(predictor.predict, req.inputs, req.lengths, **options))
        except GridseqError as e:
            raise ApiError(422, " ".join(str(e).split()), type(e).__name__) from None
        return JSONResponse({"model": name, "task": predictor.info.task, **result})

    @app.websocket("/models/{name}/stream")
    async def stream(websocket: WebSocket, name: str):
        """One stream per connection: send `{"input": step}` (or `{"reset": true}`), receive the output for it."""
        await websocket.accept()
        try:
            served = lookup(name)
        except ApiError as e:
            return await _close(websocket, 1008 if e.status == 404 else 1013, e.detail)
        if served.stream_reason:
            return await _close(websocket, 1003, served.stream_reason)
        if sessions["open"] >= settings.max_sessions:
            return await _close(websocket, 1013, f"this server already holds its limit of {settings.max_sessions} streams; retry later.")
        sessions["open"] += 1
        try:
            await _serve_stream(websocket, served, settings)
        finally:
            sessions["open"] -= 1

    def openapi():
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            request = schemas.PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(request.pop("$defs", {}))
            components["PredictRequest"] = request
            if settings.token:
                schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
                schema["security"] = [{"bearer": []}]
            schema["paths"].update(contract.model_operations(schema, registry.models))
            if not registry.ready:
                return schema  # each model's own schema is known once it is loaded: do not cache this one
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    outer = BodyLimit(app, settings.max_body_bytes)
    if settings.token:
        outer = BearerAuth(outer, settings.token)
    outer.fastapi = app
    return outer


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, counted as it arrives (a chunked body has no Content-Length for BodyLimit to check)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, too_large(limit)["detail"])
        chunks.append(chunk)
    return b"".join(chunks)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        await websocket.send_json({"error": reason})
        await websocket.close(code=code, reason=reason[:120])  # a close reason is at most 123 bytes
    except (WebSocketDisconnect, RuntimeError):
        pass


async def _serve_stream(websocket: WebSocket, served: ServedModel, settings: ServeSettings) -> None:
    try:
        await _stream_loop(websocket, StreamSession(served.predictor, max_steps=settings.session_steps), served, settings)
    except WebSocketDisconnect:
        pass  # the client went away mid-reply


async def _stream_loop(websocket: WebSocket, session: StreamSession, served: ServedModel, settings: ServeSettings) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            message = await asyncio.wait_for(websocket.receive(), settings.idle_timeout or None)
        except TimeoutError:
            return await _close(websocket, 1001, f"no message for {settings.idle_timeout:g} s; the stream is closed.")
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            await websocket.send_json({"error": "send JSON text messages: {\"input\": step} or {\"reset\": true}."})
            continue
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as e:
            await websocket.send_json({"error": f"the message is not valid JSON ({type(e).__name__}: {str(e)[:80]})."})
            continue
        if not isinstance(data, dict) or not (data.keys() == {"input"} or data == {"reset": True}):
            await websocket.send_json({"error": "expected {\"input\": step} (one step: F numbers, or one token) or {\"reset\": true}."})
            continue
        if data.get("reset") is True:
            session.reset()
            await websocket.send_json({"step": 0, "reset": True})
            continue
        try:
            out = await loop.run_in_executor(served.executor, session.step, data["input"])
        except GridseqError as e:
            if session.max_steps is not None and session.steps >= session.max_steps:
                return await _close(websocket, 1008, " ".join(str(e).split()))
            await websocket.send_json({"error": " ".join(str(e).split())})
            continue
        await websocket.send_json(out)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows; send finite numbers")
