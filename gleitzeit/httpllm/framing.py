"""Reading streamed HTTP bodies: server-sent events (OpenAI) and NDJSON (Ollama).

Both take the body as an async iterable of byte pieces of any size (aiohttp's
``response.content.iter_any()``), so one read can carry many messages and a message can
span reads. Lines end in ``\\n`` (a ``\\r`` before it is dropped); no line length limit
applies, unlike line-by-line readers that refuse a long tool-call chunk. Each piece is
split in one pass, and the messages it completes are yielded from one generator: a
stream of thousands of tokens crosses as few layers as possible.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

__all__ = ["ndjson_lines", "sse_data"]


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


async def ndjson_lines(pieces: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The non-blank lines of an NDJSON body, each one JSON document (not decoded)."""
    rest = b""
    async for piece in pieces:
        *lines, rest = (rest + piece if rest else piece).split(b"\n")
        for line in lines:
            if line.strip():
                yield _strip_cr(line)
    if rest.strip():
        yield _strip_cr(rest)


async def sse_data(pieces: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The ``data`` of each server-sent event, as the SSE specification assembles it:
    the event's ``data:`` lines (one leading space dropped) joined by ``\\n``, dispatched
    at the blank line that ends the event. Comments (``:``), ``event:``, ``id:`` and
    ``retry:`` lines are skipped; an event without data is not dispatched. A last event
    that the body ends before its blank line is dispatched too: proxies often drop the
    final blank line, and a body cut inside an event fails to decode anyway."""
    rest = b""
    data: list[bytes] = []
    async for piece in pieces:
        *lines, rest = (rest + piece if rest else piece).split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                value = _strip_cr(line[5:])
                data.append(value[1:] if value.startswith(b" ") else value)
            elif line and line != b"\r":
                if line.rstrip(b"\r") == b"data":
                    data.append(b"")
            elif data:
                yield data[0] if len(data) == 1 else b"\n".join(data)
                data = []
    if rest.startswith(b"data:"):
        value = _strip_cr(rest[5:])
        data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        yield b"\n".join(data)
