"""The OpenAI-compatible HTTP API: ``/v1`` routes on the server's aiohttp app.

Each route reads one body (size-limited, JSON, validated into a request model of
:mod:`gleitzeit.http.openai_api`), builds its parameters and calls the host's
``invoke`` or ``stream`` — so model aliases, fallback chains, provider tools, load
balancing, retries on another instance, cool-downs and remote providers all apply —
and answers in OpenAI's shapes. Errors come back in OpenAI's error shape with the
status codes its SDK maps to its exception classes; a stream that fails after its first
chunk ends with an error event, which the SDK raises.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from gleitzeit.errors import (
    AuthenticationError,
    ContextWindowError,
    GleitzeitError,
    InstancesDownError,
    MethodNotFoundError,
    ModelNotFoundError,
    PayloadTooLargeError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    RoutingError,
)
from gleitzeit.http import openai_api as api
from gleitzeit.socketio.guard import AccessDenied, Guard

if TYPE_CHECKING:
    from aiohttp import web

    from gleitzeit.host import Host

log = logging.getLogger("gleitzeit.gateway")

__all__ = ["Gateway", "status_of"]

_JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "")
_SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # proxies must pass each event on at once
}


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


#: How ``_dumps`` writes a string (json's own encoder for ``ensure_ascii=False``).
_encode_string: Callable[[str], str] = json.encoder.encode_basestring


class HttpError(Exception):
    """An error answered before any work starts (auth, body, validation)."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.body = status, api.error_body(message, type_, code, param)


def status_of(exc: GleitzeitError) -> tuple[int, str, str | None]:
    """The HTTP status, OpenAI error type and code for a Gleitzeit error, chosen so
    that the openai SDK raises the matching exception class."""
    if isinstance(exc, RateLimitError):
        return 429, "rate_limit_error", "rate_limit_exceeded"
    if isinstance(exc, ProviderTimeoutError):
        return 504, "timeout_error", exc.code
    if isinstance(exc, ProviderUnavailableError) and exc.details.get("status"):
        # The upstream answered, with an error of its own (a 5xx, a 404 for its path).
        return 502, "upstream_error", exc.code
    if isinstance(exc, (InstancesDownError, ProviderUnavailableError)):
        return 503, "server_error", exc.code
    if isinstance(exc, PayloadTooLargeError):
        return 413, "invalid_request_error", exc.code
    if isinstance(exc, ContextWindowError):
        return 400, "invalid_request_error", exc.code
    if isinstance(exc, (RoutingError, ModelNotFoundError)):
        return 404, "invalid_request_error", "model_not_found"
    if isinstance(exc, MethodNotFoundError):
        return 404, "invalid_request_error", exc.code
    if isinstance(exc, AuthenticationError):  # the upstream refused *our* key: not the caller's
        return 502, "upstream_error", exc.code
    if exc.caller_error:
        return 400, "invalid_request_error", exc.code
    return 502, "upstream_error", exc.code


#: The routes under /v1, for the error that names them.
ROUTES = (
    "POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings, GET /v1/models, "
    "GET /v1/models/{model}"
)


async def _openai_shaped_misses(request: web.Request, handler: Callable[..., Any]) -> Any:
    """Middleware: a path under /v1 that no route serves, or a method a route does not
    take, is answered in OpenAI's error shape too (aiohttp answers plain text)."""
    from aiohttp import web

    if not request.path.startswith("/v1/") and request.path != "/v1":
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status not in (404, 405):
            raise
        if exc.status == 404:
            message = f"No route {request.method} {request.path}; the API has {ROUTES}"
            code = "unknown_url"
        else:
            allowed = exc.headers.get("Allow", "")
            message = f"{request.method} is not allowed on {request.path}; use {allowed}"
            code = "method_not_allowed"
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        body = api.error_body(message, "invalid_request_error", code)
        return web.json_response(body, status=exc.status, headers=headers)


