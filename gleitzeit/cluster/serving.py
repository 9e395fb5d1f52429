"""Calls from other nodes to this node's own instances: the owner's side of the
request channel.

Each message is size-checked and validated as a client's call would be; it names one
instance of this node, and runs on exactly that instance (pinned: it is never routed,
so never forwarded again — no loops between nodes). The instance counts it in flight
while it runs. The caller's dispatcher has already counted and logged the call; here
it is only executed. An instance that is not (or no longer) here answers with a
retryable error, so the caller tries another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gleitzeit.cluster.keys import Keys
from gleitzeit.cluster.messages import ForwardedCall, HealthAsk
from gleitzeit.cluster.outbox import Outbox
from gleitzeit.errors import (
    GleitzeitError,
    MethodNotFoundError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from gleitzeit.request import CALL_ID
from gleitzeit.socketio.wire import error_payload, parse

if TYPE_CHECKING:
    from gleitzeit._registry import Registry
    from gleitzeit.health import HealthReport
    from gleitzeit.instance import ProviderInstance

#: Runs this node's health checks against one of its instances.
CheckHealth = Callable[["ProviderInstance"], Awaitable["HealthReport"]]

log = logging.getLogger("gleitzeit.cluster")


class _Served:
    __slots__ = ("task", "allowed", "credit", "expired")

    def __init__(self, window: int) -> None:
        self.task: asyncio.Task[None] | None = None
        self.allowed = window
        self.credit = asyncio.Event()
        #: Set when the caller's deadline cancelled the task (not the caller, not a stop).
        self.expired = False

    def expire(self) -> None:
        if self.task is not None and not self.task.done():
            self.expired = True
            self.task.cancel()


class Serving:
    """Runs what other nodes ask of this node's instances."""

    def __init__(
        self,
        keys: Keys,
        node: str,
        registry: Registry,
        outbox: Outbox,
        check_health: CheckHealth,
    ) -> None:
        self.keys = keys
        self.node = node
        self.registry = registry
        self.outbox = outbox
        self.check_health = check_health
        self._served: dict[tuple[str, str], _Served] = {}

    @property
    def active(self) -> int:
        return len(self._served)

    def call(self, data: dict[str, Any]) -> None:
        """An ``invoke`` or ``stream`` message from another node."""
        try:
            msg = parse(ForwardedCall, data, "call from another node")
        except GleitzeitError as exc:
            log.warning("refused a call from another node: %s", exc)
            reply_to, key = data.get("reply_to"), data.get("id")
            if isinstance(reply_to, str) and isinstance(key, str):
                self._answer_error(reply_to, key, data.get("t") == "stream", exc)
            return
        served = _Served(msg.window)
        entry = (msg.reply_to, msg.id)
        self._served[entry] = served
        served.task = asyncio.ensure_future(
            self._stream(msg, served) if msg.t == "stream" else self._invoke(msg, served)
        )
        served.task.add_done_callback(lambda _t: self._served.pop(entry, None))

    def health(self, data: dict[str, Any]) -> None:
        """A ``health`` message: run the checks of one own instance now and answer with
        the report (which the instance keeps, so every node sees it)."""
        try:
            msg = parse(HealthAsk, data, "health check from another node")
        except GleitzeitError as exc:
            log.warning("refused a health check from another node: %s", exc)
            return
        served = _Served(1)
        entry = (msg.reply_to, msg.id)
        self._served[entry] = served
        served.task = asyncio.ensure_future(self._health(msg))
        served.task.add_done_callback(lambda _t: self._served.pop(entry, None))

    async def _health(self, msg: HealthAsk) -> None:
        inbox = self.keys.inbox(msg.reply_to)
        try:
            inst = self.registry.get(msg.instance)
            if inst is None or inst.transport == "cluster":
                raise ProviderUnavailableError(
                    f"Instance {msg.instance} is not on node {self.node} (any more)"
                )
            report = await self.check_health(inst)
            inst.health = report
            result = report.model_dump(include={"status", "detail", "latency_ms"})
            self.outbox.post(inbox, {"t": "reply", "id": msg.id, "ok": True, "result": result})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._answer_error(msg.reply_to, msg.id, False, _as_error_of(msg.instance, exc))

    def credit(self, reply_to: str, data: dict[str, Any]) -> None:
        served = self._served.get((reply_to, data.get("id")))  # type: ignore[arg-type]
        n = data.get("n")
        if served is not None and type(n) is int and n > served.allowed:
            served.allowed = n
            served.credit.set()

    def cancel(self, reply_to: str, data: dict[str, Any]) -> None:
        served = self._served.get((reply_to, data.get("id")))  # type: ignore[arg-type]
        if served is not None and served.task is not None:
            served.task.cancel()

    def caller_gone(self, node: str) -> None:
        """``node`` went away: what it asked for is of no use to anyone now."""
        for (reply_to, _), served in list(self._served.items()):
            if reply_to == node and served.task is not None:
                served.task.cancel()

    def cancel_all(self) -> None:
        for served in list(self._served.values()):
            if served.task is not None:
                served.task.cancel()

    async def stop(self) -> None:
        tasks = [s.task for s in self._served.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- running ------------------------------------------------------------------------

    def _instance(self, msg: ForwardedCall) -> ProviderInstance:
        inst = self.registry.get(msg.instance)
        if inst is None or inst.transport == "cluster":
            raise ProviderUnavailableError(
                f"Instance {msg.instance} is not on node {self.node} (any more)",
                hint="the request can be retried on another instance",
            )
        if msg.method not in inst.methods:
            raise MethodNotFoundError(f"Instance {msg.instance} has no method {msg.method!r}")
        return inst

    def _answer_error(self, reply_to: str, key: str, stream: bool, exc: BaseException) -> None:
        inbox = self.keys.inbox(reply_to)
        if stream:
            self.outbox.post(inbox, {"t": "fail", "id": key, "error": error_payload(exc)})
        else:
            self.outbox.post(
                inbox, {"t": "reply", "id": key, "ok": False, "error": error_payload(exc)}
            )

    async def _invoke(self, msg: ForwardedCall, served: _Served) -> None:
        token = CALL_ID.set(msg.checked_call_id())
        inbox = self.keys.inbox(msg.reply_to)
        # The caller's deadline: a timer that cancels this task (no task of its own, as
        # wait_for would start), told apart from a cancel by ``served.expired``.
        timer = asyncio.get_running_loop().call_later(msg.timeout, served.expire)
        try:
            inst = self._instance(msg)
            with inst.track():
                result = await inst.invoke(msg.method, msg.params)
            timer.cancel()
            self.outbox.post(inbox, {"t": "reply", "id": msg.id, "ok": True, "result": result})
        except asyncio.CancelledError:
            if not served.expired:
                raise  # the caller cancelled, or this node stops: nobody waits for an answer
            self._answer_error(
                msg.reply_to,
                msg.id,
                False,
                ProviderTimeoutError(f"{msg.method} took longer than {msg.timeout:g}s"),
            )
        except Exception as exc:
            self._answer_error(msg.reply_to, msg.id, False, _as_error(msg, exc))
        finally:
            timer.cancel()
            CALL_ID.reset(token)

    async def _stream(self, msg: ForwardedCall, served: _Served) -> None:
        token = CALL_ID.set(msg.checked_call_id())
        inbox = self.keys.inbox(msg.reply_to)
        sent = 0
        try:
            inst = self._instance(msg)
            with inst.track():
                chunks = inst.stream(msg.method, msg.params)
                try:
                    async for chunk in chunks:
                        while sent >= served.allowed:  # back-pressure: wait for credit
                            served.credit.clear()
                            await served.credit.wait()
                        sent += 1
                        # Awaited, so chunks go out in order and a slow Redis slows
                        # the producer rather than piling messages up here.
                        await self.outbox.publish(
                            inbox, {"t": "chunk", "id": msg.id, "chunk": chunk}
                        )
                        if chunk.get("done"):
                            break
                finally:
                    await chunks.aclose()
            self.outbox.post(inbox, {"t": "end", "id": msg.id})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._answer_error(msg.reply_to, msg.id, True, _as_error(msg, exc))
        finally:
            CALL_ID.reset(token)


def _as_error(msg: ForwardedCall, exc: Exception) -> GleitzeitError:
    """What to answer for ``exc``: itself when it is one of ours, else a provider error
    that names the call."""
    return _as_error_of(f"{msg.method} on {msg.instance}", exc)


def _as_error_of(what: str, exc: Exception) -> GleitzeitError:
    if isinstance(exc, GleitzeitError):
        return exc
    return ProviderError(f"{what} failed: {type(exc).__name__}: {exc}")
