"""The ``/clients`` namespace: callers (the CLI's ``--server``, :class:`gleitzeit.Client`)
invoke and stream through the server's host."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gleitzeit.errors import GleitzeitError, PayloadTooLargeError, ProviderUnavailableError
from gleitzeit.protocol import (
    CLIENTS_NAMESPACE,
    Invoke,
    StreamCancel,
    StreamStart,
    error_payload,
    parse,
    payload_size,
)

log = logging.getLogger("gleitzeit.server")


class ClientHandlers:
    """Event handlers of ``/clients``; one instance per server."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.streams: dict[str, dict[str, asyncio.Task[None]]] = {}
        self.active = 0

    @property
    def host(self) -> Any:
        return self.server.host

    def attach(self, sio: Any) -> None:
        ns = CLIENTS_NAMESPACE
        sio.on("connect", self.on_connect, namespace=ns)
        sio.on("disconnect", self.on_disconnect, namespace=ns)
        sio.on("invoke", self.on_invoke, namespace=ns)
        sio.on("stream:start", self.on_stream_start, namespace=ns)
        sio.on("stream:cancel", self.on_stream_cancel, namespace=ns)
        sio.on("providers", self.on_providers, namespace=ns)
        sio.on("health", self.on_health, namespace=ns)

    async def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        self.server.authenticate(auth, environ, who="client")

    async def on_disconnect(self, sid: str, *reason: Any) -> None:
        for task in self.streams.pop(sid, {}).values():
            task.cancel()

    def _check(self, data: Any, event: str, model: Any) -> Any:
        if self.server.draining:
            raise ProviderUnavailableError(
                "the server is shutting down", hint="retry against another server or later"
            )
        limit = self.host.config.server.max_payload_bytes
        size = payload_size(data)
        if size > limit:
            raise PayloadTooLargeError(
                f"{event} payload is {size:,} bytes; the limit is {limit:,}",
                hint="send less, or raise server.max_payload_bytes in gleitzeit.yaml",
            )
        return parse(model, data, event)

    async def on_invoke(self, sid: str, data: Any = None) -> dict[str, Any]:
        self.active += 1
        try:
            msg = self._check(data, "invoke", Invoke)
            result = await self.host.invoke(
                msg.method, msg.params, provider=msg.provider, model=msg.model, timeout=msg.timeout
            )
            return {"ok": True, "result": result}
        except GleitzeitError as exc:
            return {"ok": False, "error": exc.to_dict()}
        except Exception as exc:  # never let a handler die with a traceback to the client
            log.exception("invoke failed")
            return {"ok": False, "error": error_payload(exc)}
        finally:
            self.active -= 1

    async def on_stream_start(self, sid: str, data: Any = None) -> dict[str, Any]:
        try:
            msg = self._check(data, "stream:start", StreamStart)
        except GleitzeitError as exc:
            stream_id = data.get("stream_id") if isinstance(data, dict) else None
            if isinstance(stream_id, str):
                await self.server.sio.emit(
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
        sio = self.server.sio
        ns = CLIENTS_NAMESPACE
        self.active += 1
        try:
            async for chunk in self.host.stream(
                msg.method,
                msg.params,
                provider=msg.provider,
                model=msg.model,
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
            self.active -= 1

    async def on_stream_cancel(self, sid: str, data: Any = None) -> None:
        try:
            msg = parse(StreamCancel, data, "stream:cancel")
        except GleitzeitError:
            return
        task = self.streams.get(sid, {}).get(msg.stream_id)
        if task is not None:
            task.cancel()

    async def on_providers(self, sid: str, data: Any = None) -> dict[str, Any]:
        items = [i.describe(schemas=True) for i in sorted(self.host.registry, key=lambda i: i.id)]
        return {"ok": True, "result": {"providers": items}}

    async def on_health(self, sid: str, data: Any = None) -> dict[str, Any]:
        name = data.get("name") if isinstance(data, dict) else None
        try:
            instances = await self.host.check_health(name)
        except GleitzeitError as exc:
            return {"ok": False, "error": exc.to_dict()}
        return {"ok": True, "result": {"instances": [health_row(i) for i in instances]}}


def health_row(inst: Any) -> dict[str, Any]:
    """One instance's health as ``providers health`` shows it."""
    return {
        "id": inst.id,
        "name": inst.name,
        "transport": inst.transport,
        "in_flight": inst.in_flight,
        "calls": inst.calls,
        "errors": inst.errors,
        "last_heartbeat": inst.last_heartbeat,
        "latency_ms": None if inst.latency_ewma is None else round(inst.latency_ewma * 1000, 3),
        **inst.health.model_dump(exclude={"latency_ms"}),
        "check_latency_ms": inst.health.latency_ms,
    }
