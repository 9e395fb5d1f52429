"""Calls to instances on other nodes: the caller's side of the request channels.

A call to an instance on node *a* is one message on *a*'s request channel
(``{prefix}:inbox:a``) naming the instance, the method, the parameters, the call id,
how long the caller waits, and where to answer (this node's own request channel).
``PUBLISH`` says how many subscribers took it: none means *a* is gone, and the call
fails at once, retryably. Every call waiting for an answer is kept here, so when *a*
disappears (its heartbeats stop, it says goodbye, or this node loses Redis) all of
them fail at once, retryably, and the dispatcher tries them elsewhere.

Streams come back as ``chunk`` messages in order; the caller grants the owner
``window`` chunks ahead and sends ``credit`` as it reads (back-pressure), and
``cancel`` when it stops reading early.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

from gleitzeit.cluster.keys import Keys
from gleitzeit.cluster.outbox import Outbox
from gleitzeit.errors import (
    GleitzeitError,
    InvalidMessage,
    ProviderUnavailableError,
    StreamError,
    error_from_dict,
)
from gleitzeit.request import CALL_DEADLINE, CALL_ID
from gleitzeit.socketio.wire import InvokeReply, parse

log = logging.getLogger("gleitzeit.cluster")

_END = object()


class _Stream:
    """A stream being received: its chunks (or its end, or its error) in order."""

    __slots__ = ("node", "instance", "queue", "began")

    def __init__(self, node: str, instance: str) -> None:
        self.node = node
        self.instance = instance
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.began = False


class Calls:
    """Calls this node has sent to other nodes' instances and waits on."""

    def __init__(
        self,
        keys: Keys,
        node: str,
        outbox: Outbox,
        *,
        timeout: Callable[[], float],
        window: int,
    ) -> None:
        self.keys = keys
        self.node = node
        self.outbox = outbox
        self.timeout = timeout
        self.window = window
        self._ids = itertools.count(1)
        self._invokes: dict[str, tuple[str, str, asyncio.Future[Any]]] = {}
        self._streams: dict[str, _Stream] = {}

    @property
    def pending(self) -> int:
        """Calls and streams waiting on other nodes."""
        return len(self._invokes) + len(self._streams)

    def _message(
        self, kind: str, key: str, instance: str, method: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "t": kind,
            "id": key,
            "reply_to": self.node,
            "instance": instance,
            "method": method,
            "params": params,
            "timeout": self._time_left(),
        }
        call_id = CALL_ID.get()
        if call_id is not None:
            msg["call_id"] = call_id
        if kind == "stream":
            msg["window"] = self.window
        return msg

    def _time_left(self) -> float:
        """What is left of the caller's deadline (an invoke's), else the node's timeout."""
        deadline = CALL_DEADLINE.get()
        if deadline is None or deadline == math.inf:
            return self.timeout()
        return min(86400.0, max(0.001, deadline - time.time()))

    @staticmethod
    def _gone(node: str, instance: str, what: str) -> ProviderUnavailableError:
        return ProviderUnavailableError(
            f"Node {node} (instance {instance}) is gone{what}",
            hint="the request can be retried on another instance",
        )

    async def invoke(
        self, node: str, instance: str, method: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Call ``method`` on ``instance`` of ``node`` and return its result."""
        key = f"c{next(self._ids):x}"
        msg = self._message("invoke", key, instance, method, params)
        return await self._ask(node, instance, key, msg, "invoke reply from another node")

    async def health(self, node: str, instance: str) -> dict[str, Any]:
        """Have ``node`` run its health checks on ``instance`` now; the report (status,
        detail, latency_ms) as the owner computed it. The caller bounds the wait."""
        key = f"h{next(self._ids):x}"
        msg = {"t": "health", "id": key, "reply_to": self.node, "instance": instance}
        return await self._ask(node, instance, key, msg, "health reply from another node")

    async def _ask(
        self, node: str, instance: str, key: str, msg: dict[str, Any], what: str
    ) -> dict[str, Any]:
        """Send ``msg`` to ``node`` and wait for its ``reply`` under ``key``: the result,
        or the error the owner answered with (a ``cancel`` follows when the caller stops
        waiting first)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._invokes[key] = (node, instance, fut)
        answered = False
        try:
            sent = await self.outbox.publish(self.keys.inbox(node), msg)
            if sent == 0:
                raise self._gone(node, instance, " (nobody reads its request channel)")
            raw = await fut
            answered = True
        finally:
            self._invokes.pop(key, None)
            if not answered:
                self.outbox.post(
                    self.keys.inbox(node), {"t": "cancel", "id": key, "reply_to": self.node}
                )
        reply = parse(InvokeReply, raw, what)
        if reply.ok:
            return reply.result or {}
        raise error_from_dict(reply.error or {})

    async def stream(
        self, node: str, instance: str, method: str, params: dict[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Stream ``method`` on ``instance`` of ``node``, chunk by chunk."""
        key = f"s{next(self._ids):x}"
        st = _Stream(node, instance)
        self._streams[key] = st
        inbox = self.keys.inbox(node)
        finished = False
        window = self.window
        granted = window
        read = 0
        try:
            sent = await self.outbox.publish(
                inbox, self._message("stream", key, instance, method, params)
            )
            if sent == 0:
                raise self._gone(node, instance, " (nobody reads its request channel)")
            while True:
                item = await st.queue.get()
                if item is _END:
                    finished = True
                    return
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                read += 1
                if granted - read <= window // 2:
                    granted = read + window
                    self.outbox.post(
                        inbox, {"t": "credit", "id": key, "n": granted, "reply_to": self.node}
                    )
                if item.get("done"):
                    finished = True
                yield item
                if finished:
                    return
        finally:
            self._streams.pop(key, None)
            if not finished:
                self.outbox.post(inbox, {"t": "cancel", "id": key, "reply_to": self.node})

    # -- what arrives on this node's request channel for its calls ---------------------

    def reply(self, msg: dict[str, Any]) -> None:
        """An answer to an invoke (``t: reply``)."""
        entry = self._invokes.get(msg.get("id"))  # type: ignore[arg-type]
        if entry is not None and not entry[2].done():
            body = {k: v for k, v in msg.items() if k not in ("t", "id")}
            entry[2].set_result(body)

    def chunk(self, msg: dict[str, Any]) -> None:
        """One chunk of a stream, checked as a provider's ``stream:data`` would be."""
        st = self._streams.get(msg.get("id"))  # type: ignore[arg-type]
        chunk = msg.get("chunk")
        if st is None:
            return
        if type(chunk) is not dict:
            self._fail_stream(
                st, InvalidMessage("a stream chunk from another node is not an object")
            )
            return
        st.began = True
        st.queue.put_nowait(chunk)

    def end(self, msg: dict[str, Any]) -> None:
        st = self._streams.get(msg.get("id"))  # type: ignore[arg-type]
        if st is not None:
            st.queue.put_nowait(_END)

    def fail(self, msg: dict[str, Any]) -> None:
        st = self._streams.get(msg.get("id"))  # type: ignore[arg-type]
        if st is None:
            return
        error = msg.get("error")
        exc = error_from_dict(error if isinstance(error, dict) else {})
        self._fail_stream(st, exc)

    @staticmethod
    def _fail_stream(st: _Stream, exc: GleitzeitError) -> None:
        st.queue.put_nowait(exc)

    # -- when nodes go ------------------------------------------------------------------

    def node_gone(self, node: str | None, why: str) -> int:
        """Fail every call waiting on ``node`` (every node when ``None``) at once:
        retryably, unless a stream had begun. Returns how many failed."""
        n = 0
        for where, instance, fut in list(self._invokes.values()):
            if (node is None or where == node) and not fut.done():
                fut.set_exception(
                    self._gone(where, instance, f" while the call was in flight ({why})")
                )
                n += 1
        for st in list(self._streams.values()):
            if node is None or st.node == node:
                st.queue.put_nowait(
                    StreamError(
                        f"Node {st.node} (instance {st.instance}) went away in the middle "
                        f"of the stream ({why})"
                    )
                    if st.began
                    else self._gone(st.node, st.instance, f" before the stream began ({why})")
                )
                n += 1
        return n
