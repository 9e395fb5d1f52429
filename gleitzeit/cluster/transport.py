"""The cluster as a host transport: this node's share of a routing table that several
``gleitzeit serve`` nodes keep in one Redis.

It publishes this node's own instances (:mod:`~gleitzeit.cluster.publisher`), mirrors
every other node's into the local registry (:mod:`~gleitzeit.cluster.mirror`) as
instances whose calls travel over the owner's request channel
(:mod:`~gleitzeit.cluster.calls`), and runs what other nodes ask of this node's
instances (:mod:`~gleitzeit.cluster.serving`).

One supervisor task holds the session with Redis: subscribe (events and this node's
request channel), publish, read the others, then beat until something fails. When
Redis is lost, the node keeps serving its own instances, reports itself degraded, drops
the other nodes' instances (their calls fail over at once) and tries again with
backoff; when Redis answers, it publishes everything again and reads the others anew.

Request channels are Redis pub/sub, not Streams: a call is only of use while its
caller waits, and pub/sub says at once (``PUBLISH`` returns 0) when nobody reads the
owner's channel, where a stream would keep the call for a node that may never read it
and run it late, after the caller had retried elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gleitzeit.cluster.keys import Keys
from gleitzeit.cluster.settings import ClusterConfig, shown_url
from gleitzeit.transport import Transport

if TYPE_CHECKING:
    from gleitzeit._registry import Registry
    from gleitzeit.cluster.calls import Calls
    from gleitzeit.cluster.mirror import Mirror
    from gleitzeit.cluster.outbox import Outbox
    from gleitzeit.cluster.serving import CheckHealth, Serving

log = logging.getLogger("gleitzeit.cluster")

#: Largest event accepted from the events channel (a node's instances come in parts).
MAX_EVENT_BYTES = 16 * 1024 * 1024
#: Room for the envelope of a request-channel message beside its payload.
MESSAGE_OVERHEAD = 65536
BACKOFF_MIN = 0.2
BACKOFF_MAX = 1.0
#: Seconds each step of stopping may take.
STOP_TIMEOUT = 5.0


def default_node_name() -> str:
    """HOSTNAME-PID-XXXX: readable, and unique even for two nodes in one process."""
    host = socket.gethostname().split(".")[0] or "node"
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in host)[:40]
    return f"{safe or 'node'}-{os.getpid()}-{secrets.token_hex(2)}"


class ClusterTransport(Transport):
    """This node's membership in a cluster of ``gleitzeit serve`` nodes on one Redis."""

    name = "cluster"

    def __init__(
        self,
        registry: Registry,
        *,
        url: str,
        settings: ClusterConfig,
        max_payload_bytes: int,
        call_timeout: float,
        check_health: CheckHealth,
    ) -> None:
        super().__init__(registry)
        from gleitzeit.cluster.publisher import Publisher

        self.registry = registry
        self.url = url
        self.settings = settings
        self.node = settings.node or default_node_name()
        self.keys = Keys(settings.prefix)
        self.max_payload_bytes = max_payload_bytes
        self.call_timeout = call_timeout
        #: Runs this node's health checks on one of its own instances (for other nodes).
        self.check_health = check_health
        self.publisher = Publisher(self.keys, self.node, ttl=settings.ttl)
        for inst in registry:
            self.publisher.watch("added", inst)
        registry.watchers.append(self.publisher.watch)
        self.client: Any = None
        self.outbox: Outbox | None = None
        self.calls: Calls | None = None
        self.serving: Serving | None = None
        self.mirror: Mirror | None = None
        #: Whether this node holds a working session with Redis now.
        self.up = False
        self.down_since: float | None = None
        self.last_error: str | None = None
        self._joined = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- what the server tells it ------------------------------------------------------

    @property
    def advertised_url(self) -> str:
        return self.publisher.url

    @advertised_url.setter
    def advertised_url(self, value: str) -> None:
        """Where clients and providers reach this node (shown by ``serve status``)."""
        self.publisher.url = value
        self.publisher.dirty.set()

    def broadcasts(self) -> Any:
        """A python-socketio client manager that carries broadcasts to every node."""
        from gleitzeit.cluster.broadcast import BroadcastManager

        return BroadcastManager(self)

    def health(self) -> dict[str, Any]:
        """This node's part of ``/healthz``."""
        info: dict[str, Any] = {
            "node": self.node,
            "redis": "connected" if self.up else "lost",
            "nodes": 1 + (len(self.mirror.views) if self.mirror is not None else 0),
        }
        if not self.up:
            info["since"] = self.down_since
            info["error"] = self.last_error
        return info

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.health(), "url": shown_url(self.url)}

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        from gleitzeit.cluster.calls import Calls
        from gleitzeit.cluster.link import (
            CONNECT_TIMEOUT,
            check_connection,
            make_client,
            password_of,
        )
        from gleitzeit.cluster.mirror import Mirror
        from gleitzeit.cluster.outbox import Outbox
        from gleitzeit.cluster.serving import Serving
        from gleitzeit.logs import add_secret

        add_secret(password_of(self.url))
        self.client = make_client(
            self.url, socket_timeout=max(CONNECT_TIMEOUT, 3 * self.settings.heartbeat)
        )
        try:
            await check_connection(self.client, self.url)
            await self._check_name()
        except BaseException:
            await self.client.aclose()
            raise
        self.outbox = Outbox(self.client, limit=self.max_payload_bytes + MESSAGE_OVERHEAD)
        self.outbox.start()
        self.calls = Calls(
            self.keys,
            self.node,
            self.outbox,
            timeout=lambda: self.call_timeout,
            window=self.settings.stream_window,
        )
        self.serving = Serving(self.keys, self.node, self.registry, self.outbox, self.check_health)
        self.mirror = Mirror(
            self.keys, self.node, self.registry, self.calls, self.serving, ttl=self.settings.ttl
        )
        self.mirror.client = self.publisher.client = self.client
        self._task = asyncio.ensure_future(self._supervise())
        try:
            await asyncio.wait_for(asyncio.shield(self._joined.wait()), CONNECT_TIMEOUT * 2)
        except asyncio.TimeoutError:
            log.warning("not joined the cluster yet (%s); serving meanwhile", self.last_error)
        else:
            log.info("node %s joined the cluster at %s", self.node, shown_url(self.url))

    async def _check_name(self) -> None:
        """Refuse a name that a live node holds (it reads its request channel); a node
        that died under this name holds it no more."""
        from gleitzeit.errors import ConfigError

        ((_, readers),) = await self.client.pubsub_numsub(self.keys.inbox(self.node))
        if readers:
            raise ConfigError(
                f"Another live node of the cluster is named {self.node!r}",
                hint="give each node its own server.cluster.node (or leave it unset)",
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=STOP_TIMEOUT)
            self._task = None
        if self.up:
            try:
                await asyncio.wait_for(self.publisher.bye(), 2.0)
            except Exception as exc:
                log.debug("could not say goodbye: %s", exc)
        self.up = False
        if self.mirror is not None:
            self.mirror.drop_all("this node stops", expected=True)
            await self.mirror.stop()
        if self.serving is not None:
            await self.serving.stop()
        if self.outbox is not None:
            await self.outbox.stop()
        if self.publisher.watch in self.registry.watchers:
            self.registry.watchers.remove(self.publisher.watch)
        if self.client is not None:
            # Bounded: closing a connection Redis dropped mid-read must not hold the stop.
            try:
                await asyncio.wait_for(self.client.aclose(), STOP_TIMEOUT)
            except (asyncio.TimeoutError, OSError) as exc:
                log.debug("closing the Redis connections: %r", exc)
            self.client = None

    # -- the session with Redis ----------------------------------------------------------

    async def _supervise(self) -> None:
        delay = BACKOFF_MIN
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._lost(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX) if not self.up else BACKOFF_MIN

    def _lost(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.up or self.down_since is None:
            log.warning(
                "node %s lost Redis at %s (%s): serving its own instances only until it is back",
                self.node,
                shown_url(self.url),
                self.last_error,
            )
            self.down_since = time.time()
        self.up = False
        assert self.mirror is not None and self.serving is not None
        self.mirror.drop_all("this node lost Redis")
        self.serving.cancel_all()  # their answers could not be delivered
        if self.outbox is not None:
            self.outbox.reconnect()

    async def _session(self) -> None:
        assert self.mirror is not None
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        reader: asyncio.Task[None] | None = None
        try:
            await pubsub.subscribe(self.keys.events, self.keys.inbox(self.node))
            reader = asyncio.ensure_future(self._read(pubsub))
            self.publisher.forget()
            await self.publisher.flush()
            await self.publisher.beat()
            await self.mirror.load()
            self.mirror.own_beat = time.monotonic()
            if self.down_since is not None and self._joined.is_set():
                log.warning("node %s is back in the cluster", self.node)
            self.up = True
            self.down_since = None
            self.last_error = None
            self._joined.set()
            beats = asyncio.ensure_future(self._beat())
            try:
                done, _ = await asyncio.wait({reader, beats}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                beats.cancel()
                await asyncio.gather(beats, return_exceptions=True)
            for task in done:
                task.result()  # raises what ended the session
            raise ConnectionError("the subscription to Redis ended")
        finally:
            if reader is not None:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            try:
                await pubsub.aclose()
            except Exception:
                pass

    async def _beat(self) -> None:
        assert self.mirror is not None
        loop = asyncio.get_running_loop()
        interval = self.settings.heartbeat
        next_beat = loop.time() + interval
        dirty = self.publisher.dirty
        while True:
            wait = next_beat - loop.time()
            if wait > 0 and not dirty.is_set():
                try:
                    await asyncio.wait_for(dirty.wait(), wait)
                except asyncio.TimeoutError:
                    pass
            await self.publisher.flush()
            if loop.time() >= next_beat:
                next_beat = loop.time() + interval
                await self.publisher.beat()
                self.mirror.expire()
                await self.mirror.probe(1.5 * interval)
                silent = time.monotonic() - self.mirror.own_beat
                if silent > self.settings.ttl:
                    raise ConnectionError(
                        f"this node's own heartbeats have not come back for {silent:.1f}s"
                    )

    async def _read(self, pubsub: Any) -> None:
        from gleitzeit.cluster.messages import NodeEvent

        assert self.mirror is not None and self.calls is not None and self.serving is not None
        events = self.keys.events.encode()
        mirror, calls, serving = self.mirror, self.calls, self.serving
        limit = self.max_payload_bytes + MESSAGE_OVERHEAD
        while True:
            msg = await pubsub.get_message(timeout=None)
            if msg is None or msg.get("type") != "message":
                continue
            data = msg["data"]
            if msg["channel"] == events:
                if len(data) > MAX_EVENT_BYTES:
                    log.warning("ignored an event of %d bytes from Redis", len(data))
                    continue
                try:
                    ev = NodeEvent.model_validate_json(data)
                except ValidationError as exc:
                    log.warning("ignored an invalid cluster event: %s", exc.errors()[0]["msg"])
                    continue
                mirror.event(ev)
                continue
            if len(data) > limit:
                log.warning("ignored a %d-byte message on this node's request channel", len(data))
                continue
            try:
                body = json.loads(data)
            except ValueError:
                continue
            if type(body) is not dict:
                continue
            t = body.get("t")
            if t == "reply":
                calls.reply(body)
            elif t == "chunk":
                calls.chunk(body)
            elif t == "end":
                calls.end(body)
            elif t == "fail":
                calls.fail(body)
            elif t in ("invoke", "stream"):
                serving.call(body)
            elif t == "health":
                serving.health(body)
            elif t == "credit" or t == "cancel":
                sender = body.get("reply_to")
                if isinstance(sender, str):
                    (serving.credit if t == "credit" else serving.cancel)(sender, body)
