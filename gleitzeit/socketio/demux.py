"""Many streams over one connection: each ``stream_id`` gets its own queue.

Used by both ends that read streams off a Socket.IO connection: the server reading a
remote provider's chunks, and :class:`gleitzeit.Client` reading the server's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

_END = object()


class StreamDemux:
    """Routes ``stream:data`` / ``stream:end`` / ``stream:error`` to the reader of each
    stream, in arrival order."""

    __slots__ = ("_queues", "_delivered", "_limits")

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[Any]] = {}
        self._delivered: dict[str, int] = {}
        self._limits: dict[str, int] = {}

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._queues

    def open(self, stream_id: str, limit: int | None = None) -> None:
        """Open a stream; ``limit`` chunks waiting unread end it with an error (a sender
        that ignores flow control)."""
        self._queues[stream_id] = asyncio.Queue()
        self._delivered[stream_id] = 0
        if limit is not None:
            self._limits[stream_id] = limit

    def close(self, stream_id: str) -> None:
        self._queues.pop(stream_id, None)
        self._delivered.pop(stream_id, None)
        self._limits.pop(stream_id, None)

    def data(self, stream_id: str, chunk: dict[str, Any]) -> None:
        queue = self._queues.get(stream_id)
        if queue is not None:
            limit = self._limits.get(stream_id)
            if limit is not None and queue.qsize() >= limit:
                from gleitzeit.errors import StreamError

                # Drop what is queued: the reader gets the error next.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(
                    StreamError(
                        f"the sender of stream {stream_id!r} ignored its flow-control window"
                    )
                )
                self._limits[stream_id] = 1 << 30  # one error is enough
                return
            queue.put_nowait(chunk)

    def end(self, stream_id: str) -> None:
        queue = self._queues.get(stream_id)
        if queue is not None:
            queue.put_nowait(_END)

    def fail(self, stream_id: str, error: BaseException) -> None:
        queue = self._queues.get(stream_id)
        if queue is not None:
            queue.put_nowait(error)

    def fail_all(self, error_for: Callable[[bool], BaseException]) -> None:
        """End every open stream with ``error_for(began)``, where ``began`` says whether
        the stream had delivered a chunk (the connection went away)."""
        for stream_id, queue in self._queues.items():
            queue.put_nowait(error_for(self._delivered.get(stream_id, 0) > 0))

    async def read(self, stream_id: str) -> AsyncIterator[dict[str, Any]]:
        """The chunks of one opened stream, up to and including the one with ``done:
        true`` (one is made when the stream ends without it); an error is raised."""
        queue = self._queues[stream_id]
        while True:
            item = await queue.get()
            if item is _END:
                yield {"token": "", "done": True}
                return
            if isinstance(item, BaseException):
                raise item
            self._delivered[stream_id] += 1
            yield item
            if item.get("done"):
                return
