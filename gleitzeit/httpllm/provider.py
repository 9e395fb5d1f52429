"""The base of LLM providers that talk HTTP to an upstream server.

It owns what every such provider repeats: one aiohttp ``ClientSession`` per provider
(keep-alive, opened by :meth:`~HttpLLMProvider.start`, closed by
:meth:`~HttpLLMProvider.stop`) — beside it, for answers read whole from a plain
``http://`` upstream, the leaner pool of :mod:`gleitzeit.httpllm.http1` — the base URL and API key, per-request timeouts, model
discovery at start, and one mapping of HTTP statuses, connection failures, timeouts and
malformed replies onto Gleitzeit's errors, each naming the upstream. A subclass adds
its methods, built on :meth:`~HttpLLMProvider.post`,
:meth:`~HttpLLMProvider.post_stream` and :meth:`~HttpLLMProvider.decode`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from gleitzeit.errors import (
    AuthenticationError,
    ContextWindowError,
    GleitzeitError,
    InvalidParamsError,
    ModelNotFoundError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    StreamError,
)
from gleitzeit.httpllm.errors import UpstreamFailure
from gleitzeit.httpllm.settings import HttpLLMSettings
from gleitzeit.provider import Provider

if TYPE_CHECKING:
    import aiohttp

    from gleitzeit.httpllm.http1 import ConnectionPool

__all__ = ["Framing", "HttpLLMProvider"]

log = logging.getLogger("gleitzeit.httpllm")

S = TypeVar("S", bound=HttpLLMSettings)
M = TypeVar("M", bound=BaseModel)

#: Splits a streamed body into its messages (:func:`gleitzeit.httpllm.sse_data`,
#: :func:`gleitzeit.httpllm.ndjson_lines`).
Framing = Callable[[AsyncIterable[bytes]], AsyncIterator[bytes]]

_JSON = {"Content-Type": "application/json"}


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class HttpLLMProvider(Provider, Generic[S]):
    """An LLM provider whose upstream speaks JSON over HTTP.

    Set ``Settings`` (a subclass of :class:`HttpLLMSettings`) and the class variables
    below; implement :meth:`discover_models` and the methods. Requests name a path
    relative to the base URL (``"/chat/completions"``).
    """

    kind = "llm"
    Settings: ClassVar[type[BaseModel] | None] = HttpLLMSettings
    #: How messages name the upstream: "<upstream> at <base URL>".
    upstream: ClassVar[str] = "The upstream"
    #: Whose wire format the upstream speaks, for "a reply not in X's format".
    wire_format: ClassVar[str] = "the expected"
    #: What to do when the upstream cannot be reached.
    unreachable_hint: ClassVar[str] = "check base_url and that the server is running"
    #: Added to the hint of a timeout (say, "a model may be loading").
    timeout_reason: ClassVar[str] = ""

    def __init__(self, settings: Any = None, *, name: str | None = None) -> None:
        super().__init__(settings, name=name)
        if self.cfg.default_model is None:
            # Chat and generate need a model then; embed has its own default.
            self.model_required = ("llm/chat", "llm/generate")
        self.base_url = self.cfg.resolved_base_url()
        self._session: aiohttp.ClientSession | None = None
        #: Requests answered whole, to a plain-http upstream without a proxy.
        self._pool: ConnectionPool | None = None
        self._proxy: str | None = None

    @property
    def cfg(self) -> S:
        """The settings, typed as the subclass declares them."""
        settings: S = self.settings
        return settings

    @property
    def where(self) -> str:
        """The upstream as error messages name it."""
        return f"{self.upstream} at {self.base_url}"

    # -- lifecycle -------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        """Headers of every request: the API key as a bearer token, when there is one.
        Override to add an upstream's own."""
        headers = {"User-Agent": f"gleitzeit-{type(self).name}/{self.version or '0'}"}
        key = self.cfg.resolved_api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    async def start(self) -> None:
        """Open the session, then learn the models (``models`` in the settings, or
        :meth:`discover_models`). An upstream that cannot be reached does not stop the
        start — health says why until it is up; one that refuses the key does."""
        import aiohttp  # imported on start, not when the plugin loads

        await self.stop()
        cfg = self.cfg
        self._proxy = _env_proxy(self.base_url)
        self._session = aiohttp.ClientSession(
            headers=self.headers(),
            # sock_read is the wait for each byte: the first one, and between chunks.
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=cfg.connect_timeout, sock_read=cfg.timeout
            ),
            # aiohttp's default pool of 100 would queue the 101st concurrent call (with
            # no timeout of its own); 1,000 is a backstop, as in the openai SDK.
            connector=aiohttp.TCPConnector(limit=1000, keepalive_timeout=30),
            # An API sets no cookies worth keeping; a jar is work on every request.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        from gleitzeit.httpllm.http1 import ConnectionPool

        if ConnectionPool.usable(self.base_url, self._proxy):
            try:
                self._pool = ConnectionPool(
                    self.base_url,
                    self.headers(),
                    connect_timeout=cfg.connect_timeout,
                    read_timeout=cfg.timeout,
                )
            except ValueError:  # a header it will not write: aiohttp says why per request
                self._pool = None
        if cfg.models is not None:
            self.models = self.model_names(cfg.models)
            return
        try:
            self.models = self.model_names(await self.discover_models())
        except AuthenticationError:
            await self.stop()
            raise
        except GleitzeitError as exc:
            log.info("%s: model discovery at %s failed: %s", self.name, self.base_url, exc)

    async def stop(self) -> None:
        """Close the session (and its kept-alive connections); harmless when stopped."""
        session, self._session = self._session, None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        if session is not None:
            await session.close()

    async def discover_models(self) -> list[str]:
        """The model names the upstream lists. Called by :meth:`start` unless the
        settings fix ``models``."""
        raise NotImplementedError

    def model_names(self, names: list[str]) -> tuple[str, ...]:
        """The names the provider serves, from the listed ones (sorted; override to add
        aliases such as Ollama's short names)."""
        return tuple(sorted(names))

    async def health(self) -> dict[str, Any]:
        """Healthy when :meth:`probe` answers; unhealthy with the reason otherwise."""
        if self._session is None:
            return {"status": "unhealthy", "detail": "not started"}
        try:
            detail = await self.probe()
        except GleitzeitError as exc:
            return {"status": "unhealthy", "detail": str(exc)}
        return {"status": "healthy", "detail": detail}

    async def probe(self) -> str:
        """One cheap request (within ``health_timeout``); returns what health shows.
        By default the model list is fetched again (and kept, unless fixed)."""
        import asyncio  # here: importing the provider (plugins list) needs no event loop

        seconds = self.cfg.health_timeout
        try:
            found = await asyncio.wait_for(self.discover_models(), seconds)
        except asyncio.TimeoutError as exc:
            raise self.transport_error(exc, timeout=seconds) from None
        if self.cfg.models is None:
            self.models = self.model_names(found)
        return f"{len(found)} models at {self.base_url}"

    # -- requests --------------------------------------------------------------------

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise ProviderUnavailableError(
                f"Provider {self.name!r} is not started", hint="start() it before calling it"
            )
        return self._session

    async def get(self, path: str, *, timeout: float | None = None) -> bytes:
        """``GET`` ``path``; the body of its 2xx answer. ``timeout`` bounds the whole
        request (health probes); by default the settings' timeouts apply."""
        return await self._request("GET", path, None, None, timeout)

    async def post(self, path: str, body: dict[str, Any], *, model: str | None = None) -> bytes:
        """``POST`` ``body`` as JSON to ``path``; the body of its 2xx answer. ``model``
        is the one the request asked for, for the error when the upstream lacks it."""
        return await self._request("POST", path, body, model, None)

    async def _request(
        self, method: str, path: str, body: Any, model: str | None, timeout: float | None
    ) -> bytes:
        session = self._open()
        if self._pool is not None:
            try:
                reply = await self._pool.request(
                    method, path, None if body is None else _dumps(body), timeout=timeout
                )
            except Exception as exc:
                raise self.transport_error(exc, timeout=timeout) from None
            if reply.status >= 400:
                failure = UpstreamFailure.read(reply.status, reply.body, reply.headers)
                raise self.status_error(failure, model)
            return reply.body
        kw: dict[str, Any] = {"proxy": self._proxy}
        if body is not None:
            kw.update(data=_dumps(body), headers=_JSON)
        if timeout is not None:
            import aiohttp

            kw["timeout"] = aiohttp.ClientTimeout(
                total=timeout, sock_connect=min(timeout, self.cfg.connect_timeout)
            )
        try:
            async with session.request(method, self.base_url + path, **kw) as resp:
                data = await resp.read()
                if resp.status >= 400:
                    failure = UpstreamFailure.read(resp.status, data, resp.headers)
                    raise self.status_error(failure, model)
                return data
        except GleitzeitError:
            raise
        except Exception as exc:
            raise self.transport_error(exc, timeout=timeout) from None

    @asynccontextmanager
    async def post_stream(
        self, path: str, body: dict[str, Any], framing: Framing, *, model: str | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """``POST`` ``body``; the messages of the streamed answer, split by ``framing``::

            async with self.post_stream("/chat/completions", body, sse_data) as messages:
                async for data in messages:
                    ...

        An error status, a timeout, or a connection lost before or during the stream is
        raised as a Gleitzeit error. Leaving the block ends the request: a stream read
        to its end leaves its connection for the next request, one left early closes it.
        """
        session = self._open()
        try:
            resp = await session.post(
                self.base_url + path, data=_dumps(body), headers=_JSON, proxy=self._proxy
            )
        except Exception as exc:
            raise self.transport_error(exc) from None
        messages = self._messages(resp, framing)
        try:
            if resp.status >= 400:
                try:
                    data = await resp.read()
                except Exception as exc:
                    raise self.transport_error(exc) from None
                failure = UpstreamFailure.read(resp.status, data, resp.headers)
                raise self.status_error(failure, model)
            yield messages
        finally:
            await messages.aclose()
            if resp.content.at_eof():
                resp.release()
            else:
                resp.close()

    async def _messages(
        self, resp: aiohttp.ClientResponse, framing: Framing
    ) -> AsyncGenerator[bytes, None]:
        received = 0
        try:
            async for message in framing(resp.content.iter_any()):
                received += 1
                yield message
        except Exception as exc:
            raise self.transport_error(exc, chunks=received) from None

    def decode(self, shape: type[M], raw: bytes, *, chunks: int | None = None) -> M:
        """``raw`` validated as ``shape``; a reply that is not JSON or not of that shape
        is an error naming the upstream and the field (a :class:`StreamError` when
        ``chunks`` says it came inside a stream)."""
        try:
            return shape.model_validate_json(raw)
        except ValidationError as exc:
            raise self.format_error(exc, chunks) from None

    # -- models ----------------------------------------------------------------------

    def model_for(self, requested: str | None) -> str:
        """The model of a chat or generate request: the requested one, or the default."""
        model = requested or self.cfg.default_model
        if not model:
            raise InvalidParamsError(
                f"{self.name}: no model given and no default_model set",
                hint=f'pass "model"; available: {self.shown_models() or "(unknown)"}',
            )
        return model

    def embedding_model(self, requested: str | None) -> str:
        """The model of an embedding request: the requested one; else the configured
        ``embedding_model``; else — when the server's model list lacks the default —
        one it lists with "embed" in its name."""
        if requested:
            return requested
        default = self.cfg.embedding_model
        if default and ("embedding_model" in self.cfg.model_fields_set or not self.models):
            return default
        if default and default in self.models:
            return default
        listed = [m for m in self.models if "embed" in m.lower()]
        if listed:
            return listed[0]
        raise ModelNotFoundError(
            f"{self.where} lists no embedding model"
            + (f" (the default {default!r} is not among its models)" if default else ""),
            hint=f"pass a model, or set plugins.{self.name}.embedding_model; "
            f"its models: {self.shown_models() or '(none)'}",
        )

    def shown_models(self) -> str:
        """The models named in error hints."""
        return ", ".join(self.models[:20])

    def missing_model_hint(self, model: str | None) -> str:
        """The hint of a :class:`ModelNotFoundError` for ``model``."""
        return f"available models: {self.shown_models() or '(unknown: the server lists none)'}"

    # -- errors ----------------------------------------------------------------------

    def status_error(self, failure: UpstreamFailure, model: str | None) -> GleitzeitError:
        """The Gleitzeit error for an HTTP error answer. Override to refine a status."""
        where, status, msg = self.where, failure.status, failure.message
        if status in (401, 403):
            keyed = self.cfg.resolved_api_key() is not None
            env = type(self.cfg).api_key_env
            return AuthenticationError(
                f"{where} {'rejected the API key' if keyed else 'refused the request'} "
                f"({status}: {msg})",
                hint=(f"check {env} or " if env else "set ")
                + f"api_key under plugins.{self.name} in gleitzeit.yaml",
            )
        if status == 404:
            if failure.says_model_missing():
                return ModelNotFoundError(
                    f"{where} has no model {model!r} ({msg})",
                    hint=self.missing_model_hint(model),
                    model=model,
                )
            # A 404 for the path itself: a wrong base URL, or a proxy without the
            # endpoint. Not a missing model, and not the caller's fault.
            return ProviderUnavailableError(
                f"{where} has no such endpoint (404: {msg})",
                hint=f"check base_url under plugins.{self.name}: {self.base_url_hint()}",
                status=404,
            )
        if status == 429:
            wait = failure.retry_after
            return RateLimitError(
                f"{where} is rate limiting ({failure.code or status}: {msg})",
                retry_after=wait,
                hint=f"retry after {wait:g}s" if wait is not None else "slow down and retry",
            )
        if status >= 500 or status in (408, 409):
            return ProviderUnavailableError(f"{where} failed with {status}: {msg}", status=status)
        if status == 400 and failure.code == "context_length_exceeded":
            return ContextWindowError(
                f"{where}: the conversation is longer than the context window of model "
                f"{model!r} ({msg})",
                hint="shorten the messages, or use a model alias whose fallback has a larger one",
            )
        if status in (400, 413, 422):
            refused = f"{where} refused the request ({status}: {msg})"
            if failure.param:  # the field it named, for the caller (the gateway's param)
                return InvalidParamsError(refused, param=failure.param)
            return InvalidParamsError(refused)
        return ProviderError(f"{where} answered {status}: {msg}")

    def base_url_hint(self) -> str:
        """What a right base URL looks like, for a 404 on a path."""
        return f"it is {self.base_url} now"

    def transport_error(
        self, exc: BaseException, *, chunks: int | None = None, timeout: float | None = None
    ) -> GleitzeitError:
        """The Gleitzeit error for a failure below HTTP: a timeout, a refused or lost
        connection. ``chunks``: messages received before, inside a stream."""
        import asyncio

        import aiohttp

        from gleitzeit.httpllm import http1

        if isinstance(exc, GleitzeitError):
            return exc
        where = self.where
        if isinstance(exc, asyncio.TimeoutError):
            connecting = (http1.ConnectTimeout, getattr(aiohttp, "ConnectionTimeoutError", ()))
            if isinstance(exc, connecting):
                return ProviderTimeoutError(
                    f"{where} did not accept a connection within {self.cfg.connect_timeout:g}s",
                    hint=f"check the server, or raise connect_timeout under plugins.{self.name}",
                )
            setting = "health_timeout" if timeout is not None else "timeout"
            seconds = timeout if timeout is not None else self.cfg.timeout
            what = "sent nothing more" if chunks else "did not answer"
            reason = f" ({self.timeout_reason})" if self.timeout_reason else ""
            return ProviderTimeoutError(
                f"{where} {what} within {seconds:g}s",
                hint=f"raise {setting} under plugins.{self.name} in gleitzeit.yaml{reason}",
            )
        if isinstance(exc, (aiohttp.ClientConnectorError, http1.ConnectFailed)):
            return ProviderUnavailableError(
                f"Cannot reach {where}: {type(exc.os_error).__name__}: {exc.os_error}",
                hint=self.unreachable_hint,
            )
        if chunks:
            return StreamError(
                f"The stream from {where} broke off after {chunks} chunks: "
                f"{type(exc).__name__}: {exc}"
            )
        if isinstance(exc, (aiohttp.ClientError, OSError)):
            return ProviderUnavailableError(
                f"{where} closed the connection without an answer: {type(exc).__name__}: {exc}",
                hint=self.unreachable_hint,
            )
        return ProviderError(f"{where}: {type(exc).__name__}: {exc}")

    def format_error(self, exc: ValidationError, chunks: int | None) -> GleitzeitError:
        """The error for a reply that is not JSON, or not in the upstream's format."""
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            what = f"invalid JSON ({first['msg']})"
        else:
            fields = ", ".join(
                ".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors()[:3]
            )
            what = f"a reply not in {self.wire_format}'s format (field {fields})"
        inside = chunks is not None
        message = f"{self.where} sent {what}" + (f" after {chunks} chunks" if chunks else "")
        hint = f"is base_url ({self.base_url}) a server that speaks {self.wire_format}'s API?"
        return StreamError(message, hint=hint) if inside else ProviderError(message, hint=hint)

    def stream_error(self, message: str, chunks: int) -> StreamError:
        """An error the upstream reported inside a stream."""
        after = f" after {chunks} chunks" if chunks else ""
        return StreamError(f"{self.where} sent an error inside the stream{after}: {message}")


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``...),
    looked up once per start rather than per request."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    proxy = getproxies().get(parts.scheme)
    if not proxy or proxy_bypass(parts.hostname or ""):
        return None
    return proxy
