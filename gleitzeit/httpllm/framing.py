"""Reading streamed HTTP bodies: server-sent events (OpenAI) and NDJSON (Ollama).

Both take the body as an async iterable of byte pieces of any size (aiohttp's
``response.content.iter_any()``), so one read can carry many events and an event can
span reads. Lines end in ``\\n`` (a ``\\r`` before it is dropped); no line length limit
applies, unlike line-by-line readers that refuse a long tool-call chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

__all__ = ["ndjson_lines", "sse_data"]


async def _lines(pieces: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    rest = b""
    async for piece in pieces:
        if rest:
            piece = rest + piece
        *lines, rest = piece.split(b"\n")
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    if rest:
        yield rest[:-1] if rest.endswith(b"\r") else rest


async def ndjson_lines(pieces: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The non-blank lines of an NDJSON body, each one JSON document (not decoded)."""
    async for line in _lines(pieces):
        if line.strip():
            yield line


async def sse_data(pieces: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The ``data`` of each server-sent event, as the SSE specification assembles it:
    the event's ``data:`` lines (one leading space dropped) joined by ``\\n``, dispatched
    at the blank line that ends the event. Comments (``:``), ``event:``, ``id:`` and
    ``retry:`` lines are skipped; an event without data is not dispatched. A last event
    that the body ends before its blank line is dispatched too: proxies often drop the
    final blank line, and a body cut inside an event fails to decode anyway."""
    data: list[bytes] = []
    async for line in _lines(pieces):
        if not line:
            if data:
                yield data[0] if len(data) == 1 else b"\n".join(data)
                data = []
            continue
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line == b"data":
            data.append(b"")
    if data:
        yield b"\n".join(data)
