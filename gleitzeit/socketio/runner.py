r"""Run a provider as a separate process that serves a ``gleitzeit serve`` over Socket.IO.

    runner = ProviderRunner(MyProvider(), "http://127.0.0.1:8000", token="s3cret")
    await runner.run()          # until stop() or SIGINT/SIGTERM

The same provider class runs in-process or here, unchanged. The runner registers,
sends heartbeats, answers ``invoke``/``stream:start``/``health``, and after a dropped
connection reconnects with backoff and registers again.

Abandoned calls are not started: an ``invoke`` past its ``deadline``, or one that
arrives on a connection the server has probably dropped already — the process was
stalled (SIGSTOP, swapping, a debugger) longer than half the server's ping timeout,
and the invokes queued meanwhile are read right after it resumes. Those are answered
``unavailable`` (retryable; lost if the connection is gone) and their ``call_id``\s are
reported with the next registration. A call started before a stall may still run a
second time elsewhere: delivery is at least once (docs/security.md).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from gleitzeit.errors import (
    ConnectFailed,
    GleitzeitError,
    InvalidMessage,
    PayloadTooLargeError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from gleitzeit.provider import Provider, awaited
from gleitzeit.request import CALL_ID
from gleitzeit.socketio.flow import Credit
from gleitzeit.socketio.packets import Packet, encode_once
from gleitzeit.socketio.wire import (
    PROVIDERS_NAMESPACE,
    Invoke,
    InvokeFields,
    RegisterAck,
    StreamCancel,
    StreamStart,
    error_payload,
    parse,
    payload_size,
    plain_invoke,
)

log = logging.getLogger("gleitzeit.socketio.runner")
#: One line per request served, with the call id the server sent.
calls_log = logging.getLogger("gleitzeit.provider.calls")


def _log_call(
    provider: Provider, call_id: str | None, method: str, outcome: str, began: float
) -> None:
    if calls_log.isEnabledFor(logging.INFO):
        ms = round((time.perf_counter() - began) * 1000, 3)
        calls_log.info(
            "%s %s in %g ms",
            method,
            outcome,
            ms,
            extra={
                "fields": {
                    "call_id": call_id,
                    "method": method,
                    "provider": provider.name,
                    "outcome": outcome,
                    "ms": ms,
                }
            },
        )


def _outcome(reply: dict[str, Any]) -> str:
    return "ok" if reply.get("ok") else str((reply.get("error") or {}).get("code", "error"))


def _reply_error(provider: Provider, method: str, exc: BaseException) -> dict[str, Any]:
    if not isinstance(exc, GleitzeitError):
        log.debug("provider %s raised in %s", provider.name, method, exc_info=exc)
        exc = ProviderError(
            f"Provider {provider.name!r} failed in {method}: {type(exc).__name__}: {exc}"
        )
    return {"ok": False, "error": error_payload(exc)}


class ProviderRunner:
    """Serve one provider object to a server until stopped."""

    def __init__(
        self,
        provider: Provider,
        url: str,
        *,
        token: str | None = None,
        heartbeat_interval: float | None = None,
        reconnect_delay: float = 0.5,
        reconnect_delay_max: float = 5.0,
    ) -> None:
        self.provider = provider
        self.url = url.rstrip("/")
        self.token = token
        self.heartbeat_interval = heartbeat_interval
        self.reconnect_delay = reconnect_delay
        self.reconnect_delay_max = reconnect_delay_max
        self.instance_id: str | None = None
        self.registered = asyncio.Event()
        self._stop = asyncio.Event()
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._credits: dict[str, Credit] = {}
        # Work started from event handlers; kept so it is awaited or cancelled.
        self._tasks: set[asyncio.Task[None]] = set()
        self._sio: Any = None
        self._in_flight = 0
        self._fatal: GleitzeitError | None = None
        self._refused = ""
        # Set once the first connect succeeded: a refusal after it is the library's
        # reconnection (or ours) being refused.
        self._connected_once = False
        #: Called when the connection to the server drops (not on :meth:`stop`).
        self.on_drop: Callable[[], None] | None = None
        # Stall detection (see the module docstring).
        self.skipped: deque[str] = deque(maxlen=1000)
        self._last_tick = 0.0
        self._stalled_at = -1e9
        self._stall_sid: str | None = None
        #: The server's max_payload_bytes (from the registration ack).
        self.max_payload_bytes: int | None = None

    def _client(self) -> Any:
        import socketio

        sio = socketio.AsyncClient(
            reconnection=True,
            reconnection_attempts=0,
            reconnection_delay=self.reconnect_delay,
            reconnection_delay_max=self.reconnect_delay_max,
            randomization_factor=0.5,
            handle_sigint=False,
            serializer=Packet,
        )
        ns = PROVIDERS_NAMESPACE
        sio.on("connect", self._on_connect, namespace=ns)
        sio.on("disconnect", self._on_disconnect, namespace=ns)
        sio.on("invoke", self._on_invoke, namespace=ns)
        sio.on("stream:start", self._on_stream_start, namespace=ns)
        sio.on("stream:cancel", self._on_stream_cancel, namespace=ns)
        sio.on("stream:credit", self._on_stream_credit, namespace=ns)
        sio.on("health", self._on_health, namespace=ns)
        sio.on("shutdown", self._on_shutdown, namespace=ns)
        sio.on("connect_error", self._on_connect_error, namespace=ns)
        return sio

    def _on_connect_error(self, data: Any = None) -> None:
        self._refused = (
            str(data.get("message", data)) if isinstance(data, dict) else str(data or "")
        )
        if self._connected_once and "authentication failed" in self._refused:
            # A reconnection refused (the server came back with another token): as
            # final as a refusal of the first connect, not retried forever.
            self._give_up(ConnectFailed(f"{self.url} refused the provider: {self._refused}"))

    def _give_up(self, exc: GleitzeitError) -> None:
        """End :meth:`run` with ``exc``."""
        if self._fatal is None:
            self._fatal = exc
        self._stop.set()

    # -- lifecycle -------------------------------------------------------------------

    async def run(self) -> None:
        """Start the provider, connect (retrying until the server is there), serve, and
        on :meth:`stop` disconnect and stop the provider."""
        await awaited(self.provider, "start")
        # A provider that cannot describe itself (a params model with no JSON Schema)
        # fails here, at once, rather than at each registration, which no retry mends.
        self.provider.registration()
        self._sio = self._client()
        heartbeat = asyncio.ensure_future(self._heartbeats())
        ticks = asyncio.ensure_future(self._ticks())
        try:
            await self._connect_first()
            await self._stop.wait()
            if self._fatal is not None:
                raise self._fatal
        finally:
            heartbeat.cancel()
            ticks.cancel()
            pending = [heartbeat, ticks, *self._streams.values(), *self._tasks]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for close in ("shutdown", "disconnect"):
                # shutdown() ends the library's reconnection attempts, if under way;
                # disconnect() closes the engine's HTTP session in any case.
                try:
                    await getattr(self._sio, close)()
                except Exception:
                    pass
            await awaited(self.provider, "stop")

    def stop(self) -> None:
        self._stop.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_first(self) -> None:
        import socketio

        delay = self.reconnect_delay
        while not self._stop.is_set():
            try:
                await self._sio.connect(
                    self.url,
                    namespaces=[PROVIDERS_NAMESPACE],
                    auth={"token": self.token} if self.token else None,
                    transports=["websocket"],
                    wait_timeout=10,
                )
                self._connected_once = True
                return
            except socketio.exceptions.ConnectionError as exc:
                text = self._refused or str(exc)
                self._refused = ""
                if "authentication failed" in text:
                    raise ConnectFailed(f"{self.url} refused the provider: {text}") from None
                log.info("cannot connect to %s (%s); retrying in %.1fs", self.url, text, delay)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.reconnect_delay_max)

    async def _reconnect_later(self) -> None:
        await asyncio.sleep(self.reconnect_delay)
        try:
            await self._sio.disconnect()
        except Exception:
            pass
        try:
            await self._connect_first()
        except ConnectFailed as exc:
            self._give_up(exc)

    def _fits(self, payload: Any, method: str) -> None:
        """Refuse to send more than the server accepts: the server would drop the
        connection for it; the caller gets ``payload_too_large`` instead."""
        limit = self.max_payload_bytes
        if limit is not None:
            try:
                # The packet that sends it takes this JSON as it is.
                size = len(encode_once(payload))
            except (TypeError, ValueError):  # not plain JSON: counted as payload_size does
                size = payload_size(payload)
            if size > limit:
                raise PayloadTooLargeError(
                    f"{method}: the result is {size:,} bytes; the server's limit is {limit:,}",
                    hint="ask for less, or raise server.max_payload_bytes",
                )

    def _sid(self) -> str | None:
        try:
            sid: str | None = self._sio.get_sid(PROVIDERS_NAMESPACE)
        except Exception:
            return None
        return sid

    def _noticed_stall(self) -> float:
        """Called often: a gap since the last tick longer than half the server's ping
        timeout means the server may have dropped this connection meanwhile. Returns
        the loop's time now."""
        now = asyncio.get_running_loop().time()
        eio = getattr(self._sio, "eio", None)
        limit = max(float(getattr(eio, "ping_timeout", 0) or 10.0) / 2, 0.5)
        if self._last_tick and now - self._last_tick > limit:
            self._stalled_at, self._stall_sid = now, self._sid()
            log.warning(
                "this process was stalled for %.1fs; calls queued meanwhile are not started",
                now - self._last_tick,
            )
        self._last_tick = now
        return now

    async def _ticks(self) -> None:
        while True:
            self._noticed_stall()
            await asyncio.sleep(0.1)

    def _abandoned(self, msg: Invoke | InvokeFields) -> GleitzeitError | None:
        """Why an invoke should not be started, or None."""
        if msg.deadline is not None and time.time() > msg.deadline:
            return ProviderTimeoutError(f"{msg.method}: its deadline passed before it started")
        now = self._noticed_stall()
        if self._stall_sid is not None and self._sid() == self._stall_sid:
            if now - self._stalled_at < 1.0:
                return ProviderUnavailableError(
                    f"{msg.method}: not started, the provider was stalled and its connection "
                    "is probably gone",
                    hint="the call can be retried on another instance",
                )
        return None

    async def _heartbeats(self) -> None:
        while True:
            await self.registered.wait()
            if self._sio is not None and self._sio.connected:
                try:
                    await self._sio.emit(
                        "heartbeat",
                        {"instance_id": self.instance_id, "in_flight": self._in_flight},
                        namespace=PROVIDERS_NAMESPACE,
                    )
                except Exception:
                    pass
            # The interval comes with the registration ack unless set here.
            await asyncio.sleep(self.heartbeat_interval or 5.0)

    # -- handlers --------------------------------------------------------------------

    async def _on_connect(self) -> None:
        # Registration needs an ack, which cannot be awaited inside the connect handler.
        self._spawn(self._register())

    async def _register(self) -> None:
        try:
            payload = dict(self.provider.registration())
            skipped = list(self.skipped)
            if skipped:
                payload["skipped_calls"] = skipped
            raw = await self._sio.call(
                "register", payload, namespace=PROVIDERS_NAMESPACE, timeout=10
            )
            ack = parse(RegisterAck, raw, "register ack")
        except Exception as exc:
            log.error("registration with %s failed: %s", self.url, exc)
            return
        if not ack.ok:
            log.error("%s refused the registration: %s", self.url, (ack.error or {}).get("message"))
            self._give_up(
                ConnectFailed(
                    f"{self.url} refused the registration: {(ack.error or {}).get('message')}"
                )
            )
            return
        self.instance_id = ack.instance_id
        self.max_payload_bytes = ack.max_payload_bytes
        for call_id in skipped:
            if self.skipped and self.skipped[0] == call_id:
                self.skipped.popleft()
        if self.heartbeat_interval is None and ack.heartbeat_interval:
            self.heartbeat_interval = ack.heartbeat_interval
        self.registered.set()
        log.info("registered as %s", self.instance_id)
        try:
            await awaited(self.provider, "on_connected")
        except Exception:
            log.warning("on_connected failed", exc_info=True)

    async def _on_disconnect(self, *reason: Any) -> None:
        self.registered.clear()
        if self.on_drop is not None and not self._stop.is_set():
            self.on_drop()
        if reason and str(reason[0]) == "io server disconnect" and not self._stop.is_set():
            # The server dropped us on purpose; the client library will not reconnect
            # by itself after that, so do it here.
            self._spawn(self._reconnect_later())
        for task in list(self._streams.values()):
            task.cancel()
        try:
            await awaited(self.provider, "on_disconnected")
        except Exception:
            log.warning("on_disconnected failed", exc_info=True)

    async def _on_shutdown(self, data: Any = None) -> None:
        log.info("server is shutting down; will reconnect when it is back")

    async def _on_invoke(self, data: Any = None) -> dict[str, Any]:
        self._in_flight += 1
        method = "?"
        began = time.perf_counter()
        call_id = data.get("call_id") if isinstance(data, dict) else None
        # The provider's own log lines carry the server's call id while it serves it.
        token = CALL_ID.set(call_id if isinstance(call_id, str) else None)
        reply: dict[str, Any] = {"ok": False}
        try:
            msg = plain_invoke(data) or parse(Invoke, data, "invoke")
            method = msg.method
            why = self._abandoned(msg)
            if why is not None:
                if msg.call_id:
                    self.skipped.append(msg.call_id)
                return {"ok": False, "error": why.to_dict()}
            result = await self.provider.invoke(msg.method, msg.params)
            reply = {"ok": True, "result": result}
            self._fits(reply, msg.method)
        except Exception as exc:
            reply = _reply_error(self.provider, method, exc)
        finally:
            self._in_flight -= 1
            _log_call(self.provider, CALL_ID.get(), method, _outcome(reply), began)
            CALL_ID.reset(token)
        return reply

    async def _on_health(self, data: Any = None) -> dict[str, Any]:
        try:
            return {"ok": True, "result": await awaited(self.provider, "health")}
        except Exception as exc:
            return _reply_error(self.provider, "health", exc)

    async def _on_stream_start(self, data: Any = None) -> None:
        stream_id = data.get("stream_id") if isinstance(data, dict) else None
        try:
            msg = parse(StreamStart, data, "stream:start")
        except GleitzeitError as exc:
            if isinstance(stream_id, str):
                await self._emit_error(stream_id, exc)
            return
        if msg.stream_id in self._streams:
            await self._emit_error(
                msg.stream_id, InvalidMessage(f"stream_id {msg.stream_id!r} is already in use")
            )
            return
        if msg.window is not None:
            self._credits[msg.stream_id] = Credit(msg.window)
        self._streams[msg.stream_id] = asyncio.ensure_future(self._pump(msg))

    async def _emit_error(self, stream_id: str, exc: BaseException) -> None:
        payload = _reply_error(self.provider, "stream", exc)["error"]
        await self._sio.emit(
            "stream:error",
            {"stream_id": stream_id, "error": payload},
            namespace=PROVIDERS_NAMESPACE,
        )

    async def _pump(self, msg: StreamStart) -> None:
        ns = PROVIDERS_NAMESPACE
        self._in_flight += 1
        began = time.perf_counter()
        CALL_ID.set(msg.call_id)  # this task's own context
        outcome = "ok"
        credit = self._credits.get(msg.stream_id)
        try:
            async for chunk in self.provider.stream(msg.method, msg.params):
                self._fits(chunk, msg.method)
                if credit is not None:
                    # Paused here while the server holds a window's worth of chunks;
                    # the server cancels a stream that stays stalled.
                    await credit.spend()
                await self._sio.emit(
                    "stream:data", {"stream_id": msg.stream_id, "chunk": chunk}, namespace=ns
                )
            await self._sio.emit("stream:end", {"stream_id": msg.stream_id}, namespace=ns)
        except asyncio.CancelledError:
            outcome = "cancelled"
        except Exception as exc:
            outcome = getattr(exc, "code", "internal_error")
            try:
                await self._emit_error(msg.stream_id, exc)
            except Exception:
                pass
        finally:
            self._in_flight -= 1
            self._streams.pop(msg.stream_id, None)
            self._credits.pop(msg.stream_id, None)
            _log_call(self.provider, msg.call_id, msg.method, outcome, began)

    def _on_stream_credit(self, data: Any = None) -> None:
        if type(data) is dict:
            credit = self._credits.get(str(data.get("stream_id")))
            n = data.get("n")
            if credit is not None and type(n) is int and n > 0:
                credit.grant(n)

    async def _on_stream_cancel(self, data: Any = None) -> None:
        try:
            msg = parse(StreamCancel, data, "stream:cancel")
        except GleitzeitError:
            return
        task = self._streams.get(msg.stream_id)
        if task is not None:
            task.cancel()
