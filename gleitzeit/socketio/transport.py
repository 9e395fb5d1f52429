"""The ``/providers`` namespace of ``gleitzeit serve`` as a host transport.

The server builds it from its own Socket.IO server and authenticator and hands it to
the host; it reports the instances that register (and go away) to the host's registry
through the :class:`gleitzeit.transport.InstanceSink` it is given, and knows nothing
else of the host.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from gleitzeit.config.models import ServerConfig
from gleitzeit.errors import (
    ForbiddenError,
    GleitzeitError,
    InvalidMessage,
    PayloadTooLargeError,
    error_from_dict,
)
from gleitzeit.health import HealthReport
from gleitzeit.socketio.handlers import Handlers
from gleitzeit.socketio.remote_instance import RemoteInstance
from gleitzeit.socketio.wire import (
    PROVIDERS_NAMESPACE,
    Heartbeat,
    Register,
    StreamData,
    StreamEnd,
    StreamFailed,
    parse,
    payload_size,
)
from gleitzeit.transport import InstanceSink, Transport

log = logging.getLogger("gleitzeit.socketio")

_HEARTBEAT_KEYS = frozenset(("instance_id", "in_flight"))

#: ``authenticate(auth, environ, who=...)``: the connection's principal; raises to refuse.
Authenticate = Callable[..., Any]


class SocketIOTransport(Transport):
    """Provider processes connected over Socket.IO (``gleitzeit provider run``)."""

    name = "socketio"

    def __init__(
        self,
        instances: InstanceSink,
        *,
        sio: Any,
        authenticate: Authenticate,
        config: ServerConfig,
    ) -> None:
        super().__init__(instances)
        self.sio = sio
        self.authenticate = authenticate
        self.server_config = config
        self.by_sid: dict[str, RemoteInstance] = {}
        # Who each connection is (its credential's role and provider names).
        self.principals: dict[str, Any] = {}
        self.handlers = Handlers(sio, PROVIDERS_NAMESPACE)
        self._stale_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ns = PROVIDERS_NAMESPACE
        self.sio.on("connect", self._on_connect, namespace=ns)
        self.sio.on("disconnect", self._on_disconnect, namespace=ns)
        on = self.handlers.on
        on("register", self._on_register, acked=True)
        on("heartbeat", self._on_heartbeat, acked=False)
        on("stream:data", self._on_stream_data, acked=False)
        on("stream:end", self._on_stream_end, acked=False)
        on("stream:error", self._on_stream_error, acked=False)
        self.handlers.on_unknown()
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
            self.instances.remove(inst.id)
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
        self.principals[sid] = self.authenticate(auth, environ, who="provider")

    async def _on_disconnect(self, sid: str, *reason: Any) -> None:
        self.principals.pop(sid, None)
        self.handlers.forget(sid)
        inst = self.by_sid.pop(sid, None)
        if inst is not None:
            log.info("provider instance %s disconnected", inst.id)
            inst.disconnected()
            self.instances.remove(inst.id)

    async def _on_register(self, sid: str, data: Any) -> dict[str, Any]:
        try:
            limit = self.server_config.max_payload_bytes
            size = payload_size(data)
            if size > limit:
                raise PayloadTooLargeError(
                    f"registration is {size:,} bytes; the limit is {limit:,}"
                )
            reg = parse(Register, data, "register")
            self._may_register(sid, reg)
            self._agrees(sid, reg)
        except GleitzeitError as exc:
            return {"ok": False, "error": exc.to_dict()}
        emit = functools.partial(self.sio.emit, to=sid, namespace=PROVIDERS_NAMESPACE)
        try:
            inst = RemoteInstance(emit, sid, reg)
        except GleitzeitError as exc:
            return {"ok": False, "error": exc.to_dict()}
        old = self.by_sid.pop(sid, None)
        if old is not None:  # re-registration on the same connection replaces the instance
            old.disconnected()
            self.instances.remove(old.id)
        inst.window = self.server_config.stream_window
        inst.max_payload_bytes = self.server_config.max_payload_bytes
        self.by_sid[sid] = inst
        self.instances.add(inst)
        log.info("provider instance %s registered (%d methods)", inst.id, len(inst.methods))
        if reg.skipped_calls:
            log.warning(
                "provider instance %s did not run %d call(s) it received after the server had "
                "dropped its connection (retried elsewhere): %s",
                inst.id,
                len(reg.skipped_calls),
                ", ".join(reg.skipped_calls[:10]),
            )
        return {
            "ok": True,
            "instance_id": inst.id,
            "heartbeat_interval": self.server_config.heartbeat_interval,
            "max_payload_bytes": self.server_config.max_payload_bytes,
        }

    def _may_register(self, sid: str, reg: Register) -> None:
        """A provider name is owned: only a credential scoped to it may register it."""
        principal = self.principals.get(sid)
        if principal is None or not principal.may_register(reg.name):
            scope = principal.scope() if principal is not None else "nothing"
            raise ForbiddenError(
                f"this credential may not register provider {reg.name!r}; it may register {scope}",
                hint=f"mint one with `gleitzeit token create --role provider --provider "
                f"{reg.name}`",
            )

    def _agrees(self, sid: str, reg: Register) -> None:
        """Instances of one provider agree on kind and method set."""
        for other in self.instances.instances(reg.name):
            if getattr(other, "sid", None) == sid:
                continue  # this connection re-registering
            problems = []
            if other.kind != reg.kind:
                problems.append(f"kind {reg.kind!r} where it is {other.kind!r}")
            mine, theirs = set(reg.methods), set(other.methods)
            if mine - theirs:
                problems.append(f"methods {sorted(mine - theirs)} it does not have")
            if theirs - mine:
                problems.append(f"no {sorted(theirs - mine)}")
            flags = [
                m for m in mine & theirs if reg.methods[m].streaming != other.methods[m].streaming
            ]
            if flags:
                problems.append(f"a different 'streaming' for {sorted(flags)}")
            if problems:
                raise InvalidMessage(
                    f"provider {reg.name!r} is already registered ({other.id}) and this "
                    "registration differs: " + "; ".join(problems),
                    hint="instances of one provider must offer the same kind and methods; "
                    "use another name for a different provider",
                )

    def _on_heartbeat(self, sid: str, data: Any = None) -> None:
        # Sent by every provider every few seconds: the usual shape is checked by hand
        # (to the Heartbeat model's rules); anything else goes through the model, which
        # names the field.
        if data is not None and not _plain_heartbeat(data):
            parse(Heartbeat, data, "heartbeat")
        inst = self.by_sid.get(sid)
        if inst is None:
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
        if type(data) is dict and len(data) == 2:
            stream_id, chunk = data.get("stream_id"), data.get("chunk")
            if type(stream_id) is str and type(chunk) is dict:
                inst.streams.data(stream_id, chunk)
                return
        parse(StreamData, data, "stream:data")  # raises, naming the field

    def _on_stream_end(self, sid: str, data: Any) -> None:
        msg = parse(StreamEnd, data, "stream:end")
        inst = self.by_sid.get(sid)
        if inst is not None:
            inst.streams.end(msg.stream_id)

    def _on_stream_error(self, sid: str, data: Any) -> None:
        msg = parse(StreamFailed, data, "stream:error")
        inst = self.by_sid.get(sid)
        if inst is not None:
            inst.streams.fail(msg.stream_id, error_from_dict(msg.error))

    async def _watch_heartbeats(self) -> None:
        cfg = self.server_config
        while True:
            await asyncio.sleep(min(cfg.heartbeat_interval, cfg.stale_after) / 2)
            now = time.time()
            for inst in list(self.by_sid.values()):
                silent = now - (inst.last_heartbeat or 0.0)
                if not inst.stale and silent > cfg.stale_after:
                    inst.stale = True
                    inst.health = HealthReport(
                        status="unhealthy",
                        detail=f"no heartbeat for {silent:.1f}s (stale after {cfg.stale_after:g}s)",
                        checked_at=now,
                    )
                    log.warning("provider instance %s is stale", inst.id)


def _plain_heartbeat(data: Any) -> bool:
    """A heartbeat the Heartbeat model accepts as it is: ``instance_id`` a string,
    ``in_flight`` a non-negative int (either may be missing or null), nothing else."""
    if type(data) is not dict or not data.keys() <= _HEARTBEAT_KEYS:
        return False
    instance_id = data.get("instance_id")
    in_flight = data.get("in_flight")
    return (instance_id is None or type(instance_id) is str) and (
        in_flight is None or (type(in_flight) is int and in_flight >= 0)
    )