class Gateway:
    """Serves ``/v1`` for one host."""

    def __init__(self, host: Host, *, guard: Guard, max_body: int) -> None:
        self.host = host
        self.guard = guard
        self.max_body = max_body
        self.started = int(time.time())

    def attach(self, app: web.Application) -> None:
        from aiohttp import web

        app.middlewares.append(web.middleware(_openai_shaped_misses))
        r = app.router
        r.add_post("/v1/chat/completions", self.chat_completions)
        r.add_post("/v1/completions", self.completions)
        r.add_post("/v1/embeddings", self.embeddings)
        r.add_get("/v1/models", self.list_models)
        r.add_get("/v1/models/{model:.+}", self.get_model)

    # -- the edge --------------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> None:
        """The caller needs the ``client`` role (docs/security.md), as on ``/clients``."""
        try:
            self.guard.check_request(request, "client")
        except AccessDenied as exc:
            if exc.status == 401:
                raise HttpError(
                    401,
                    f"Incorrect API key provided ({exc.reason}): pass a client token as "
                    "the API key (Authorization: Bearer $GLEITZEIT_TOKEN)",
                    code="invalid_api_key",
                ) from None
            raise HttpError(403, exc.message, code=exc.code) from None

    async def _body(self, request: web.Request) -> dict[str, Any]:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        # curl -d sends x-www-form-urlencoded; its body is still the JSON it was given.
        if ctype not in _JSON_TYPES and not ctype.endswith("+json"):
            raise HttpError(
                415,
                f"Unsupported Content-Type {ctype!r}: send the body as application/json",
                code="unsupported_media_type",
            )
        too_large = HttpError(
            413,
            f"The request body is larger than {self.max_body} bytes (server.max_payload_bytes)",
            code="payload_too_large",
        )
        length = request.content_length
        if (length or 0) > self.max_body:
            raise too_large
        data: bytes | bytearray
        if length is not None:
            data = await request.content.readexactly(length) if length else b""
        else:  # chunked: read until the limit
            data = bytearray()
            while piece := await request.content.read(65536):
                data += piece
                if len(data) > self.max_body:
                    raise too_large
        try:
            body = json.loads(data)
        except RecursionError:
            raise HttpError(
                400,
                "The JSON body of your request is nested too deeply to read; send a flatter "
                "document",
                code="invalid_json",
            ) from None
        except ValueError as exc:
            raise HttpError(
                400,
                f"We could not parse the JSON body of your request ({exc}); send valid JSON",
                code="invalid_json",
            ) from None
        if not isinstance(body, dict):
            raise HttpError(400, "The request body must be a JSON object", code="invalid_json")
        return body

    async def _read(self, request: web.Request, model: type[BaseModel]) -> Any:
        self._authenticate(request)
        body = await self._body(request)
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise HttpError(
                400,
                f"Invalid value for {where!r}: {first['msg']}",
                param=str(first["loc"][0]) if first["loc"] else None,
            ) from None

    def _error(self, exc: BaseException, model: str | None) -> web.Response:
        from aiohttp import web

        if isinstance(exc, HttpError):
            return web.json_response(exc.body, status=exc.status)
        if not isinstance(exc, GleitzeitError):
            log.exception("gateway: unexpected failure")
            body = api.error_body(f"{type(exc).__name__}: {exc}", "server_error")
            return web.json_response(body, status=500)
        status, type_, code = status_of(exc)
        param = exc.details.get("param") if isinstance(exc.details.get("param"), str) else None
        message, headers = str(exc), {}
        if status == 404 and code == "model_not_found" and model is not None:
            param = "model"
            message = (
                f"The model `{model}` does not exist or no provider serves it ({exc.message}). "
                f"Models served: {', '.join(self._served()) or '(none)'}"
            )
        wait = (
            exc.retry_after
            if isinstance(exc, RateLimitError)
            else exc.details.get("retry_after")
            if isinstance(exc, InstancesDownError)
            else None
        )
        if wait is not None:
            headers["retry-after"] = str(max(1, math.ceil(wait)))
            headers["retry-after-ms"] = str(int(wait * 1000))
        return web.json_response(
            api.error_body(message, type_, code, param), status=status, headers=headers
        )

    # -- routes ----------------------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        model = None
        try:
            req: api.ChatCompletionRequest = await self._read(request, api.ChatCompletionRequest)
            model = req.model
            if req.stream:
                return await self._stream(request, "llm/chat", req.params(), _ChatEvents(req))
            result = await self.host.invoke("llm/chat", req.params())
        except Exception as exc:
            return self._error(exc, model)
        return _json(api.chat_completion(result, req.model))

    async def completions(self, request: web.Request) -> web.StreamResponse:
        model = None
        try:
            req: api.CompletionRequest = await self._read(request, api.CompletionRequest)
            model = req.model
            if req.stream:
                return await self._stream(
                    request, "llm/generate", req.params(), _CompletionEvents(req)
                )
            result = await self.host.invoke("llm/generate", req.params())
        except Exception as exc:
            return self._error(exc, model)
        return _json(api.completion(result, req.model))

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        model = None
        try:
            req: api.EmbeddingRequest = await self._read(request, api.EmbeddingRequest)
            model = req.model
            result = await self.host.invoke("llm/embed", req.params())
        except Exception as exc:
            return self._error(exc, model)
        return _json(api.embeddings(result, req))

    def _served(self) -> list[str]:
        return sorted(self._owners())

    def _owners(self) -> dict[str, set[str]]:
        """Every model a healthy instance serves, with the providers serving it; and
        the aliases of ``models.aliases``."""
        owners: dict[str, set[str]] = {}
        for inst in self.host.registry:
            if inst.health.status == "unhealthy":
                continue
            for m in inst.models:
                owners.setdefault(m, set()).add(inst.name)
        for alias in self.host.config.models.aliases:
            owners.setdefault(alias, {"gleitzeit-alias"})
        return owners

    def _model(self, name: str, owners: set[str]) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": self.started,
            "owned_by": ",".join(sorted(owners)),
        }

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        try:
            self._authenticate(request)
        except HttpError as exc:
            return self._error(exc, None)
        owners = self._owners()
        data = [self._model(name, owners[name]) for name in sorted(owners)]
        return _json({"object": "list", "data": data})

    async def get_model(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["model"]
        try:
            self._authenticate(request)
        except HttpError as exc:
            return self._error(exc, None)
        owners = self._owners().get(name)
        if owners is None:
            return self._error(RoutingError(f"No provider serves model {name!r}"), name)
        return _json(self._model(name, owners))

    # -- streams ---------------------------------------------------------------------

    async def _stream(
        self, request: web.Request, method: str, params: dict[str, Any], events: _Events
    ) -> web.StreamResponse:
        """Answer with SSE. The first chunk is awaited before the response starts, so
        that a request that fails at once gets its HTTP status; a failure after that
        ends the stream with an error event."""
        from aiohttp import web

        chunks = self.host.stream(method, params)
        try:
            try:
                first = await chunks.__anext__()
            except StopAsyncIteration:
                first = {"token": "", "done": True}
            resp = web.StreamResponse(headers=_SSE_HEADERS)
            await resp.prepare(request)
            write, encode = resp.write, events.encode
            await write(_event(events.start()) + encode(first))
            try:
                if not first.get("done"):
                    async for chunk in chunks:
                        data = encode(chunk)
                        if data:
                            await write(data)
                        if chunk.get("done"):
                            break
            except (ConnectionResetError, ConnectionError):
                return resp  # the client went away: closing the stream ends the call
            except Exception as exc:
                if not isinstance(exc, GleitzeitError):
                    log.exception("gateway: stream failed")
                status, type_, code = (
                    status_of(exc)
                    if isinstance(exc, GleitzeitError)
                    else (500, "server_error", None)
                )
                await write(_event(api.error_body(str(exc), type_, code)))
                return resp
            await write(b"data: [DONE]\n\n")
            return resp
        finally:
            await chunks.aclose()


def _json(data: Any, status: int = 200) -> web.Response:
    from aiohttp import web

    return web.Response(body=_dumps(data).encode(), status=status, content_type="application/json")


def _event(data: Any) -> bytes:
    return b"data: " + _dumps(data).encode() + b"\n\n"


_TOKEN = "\x00token\x00"


class _Events:
    """Turns Gleitzeit stream chunks into OpenAI stream events."""

    def __init__(self, model: str, include_usage: bool, prefix: str) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = api.new_id(prefix)
        self.created = int(time.time())
        # A plain token's event is the same bytes every time but for the token, so it
        # is written from this stream's template: encoding it whole per token was the
        # largest cost of a long stream in the gateway.
        head, tail = _event(self.token_event(_TOKEN)).split(_dumps(_TOKEN).encode())
        self._head, self._tail = head, tail

    def start(self) -> dict[str, Any]:
        raise NotImplementedError

    def token_event(self, token: str) -> dict[str, Any]:
        """The event of one streamed piece of text."""
        raise NotImplementedError

    def chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def encode(self, chunk: dict[str, Any]) -> bytes:
        """The SSE bytes of one Gleitzeit chunk (none for a chunk with nothing to say)."""
        token = chunk.get("token")
        if token and len(chunk) == 2 and chunk.get("done") is False:
            return self._head + _encode_string(token).encode() + self._tail
        return b"".join(_event(event) for event in self.chunk(chunk))


class _ChatEvents(_Events):
    def __init__(self, req: api.ChatCompletionRequest) -> None:
        super().__init__(req.model, req.include_usage, "chatcmpl")
        self._make: Callable[..., dict[str, Any]] = api.chat_chunk

    def start(self) -> dict[str, Any]:
        return self._make(self.id, self.created, self.model, {"role": "assistant", "content": ""})

    def token_event(self, token: str) -> dict[str, Any]:
        return api.chat_chunk(self.id, self.created, self.model, {"content": token})

    def chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        make, cid, created, model = self._make, self.id, self.created, self.model
        if chunk.get("done"):
            extra: dict[str, Any] = {}
            if chunk.get("tool_rounds"):
                extra["gleitzeit"] = {"tool_rounds": chunk["tool_rounds"]}
            out = [make(cid, created, model, {}, chunk.get("finish_reason") or "stop", **extra)]
            if self.include_usage:
                out.append(make(cid, created, model, None, usage=api.usage_of(chunk)))
            return out
        kind = chunk.get("kind")
        if kind in ("tool_call", "tool_result"):
            # Provider tools at work: shown beside OpenAI's fields, which stay empty.
            return [make(cid, created, model, {}, gleitzeit={"kind": kind, kind: chunk[kind]})]
        if chunk.get("tool_calls"):
            return [make(cid, created, model, {"tool_calls": chunk["tool_calls"]})]
        token = chunk.get("token")
        return [self.token_event(token)] if token else []


class _CompletionEvents(_Events):
    def __init__(self, req: api.CompletionRequest) -> None:
        super().__init__(req.model, req.include_usage, "cmpl")

    def start(self) -> dict[str, Any]:
        return api.completion_chunk(self.id, self.created, self.model, "")

    def token_event(self, token: str) -> dict[str, Any]:
        return api.completion_chunk(self.id, self.created, self.model, token)

    def chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if chunk.get("done"):
            finish = chunk.get("finish_reason") or "stop"
            out = [api.completion_chunk(self.id, self.created, self.model, "", finish)]
            if self.include_usage:
                out.append(
                    api.completion_chunk(
                        self.id, self.created, self.model, None, usage=api.usage_of(chunk)
                    )
                )
            return out
        token = chunk.get("token")
        return [self.token_event(token)] if token else []
