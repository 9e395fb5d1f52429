"""A provider instance in another process, reached over one Socket.IO connection.

Calls are emits with an ack callback, each tracked; streams come back through a
:class:`StreamDemux`. When the connection drops, every pending call and stream fails
at once (retryably, unless a stream had begun) instead of waiting for its timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from gleitzeit.errors import (
    GleitzeitError,
    InvalidMessage,
    InvalidParamsError,
    MethodNotFoundError,
    PayloadTooLargeError,
    ProviderError,
    ProviderUnavailableError,
    StreamError,
    error_from_dict,
)
from gleitzeit.health import HealthReport
from gleitzeit.instance import ProviderInstance
from gleitzeit.request import CALL_DEADLINE, CALL_ID
from gleitzeit.socketio.demux import StreamDemux
from gleitzeit.socketio.flow import Grants
from gleitzeit.socketio.packets import size_bound
from gleitzeit.socketio.wire import InvokeReply, Register, parse, payload_size

#: ``emit(event, data, callback=None)`` to this instance's connection.
Emit = Callable[..., Awaitable[None]]

_ids = itertools.count(1)


class RemoteInstance(ProviderInstance):
    """One registered provider connection."""

    transport = "socketio"

    #: Flow-control window of streams from this instance (server.stream_window).
    window = 32
    #: Largest reply accepted from this instance (server.max_payload_bytes).
    max_payload_bytes = 1_000_000

    def __init__(self, emit: Emit, sid: str, reg: Register) -> None:
        super().__init__(
            name=reg.name,
            kind=reg.kind,
            methods=dict(reg.methods),
            models=reg.models,
            capabilities=reg.capabilities,
            description=reg.description,
            version=reg.version,
            instance_id=f"{reg.name}@{sid[:8]}#{next(_ids)}",
            model_required=reg.model_required,
        )
        self._emit = emit
        self.sid = sid
        self.connected = True
        self.stale = False
        self.last_heartbeat = time.time()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.streams = StreamDemux()
        self._calls = itertools.count(1)
        self.health = HealthReport(status="healthy", detail="connected", checked_at=time.time())
        self._validators = params_validators(reg)

    def _gone(self, what: str) -> ProviderUnavailableError:
        return ProviderUnavailableError(
            f"Provider instance {self.id} disconnected{what}",
            hint="the request can be retried on another instance",
        )

    async def _call(self, event: str, data: dict[str, Any]) -> tuple[Any, bool]:
        """The ack, and whether it is known to be within ``max_payload_bytes`` (from
        the length of its text)."""
        if not self.connected:
            raise self._gone("")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[Any, bool]] = loop.create_future()
        call_id = next(self._calls)
        self._pending[call_id] = fut

        def ack(*args: Any) -> None:
            if not fut.done():
                raw = args[0] if args else None
                bound = size_bound(raw)
                fut.set_result((raw, bound is not None and bound <= self.max_payload_bytes))

        try:
            await self._emit(event, data, callback=ack)
            return await fut
        finally:
            self._pending.pop(call_id, None)

    def _validate(self, method: str, params: dict[str, Any]) -> None:
        """Check params against the registered schema, as an in-process provider does,
        before anything is sent."""
        validator = self._validators.get(method)
        if validator is None:
            return
        problems = [
            f"{'.'.join(str(p) for p in e.absolute_path) or '(params)'}: {e.message}"
            for e in validator.iter_errors(params)
        ]
        if problems:
            raise InvalidParamsError(
                f"Invalid parameters for {method}: " + "; ".join(sorted(problems)[:10]),
                hint=f"see `gleitzeit providers list --json` for the schema of {method}",
            )

    def _fits(self, raw: dict[str, Any]) -> None:
        size = payload_size(raw)
        if size > self.max_payload_bytes:
            raise PayloadTooLargeError(
                f"the reply of {self.id} is {size:,} bytes; the limit is "
                f"{self.max_payload_bytes:,}",
                hint="ask for less, or raise server.max_payload_bytes in gleitzeit.yaml",
            )

    def _reply(self, raw: Any, what: str, fits: bool = False) -> InvokeReply:
        """A provider's ack, checked: too large is the caller's ``payload_too_large``; a
        malformed one counts against the instance (not the caller)."""
        if raw is not None and not isinstance(raw, dict):
            raise ProviderError(f"{self.id} sent a malformed {what}: got {type(raw).__name__}")
        if raw is not None and not fits:
            self._fits(raw)
        try:
            reply: InvokeReply = parse(InvokeReply, raw, what)
        except InvalidMessage as exc:
            raise ProviderError(f"{self.id} sent a malformed {what}: {exc.message}") from None
        return reply

    async def invoke(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._validate(method, params)
        data: dict[str, Any] = {"method": method, "params": params}
        call_id = CALL_ID.get()
        if call_id is not None:
            data["call_id"] = call_id
        deadline = CALL_DEADLINE.get()
        if deadline is not None and deadline != math.inf:
            data["deadline"] = round(deadline, 3)
        raw, fits = await self._call("invoke", data)
        if type(raw) is dict and len(raw) == 2 and raw.get("ok") is True:
            # The usual reply, checked by hand to the InvokeReply model's rules.
            result = raw.get("result")
            if type(result) is dict:
                if not fits:
                    self._fits(raw)
                return result
        reply = self._reply(raw, "invoke ack", fits)
        if reply.ok:
            return reply.result or {}
        raise error_from_dict(reply.error or {})

    async def stream(
        self, method: str, params: dict[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        if not self.connected:
            raise self._gone("")
        desc = self.methods.get(method)
        if desc is not None and not desc.streaming:
            raise MethodNotFoundError(
                f"{method} on provider {self.name!r} does not stream",
                hint="call it without --stream",
            )
        self._validate(method, params)
        stream_id = f"s{next(self._calls)}"
        window = self.window
        # A provider that ignores its window is cut off rather than buffered.
        self.streams.open(stream_id, limit=window * 2 + 2)
        grants = Grants(window)
        finished = False
        start: dict[str, Any] = {"stream_id": stream_id, "method": method, "params": params}
        call_id = CALL_ID.get()
        if call_id is not None:
            start["call_id"] = call_id
        try:
            start["window"] = window
            await self._emit("stream:start", start)
            async for chunk in self.streams.read(stream_id):
                if chunk.get("done"):
                    finished = True
                yield chunk
                n = grants.consumed_one()
                if n and not finished and self.connected:
                    await self._emit("stream:credit", {"stream_id": stream_id, "n": n})
            finished = True
        except GleitzeitError:  # the provider (or the connection) ended it
            finished = True
            raise
        finally:
            if not finished and self.connected:
                # The consumer stopped early, or the stream failed: tell the provider
                # to stop producing.
                try:
                    await self._emit("stream:cancel", {"stream_id": stream_id})
                except Exception:  # the connection may be going away
                    pass
            self.streams.close(stream_id)

    async def check_health(self) -> dict[str, Any]:
        if not self.connected:
            return {"status": "unhealthy", "detail": "disconnected"}
        if self.stale:
            return {"status": "unhealthy", "detail": self.health.detail or "no heartbeat"}
        raw, fits = await self._call("health", {"ok": True})
        if raw is None:
            # No health handler (the protocol doc's minimal example): a provider that
            # heartbeats is healthy.
            return {"status": "healthy", "detail": "heartbeating (no health handler)"}
        reply = self._reply(raw, "health ack", fits)
        if not reply.ok:
            return {"status": "unhealthy", "detail": (reply.error or {}).get("message")}
        return reply.result or {"status": "healthy"}

    def disconnected(self) -> None:
        """Fail every pending call and stream now."""
        self.connected = False
        for fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(self._gone(" while the call was in flight"))
        self.streams.fail_all(
            lambda began: (
                StreamError(f"Provider instance {self.id} disconnected in the middle of the stream")
                if began
                else self._gone(" before the stream began")
            )
        )
        self.health = HealthReport(
            status="unhealthy", detail="disconnected", checked_at=time.time()
        )

    def describe(self, *, schemas: bool = False) -> dict[str, Any]:
        data = super().describe(schemas=schemas)
        data["last_heartbeat"] = self.last_heartbeat
        return data


def params_validators(reg: Register) -> dict[str, Any]:
    """A JSON Schema validator per method whose ``params_schema`` says more than "an
    object"; :class:`InvalidMessage` naming the method for a schema that is not one."""
    out: dict[str, Any] = {}
    for name, desc in reg.methods.items():
        schema = desc.params_schema
        if not schema or schema == {"type": "object"}:
            continue
        from jsonschema import exceptions, validators

        cls = validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except exceptions.SchemaError as exc:
            raise InvalidMessage(
                f"invalid 'register' payload: methods.{name}.params_schema is not a valid "
                f"JSON Schema: {exc.message}"
            ) from None
        out[name] = cls(schema)
    return out
