"""The ``/providers`` namespace: provider processes connected to ``gleitzeit serve``.

Driven by the Socket.IO transport (``gleitzeit/builtins/socketio_transport.py``), which
is registered through the transports hook like any third-party transport.

Calls to a remote instance are Socket.IO emits with an ack callback, each tracked by
the instance; when the connection drops, every pending call and stream of that
instance fails at once (retryably), instead of waiting for its timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from gleitzeit.errors import (
    GleitzeitError,
    PayloadTooLargeError,
    ProviderUnavailableError,
    StreamError,
    error_from_dict,
)
from gleitzeit.health import HealthReport
from gleitzeit.instance import MethodInfo, ProviderInstance
from gleitzeit.protocol import (
    PROVIDERS_NAMESPACE,
    Heartbeat,
    InvalidMessage,
    InvokeReply,
    Register,
    StreamEnd,
    StreamFailed,
    parse,
    payload_size,
)

log = logging.getLogger("gleitzeit.socketio")

_ids = itertools.count(1)
_END = object()


class RemoteInstance(ProviderInstance):
    """A provider instance in another process, reached over one Socket.IO connection."""

    transport = "socketio"

    def __init__(self, transport: ProvidersNamespace, sid: str, reg: Register) -> None:
        super().__init__(
            name=reg.name,
            kind=reg.kind,
            methods={
                n: MethodInfo(n, d.streaming, d.description, d.params_schema)
                for n, d in reg.methods.items()
            },
            models=reg.models,
            capabilities=reg.capabilities,
            description=reg.description,
            version=reg.version,
            instance_id=f"{reg.name}@{sid[:8]}#{next(_ids)}",
            model_required=reg.model_required,
        )
        self._transport = transport
        self.sid = sid
        self.connected = True
        self.stale = False
        self.last_heartbeat = time.time()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._streams: dict[str, asyncio.Queue[Any]] = {}
        self._delivered: dict[str, int] = {}
        self._calls = itertools.count(1)
        self.health = HealthReport(status="healthy", detail="connected", checked_at=time.time())

    @property
    def _sio(self) -> Any:
        return self._transport.sio

    def _gone(self, what: str) -> ProviderUnavailableError:
        return ProviderUnavailableError(
            f"Provider instance {self.id} disconnected{what}",
            hint="the request can be retried on another instance",
        )

    async def _call(self, event: str, data: dict[str, Any]) -> Any:
        if not self.connected:
            raise self._gone("")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        call_id = next(self._calls)
        self._pending[call_id] = fut

        def ack(*args: Any) -> None:
            if not fut.done():
                fut.set_result(args[0] if args else None)

        try:
            await self._sio.emit(
                event, data, to=self.sid, namespace=PROVIDERS_NAMESPACE, callback=ack
            )
            return await fut
        finally:
            self._pending.pop(call_id, None)

    async def invoke(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        raw = await self._call("invoke", {"method": method, "params": params})
        reply = parse(InvokeReply, raw, "invoke ack")
        if reply.ok:
            return reply.result or {}
        raise error_from_dict(reply.error or {})

    async def stream(self, method: str, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        if not self.connected:
            raise self._gone("")
        stream_id = f"s{next(self._calls)}"
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._streams[stream_id] = queue
        self._delivered[stream_id] = 0
        finished = False
        try:
            await self._sio.emit(
                "stream:start",
                {"stream_id": stream_id, "method": method, "params": params},
                to=self.sid,
                namespace=PROVIDERS_NAMESPACE,
            )
            while True:
                item = await queue.get()
                if item is _END:
                    finished = True
                    yield {"token": "", "done": True}
                    return
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                self._delivered[stream_id] += 1
                if item.get("done"):
                    finished = True
                    yield item
                    return
                yield item
        finally:
            self._streams.pop(stream_id, None)
            self._delivered.pop(stream_id, None)
            if not finished and self.connected:
                # The consumer stopped early: tell the provider to stop producing.
                try:
                    await self._sio.emit(
                        "stream:cancel",
                        {"stream_id": stream_id},
                        to=self.sid,
                        namespace=PROVIDERS_NAMESPACE,
                    )
                except Exception:  # the connection may be going away
                    pass

    def feed(self, stream_id: str, item: Any) -> None:
        queue = self._streams.get(stream_id)
        if queue is not None:
            queue.put_nowait(item)

    async def check_health(self) -> dict[str, Any]:
        if not self.connected:
            return {"status": "unhealthy", "detail": "disconnected"}
        if self.stale:
            return {"status": "unhealthy", "detail": self.health.detail or "no heartbeat"}
        raw = await self._call("health", {"ok": True})
        reply = parse(InvokeReply, raw, "health ack")
        if not reply.ok:
            return {"status": "unhealthy", "detail": (reply.error or {}).get("message")}
        return reply.result or {"status": "healthy"}

    def disconnected(self) -> None:
        """Fail every pending call and stream now."""
        self.connected = False
        for fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(self._gone(" while the call was in flight"))
        for stream_id, queue in list(self._streams.items()):
            if self._delivered.get(stream_id):
                queue.put_nowait(
                    StreamError(
                        f"Provider instance {self.id} disconnected in the middle of the stream"
                    )
                )
            else:
                queue.put_nowait(self._gone(" before the stream began"))
        self.health = HealthReport(
            status="unhealthy", detail="disconnected", checked_at=time.time()
        )

    def describe(self, *, schemas: bool = False) -> dict[str, Any]:
        data = super().describe(schemas=schemas)
        data["last_heartbeat"] = self.last_heartbeat
        return data


class ProvidersNamespace:
    """Remote providers on the ``/providers`` namespace of ``gleitzeit serve``."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.sio: Any = None
        self.by_sid: dict[str, RemoteInstance] = {}
        self._stale_task: asyncio.Task[None] | None = None

    @property
    def server_config(self) -> Any:
        return self.host.config.server

    async def start(self) -> None:
        server = getattr(self.host, "server", None)
        if server is None:
            return  # not serving: nothing to listen on
        self.sio = server.sio
        ns = PROVIDERS_NAMESPACE
        self.sio.on("connect", self._on_connect, namespace=ns)
        self.sio.on("disconnect", self._on_disconnect, namespace=ns)
        self.sio.on("register", self._on_register, namespace=ns)
        self.sio.on("heartbeat", self._on_heartbeat, namespace=ns)
        self.sio.on("stream:data", self._on_stream_data, namespace=ns)
        self.sio.on("stream:end", self._on_stream_end, namespace=ns)
        self.sio.on("stream:error", self._on_stream_error, namespace=ns)
        self._stale_task = asyncio.ensure_future(self._watch_heartbeats())

    async def stop(self) -> None:
        if self._stale_task is not None:
            self._stale_task.cancel()
            try:
                await self._stale_task
            except asyncio.CancelledError:
                pass
            self._stale_task = None
        for sid, inst in list(self.by_sid.items()):
            inst.disconnected()
            self.host.registry.remove(inst.id)
            try:
                # No explicit disconnect: a client that the server disconnects does not
                # reconnect, and providers should come back when the server does.
                await self.sio.emit(
                    "shutdown", {"reason": "server stopping"}, to=sid, namespace=PROVIDERS_NAMESPACE
                )
            except Exception:
                pass
        self.by_sid.clear()

    # -- handlers --------------------------------------------------------------------

    async def _on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        self.host.server.authenticate(auth, environ, who="provider")

    async def _on_disconnect(self, sid: str, *reason: Any) -> None:
        inst = self.by_sid.pop(sid, None)
        if inst is not None:
            log.info("provider instance %s disconnected", inst.id)
            inst.disconnected()
            self.host.registry.remove(inst.id)

    async def _on_register(self, sid: str, data: Any) -> dict[str, Any]:
        try:
            limit = self.server_config.max_payload_bytes
            size = payload_size(data)
            if size > limit:
                raise PayloadTooLargeError(
                    f"registration is {size:,} bytes; the limit is {limit:,}"
                )
            reg = parse(Register, data, "register")
        except GleitzeitError as exc:
            return {"ok": False, "error": exc.to_dict()}
        old = self.by_sid.pop(sid, None)
        if old is not None:  # re-registration on the same connection replaces the instance
            old.disconnected()
            self.host.registry.remove(old.id)
        inst = RemoteInstance(self, sid, reg)
        self.by_sid[sid] = inst
        self.host.registry.add(inst)
        log.info("provider instance %s registered (%d methods)", inst.id, len(inst.methods))
        return {
            "ok": True,
            "instance_id": inst.id,
            "heartbeat_interval": self.server_config.heartbeat_interval,
        }

    async def _on_heartbeat(self, sid: str, data: Any = None) -> None:
        inst = self.by_sid.get(sid)
        if inst is None:
            return
        try:
            parse(Heartbeat, data or {}, "heartbeat")
        except InvalidMessage:
            return
        inst.last_heartbeat = time.time()
        if inst.stale:
            inst.stale = False
            inst.health = HealthReport(
                status="healthy", detail="heartbeat resumed", checked_at=time.time()
            )

    def _on_stream_data(self, sid: str, data: Any) -> None:
        # Synchronous on purpose: chunks must reach the queue in arrival order.
        inst = self.by_sid.get(sid)
        if inst is None:
            return
        # The hottest message of the protocol: checked by hand, to the same rules as
        # the StreamData model, rather than through pydantic per chunk.
        if type(data) is dict:
            stream_id, chunk = data.get("stream_id"), data.get("chunk")
            if type(stream_id) is str and type(chunk) is dict:
                inst.feed(stream_id, chunk)

    def _on_stream_end(self, sid: str, data: Any) -> None:
        inst = self.by_sid.get(sid)
        if inst is None:
            return
        try:
            msg = StreamEnd.model_validate(data)
        except Exception:
            return
        inst.feed(msg.stream_id, _END)

    def _on_stream_error(self, sid: str, data: Any) -> None:
        inst = self.by_sid.get(sid)
        if inst is None:
            return
        try:
            msg = StreamFailed.model_validate(data)
        except Exception:
            return
        inst.feed(msg.stream_id, error_from_dict(msg.error))

    async def _watch_heartbeats(self) -> None:
        cfg = self.server_config
        while True:
            await asyncio.sleep(min(cfg.heartbeat_interval, cfg.stale_after) / 2)
            now = time.time()
            for inst in list(self.by_sid.values()):
                silent = now - inst.last_heartbeat
                if not inst.stale and silent > cfg.stale_after:
                    inst.stale = True
                    inst.health = HealthReport(
                        status="unhealthy",
                        detail=f"no heartbeat for {silent:.1f}s (stale after {cfg.stale_after:g}s)",
                        checked_at=now,
                    )
                    log.warning("provider instance %s is stale", inst.id)
