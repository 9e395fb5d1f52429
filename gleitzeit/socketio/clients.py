"""The ``/clients`` namespace: callers (the CLI's ``--server``, :class:`gleitzeit.Client`)
invoke and stream through the server's host."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gleitzeit.config.models import ServerConfig
from gleitzeit.errors import GleitzeitError, PayloadTooLargeError, ProviderUnavailableError
from gleitzeit.socketio.wire import (
    CLIENTS_NAMESPACE,
    Invoke,
    StreamCancel,
    StreamStart,
    error_payload,
    parse,
    payload_size,
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
        sio.on("invoke", self.on_invoke, namespace=ns)
        sio.on("stream:start", self.on_stream_start, namespace=ns)
        sio.on("stream:cancel", self.on_stream_cancel, namespace=ns)
        sio.on("providers", self.on_providers, namespace=ns)
        sio.on("health", self.on_health, namespace=ns)

    async def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        self.authenticate(auth, environ, who="client")

    async def on_disconnect(self, sid: str, *reason: Any) -> None:
        for task in self.streams.pop(sid, {}).values():
            task.cancel()

    def _check(self, data: Any, event: str, model: Any) -> Any:
        if self.draining:
            raise ProviderUnavailableError(
                "the server is shutting down", hint="retry against another server or later"
            )
        limit = self.config.max_payload_bytes
        size = payload_size(data)
        if size > limit:
            raise PayloadTooLargeError(
                f"{event} payload is {size:,} bytes; the limit is {limit:,}",
                hint="send less, or raise server.max_payload_bytes in gleitzeit.yaml",
            )
        return parse(model, data, event)

    async def on_invoke(self, sid: str, data: Any = None) -> dict[str, Any]:
        self._begin()
        try:
            msg = self._check(data, "invoke", Invoke)
            result = await self.host.invoke(
                msg.method,
                msg.params,
                provider=msg.provider,
                model=msg.model,
                capability=msg.capability,
                timeout=msg.timeout,
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
        task = asyncio.ensure_future(self._pump(sid, msg))
        self.streams.setdefault(sid, {})[msg.stream_id] = task
        task.add_done_callback(lambda _t: self.streams.get(sid, {}).pop(msg.stream_id, None))
        return {"ok": True}

    async def _pump(self, sid: str, msg: StreamStart) -> None:
        sio = self.sio
        ns = CLIENTS_NAMESPACE
        self._begin()
        try:
            async for chunk in self.host.stream(
                msg.method,
                msg.params,
                provider=msg.provider,
                model=msg.model,
                capability=msg.capability,
                chunk_timeout=msg.timeout,
            ):
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
            self._end()

    async def on_stream_cancel(self, sid: str, data: Any = None) -> None:
        try:
            msg = parse(StreamCancel, data, "stream:cancel")
        except GleitzeitError:
            return
        task = self.streams.get(sid, {}).get(msg.stream_id)
        if task is not None:
            task.cancel()

    async def on_providers(self, sid: str, data: Any = None) -> dict[str, Any]:
        check = bool(data.get("check")) if isinstance(data, dict) else False
        try:
            items = await self.host.providers(check=check)
        except GleitzeitError as exc:
            return {"ok": False, "error": exc.to_dict()}
        return {"ok": True, "result": {"providers": items}}

    async def on_health(self, sid: str, data: Any = None) -> dict[str, Any]:
        name = data.get("name") if isinstance(data, dict) else None
        try:
            rows = await self.host.health(name)
        except GleitzeitError as exc:
            return {"ok": False, "error": exc.to_dict()}
        return {"ok": True, "result": {"instances": rows}}
