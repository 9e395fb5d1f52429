"""Publishing to Redis channels, batched: whatever is queued while one batch is on the
wire goes out together in the next pipeline, in the order it was queued.

Order matters (a stream's chunks, a node's events) and so does the round trip: under
load many calls share one, and a lone call waits for nothing.

The writer holds one connection of the client's pool for itself and speaks on it with
redis-py's connection API (``send_packed_command`` / ``read_response``): one writer
needs no pool, lock or retry layer per message, and each ``PUBLISH`` costs about
two-thirds of a ``Redis.publish`` call. A connection that fails is dropped; the next
batch takes a fresh one.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gleitzeit.errors import PayloadTooLargeError, ProviderUnavailableError

MAX_BATCH = 256


class Outbox:
    """One writer task per node sends every ``PUBLISH`` it is handed."""

    def __init__(self, client: Any, *, limit: int) -> None:
        self.client = client
        #: Largest message the other nodes accept (they drop larger ones unread).
        self.limit = limit
        self._queue: list[tuple[str, bytes, asyncio.Future[int] | None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._stale = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._write())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self._drop_connection()
        self._fail(ProviderUnavailableError("the node stopped"))

    def reconnect(self) -> None:
        """The node lost Redis: the next batch goes out on a fresh connection."""
        self._stale = True

    def publish(self, channel: str, message: dict[str, Any]) -> asyncio.Future[int]:
        """Queue ``message`` for ``channel``; the future gives how many nodes received
        it (0: nobody listens there), or the error that kept it from Redis."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((channel, self._encode(message), fut))
        self._wake.set()
        return fut

    def post(self, channel: str, message: dict[str, Any]) -> None:
        """Queue ``message`` with nobody waiting for its outcome."""
        self._queue.append((channel, self._encode(message), None))
        self._wake.set()

    def _encode(self, message: dict[str, Any]) -> bytes:
        data = json.dumps(message, separators=(",", ":"), default=str).encode()
        if len(data) > self.limit:
            raise PayloadTooLargeError(
                f"a {message.get('t', 'message')} of {len(data):,} bytes is more than another "
                f"node accepts ({self.limit:,})",
                hint="send less, or raise server.max_payload_bytes on every node",
            )
        return data

    def _fail(self, exc: BaseException) -> None:
        queued, self._queue = self._queue, []
        for _, _, fut in queued:
            if fut is not None and not fut.done():
                fut.set_exception(exc)

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    results = await self._send(batch)
                except asyncio.CancelledError:
                    self._queue = batch + self._queue
                    await self._drop_connection()  # a reply may be half read
                    raise
                except Exception as exc:
                    await self._drop_connection()
                    err = ProviderUnavailableError(
                        f"Redis did not take the message: {type(exc).__name__}: {exc}",
                        hint="the request can be retried on another instance",
                    )
                    for _, _, fut in batch:
                        if fut is not None and not fut.done():
                            fut.set_exception(err)
                    continue
                for (_, _, fut), n in zip(batch, results, strict=True):
                    if fut is not None and not fut.done():
                        fut.set_result(int(n))

    async def _send(self, batch: list[tuple[str, bytes, asyncio.Future[int] | None]]) -> list[Any]:
        """``PUBLISH`` each message of ``batch`` in one write; their subscriber counts."""
        if self._stale:
            self._stale = False
            await self._drop_connection()
        conn = self._conn
        if conn is None:
            conn = self._conn = await self.client.connection_pool.get_connection()
        if len(batch) == 1:
            await conn.send_command("PUBLISH", batch[0][0], batch[0][1])
        else:
            await conn.send_packed_command(
                conn.pack_commands([("PUBLISH", channel, data) for channel, data, _ in batch])
            )
        return [await conn.read_response() for _ in batch]

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.disconnect()
        finally:
            await self.client.connection_pool.release(conn)
