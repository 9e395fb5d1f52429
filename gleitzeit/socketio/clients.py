"""The ``/clients`` namespace: callers (the CLI's ``--server``, :class:`gleitzeit.Client`)
invoke and stream through the server's host."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gleitzeit.config.models import ServerConfig
from gleitzeit.errors import (
    GleitzeitError,
    InvalidMessage,
    PayloadTooLargeError,
    ProviderUnavailableError,
    StreamStalledError,
)
from gleitzeit.socketio.flow import Credit
from gleitzeit.socketio.handlers import Handlers, payload_of
from gleitzeit.socketio.packets import size_bound
from gleitzeit.socketio.wire import (
    CLIENTS_NAMESPACE,
    HealthRequest,
    Invoke,
    ProvidersRequest,
    StreamCancel,
    StreamCredit,
    StreamStart,
    error_payload,
    parse,
    payload_size,
    plain_invoke,
)

if TYPE_CHECKING:
    from gleitzeit.host import Host

log = logging.getLogger("gleitzeit.server")

#: ``authenticate(auth, environ, who=...)``: the connection's principal; raises to refuse.
Authenticate = Callable[..., Any]


class ClientHandlers:
    """Event handlers of ``/clients``; one instance per server.

    ``active`` counts calls and streams being served; :attr:`idle` is set whenever it
    is zero, so a draining server waits on an event, not a polling loop.
    """

    def __init__(
        self, host: Host, sio: Any, authenticate: Authenticate, config: ServerConfig
    ) -> None:
        self.host = host
        self.sio = sio
        self.authenticate = authenticate
        self.config = config
        self.draining = False
        self.streams: dict[str, dict[str, asyncio.Task[None]]] = {}
        self.credits: dict[tuple[str, str], Credit] = {}
        self.handlers = Handlers(sio, CLIENTS_NAMESPACE)
        self.active = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def _begin(self) -> None:
        self.active += 1
        self.idle.clear()

    def _end(self) -> None:
        self.active -= 1
        if self.active == 0:
            self.idle.set()

    def attach(self) -> None:
        sio = self.sio
        ns = CLIENTS_NAMESPACE
        sio.on("connect", self.on_connect, namespace=ns)
        sio.on("disconnect", self.on_disconnect, namespace=ns)
        on = self.handlers.on
        self.handlers.direct("invoke", self.on_invoke)
        on("stream:start", self.on_stream_start, acked=True)
        on("stream:cancel", self.on_stream_cancel, acked=True)
        on("stream:credit", self.on_stream_credit, acked=False)
        on("providers", self.on_providers, acked=True)
        on("health", self.on_health, acked=True)
        self.handlers.on_unknown()

    async def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        self.authenticate(auth, environ, who="client")

    async def on_disconnect(self, sid: str, *reason: Any) -> None:
        self.handlers.forget(sid)
        for task in self.streams.pop(sid, {}).values():
            task.cancel()

    def _check(
        self,
        data: Any,
        event: str,
        model: Any,
        plain: Callable[[Any], Any] | None = None,
    ) -> Any:
        if self.draining:
            raise ProviderUnavailableError(
                "the server is shutting down", hint="retry against another server or later"
            )
        limit = self.config.max_payload_bytes
        bound = size_bound(data)
        if bound is None or bound > limit:
            size = payload_size(data)
            if size > limit:
                raise PayloadTooLargeError(
                    f"{event} payload is {size:,} bytes; the limit is {limit:,}",
                    hint="send less, or raise server.max_payload_bytes in gleitzeit.yaml",
                )
        return (plain is not None and plain(data)) or parse(model, data, event)

    async def on_invoke(self, sid: str, *args: Any) -> dict[str, Any]:
        # Registered without the Handlers wrapper (the hottest event): answers every
        # payload itself, as the wrapper would.
        self._begin()
        try:
            data = payload_of(args)
            msg = self._check(data, "invoke", Invoke, plain_invoke)
            result = await self.host.invoke(
                msg.method,
                msg.params,
                provider=msg.provider,
                model=msg.model,
                capability=msg.capability,
                timeout=msg.timeout,
                call_id=msg.call_id,
            )
            return {"ok": True, "result": result}
        except GleitzeitError as exc:
            return {"ok": False, "error": exc.to_dict()}
        except Exception as exc:  # never let a handler die with a traceback to the client
            log.exception("invoke failed")
            return {"ok": False, "error": error_payload(exc)}
        finally:
            self._end()

    async def on_stream_start(self, sid: str, data: Any = None) -> dict[str, Any]:
        try:
            msg = self._check(data, "stream:start", StreamStart)
            if msg.stream_id in self.streams.get(sid, {}):
                # Refused without an error event: that would end the stream in use.
                return {
                    "ok": False,
                    "error": InvalidMessage(
                        f"stream_id {msg.stream_id!r} is already in use on this connection",
                        hint="use a new stream_id per stream",
                    ).to_dict(),
                }
        except GleitzeitError as exc:
            stream_id = data.get("stream_id") if isinstance(data, dict) else None
            if isinstance(stream_id, str):
                await self.sio.emit(
                    "stream:error",
                    {"stream_id": stream_id, "error": exc.to_dict()},
                    to=sid,
                    namespace=CLIENTS_NAMESPACE,
                )
            return {"ok": False, "error": exc.to_dict()}
        cfg = self.config
        key = (sid, msg.stream_id)
        self.credits[key] = Credit(msg.window or cfg.stream_window, cfg.stream_buffer_bytes)
        task = asyncio.ensure_future(self._pump(sid, msg))
        self.streams.setdefault(sid, {})[msg.stream_id] = task

        def done(_t: Any) -> None:
            self.streams.get(sid, {}).pop(msg.stream_id, None)
            self.credits.pop(key, None)

        task.add_done_callback(done)
        return {"ok": True}

    async def _pump(self, sid: str, msg: StreamStart) -> None:
        sio = self.sio
        ns = CLIENTS_NAMESPACE
        credit = self.credits[(sid, msg.stream_id)]
        stall = self.config.stream_stall_timeout
        self._begin()
        chunks = self.host.stream(
            msg.method,
            msg.params,
            provider=msg.provider,
            model=msg.model,
            capability=msg.capability,
            chunk_timeout=msg.timeout,
            call_id=msg.call_id,
        )
        try:
            async for chunk in chunks:
                # Back-pressure: without credit from the client the next chunk is not
                # even pulled, so the provider is held too (it waits for our credit).
                if not await credit.spend(payload_size(chunk), stall):
                    raise StreamStalledError(
                        f"the client read nothing of stream {msg.stream_id!r} for {stall:g}s; "
                        "the stream was cancelled",
                        hint="read the stream (the client library grants credit as it reads)",
                    )
                await sio.emit(
                    "stream:data",
                    {"stream_id": msg.stream_id, "chunk": chunk},
                    to=sid,
                    namespace=ns,
                )
            await sio.emit("stream:end", {"stream_id": msg.stream_id}, to=sid, namespace=ns)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await sio.emit(
                "stream:error",
                {"stream_id": msg.stream_id, "error": error_payload(exc)},
                to=sid,
                namespace=ns,
            )
        finally:
            # Ends the call at the provider now (stream:cancel to a remote one).
            await chunks.aclose()
            self._end()

    async def on_stream_cancel(self, sid: str, data: Any = None) -> dict[str, Any]:
        try:
            msg = parse(StreamCancel, data, "stream:cancel")
        except GleitzeitError as exc:
            return {"ok": False, "error": exc.to_dict()}
        task = self.streams.get(sid, {}).get(msg.stream_id)
        if task is not None:
            task.cancel()
        return {"ok": True, "cancelled": task is not None}

    def on_stream_credit(self, sid: str, data: Any = None) -> None:
        if type(data) is dict and type(data.get("stream_id")) is str and len(data) == 2:
            n = data.get("n")
            if type(n) is int and 0 < n <= 10_000:
                credit = self.credits.get((sid, data["stream_id"]))
                if credit is not None:
                    credit.grant(n)
                return
        parse(StreamCredit, data, "stream:credit")  # raises, naming the field

    async def on_providers(self, sid: str, data: Any = None) -> dict[str, Any]:
        try:
            msg = parse(ProvidersRequest, {} if data is None else data, "providers")
            items = await self.host.providers(check=msg.check)
        except GleitzeitError as exc:
            return {"ok": False, "error": exc.to_dict()}
        return {"ok": True, "result": {"providers": items}}

    async def on_health(self, sid: str, data: Any = None) -> dict[str, Any]:
        try:
            msg = parse(HealthRequest, {} if data is None else data, "health")
            rows = await self.host.health(msg.name)
        except GleitzeitError as exc:
            return {"ok": False, "error": exc.to_dict()}
        return {"ok": True, "result": {"instances": rows}}
