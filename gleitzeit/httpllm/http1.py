"""A small HTTP/1.1 client for the requests of an HTTP LLM provider that are answered
whole (chat without streaming, embeddings, model lists) from a plain ``http://``
upstream: keep-alive connections, one write per request, ``Content-Length``, chunked
and read-until-close bodies.

It exists for speed: aiohttp's client spends about 0.2 ms of CPU per request and sends
its upstream more work, which the ``/v1`` gateway passed on to every request it
forwards to a local server. Streams, TLS and proxied upstreams stay with aiohttp
(:class:`~gleitzeit.httpllm.HttpLLMProvider` decides which client a request takes).

Failures are raised as :class:`ConnectFailed` (with the ``OSError``),
:class:`ConnectTimeout`, :class:`ReadTimeout` (both ``TimeoutError``),
:class:`ServerDisconnected` (a ``ConnectionError``) and :class:`BadResponse`; the
provider turns them into Gleitzeit errors.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "BadResponse",
    "ConnectFailed",
    "ConnectTimeout",
    "ConnectionPool",
    "ReadTimeout",
    "Reply",
    "ServerDisconnected",
]

#: Idle connections older than this are closed rather than reused (as aiohttp's
#: ``keepalive_timeout``): a server may have dropped them meanwhile.
KEEPALIVE_SECONDS = 30.0
#: At most this many idle connections are kept; more are closed when released.
MAX_IDLE = 256


class ConnectFailed(Exception):
    """No connection to the upstream: ``os_error`` says why (refused, no route, DNS)."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error


class ConnectTimeout(asyncio.TimeoutError):
    """The upstream did not accept a connection in time."""


class ReadTimeout(asyncio.TimeoutError):
    """The upstream sent no byte within the read timeout (or did not finish in time)."""


class ServerDisconnected(ConnectionError):
    """The upstream closed the connection before its answer was complete."""


class BadResponse(Exception):
    """The upstream's answer is not HTTP/1.x."""


@dataclass(frozen=True)
class Reply:
    """One whole answer: ``headers`` with lower-case names (repeated ones joined)."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One kept-alive connection; reads one answer at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.keep_alive = True
        self._buf = bytearray()
        self._waiter: asyncio.Future[Reply] | None = None
        self._received = False
        self._head: tuple[int, dict[str, str]] | None = None
        self._length: int | None = None  # None: read until the connection closes
        self._chunked = False
        self._chunks = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._last_byte = 0.0
        self._read_timeout = 0.0
        self._deadline: float | None = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # nothing was asked: the connection is not in a known state
            return
        self._received = True
        self._last_byte = self.loop.time()
        self._buf += data
        try:
            self._parse()
        except BadResponse as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        if self._waiter is not None and not self._waiter.done():
            if self._head is not None and self._length is None and not self._chunked:
                self._finish(bytes(self._buf))  # a body delimited by the close
            else:
                self._fail(ServerDisconnected("the server closed the connection"))
        self.closed = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._fail(ServerDisconnected(str(exc) if exc else "the connection was closed"))

    # -- requests --------------------------------------------------------------------

    @property
    def received(self) -> bool:
        """Whether any byte of the current answer arrived."""
        return self._received

    def send(
        self, data: bytes, read_timeout: float, deadline: float | None
    ) -> asyncio.Future[Reply]:
        assert self.transport is not None
        self._waiter = waiter = self.loop.create_future()
        self._received = False
        self._head, self._length, self._chunked = None, None, False
        self._read_timeout, self._deadline = read_timeout, deadline
        self._last_byte = now = self.loop.time()
        due = now + read_timeout if deadline is None else min(now + read_timeout, deadline)
        # One timer per connection, left armed between requests and moved on when it
        # fires early: arming and cancelling one per request would cost more.
        timer = self._timer
        if timer is None or timer.when() > due:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(due, self._check_time)
        self.transport.write(data)
        return waiter

    def _check_time(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        now = self.loop.time()
        due = self._last_byte + self._read_timeout
        if self._deadline is not None:
            due = min(due, self._deadline)
        if now >= due:
            self._fail(ReadTimeout())
            return
        self._timer = self.loop.call_at(due, self._check_time)

    def _finish(self, body: bytes) -> None:
        assert self._head is not None and self._waiter is not None
        status, headers = self._head
        encoding = headers.get("content-encoding", "").lower()
        if "gzip" in encoding or "deflate" in encoding:
            body = _decompress(body, encoding)  # not asked for, but some send it anyway
        self._waiter.set_result(Reply(status, headers, body))

    def _fail(self, exc: BaseException) -> None:
        self._stop_timer()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self.closed = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    # -- parsing ---------------------------------------------------------------------

    def _parse(self) -> None:
        buf = self._buf
        while self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    raise BadResponse("the answer's header is larger than 64 KiB")
                return
            status, headers, version = _read_head(bytes(buf[:end]))
            del buf[: end + 4]
            if 100 <= status < 200:
                continue  # an interim answer (103 Early Hints): the real one follows
            self._head = (status, headers)
            connection = headers.get("connection", "").lower()
            self.keep_alive = version == "HTTP/1.1" and "close" not in connection
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._chunked = True
                self._chunks = bytearray()
            elif "content-length" in headers:
                try:
                    self._length = int(headers["content-length"])
                except ValueError:
                    raise BadResponse("the answer's Content-Length is not a number") from None
            elif status in (204, 304):
                self._length = 0
            else:
                self._length = None
                self.keep_alive = False
        if self._chunked:
            self._parse_chunks()
        elif self._length is not None and len(buf) >= self._length:
            if len(buf) > self._length:
                self.keep_alive = False  # bytes beyond the answer: do not reuse
            body = bytes(buf[: self._length])
            buf.clear()
            self._finish(body)

    def _parse_chunks(self) -> None:
        buf, out = self._buf, self._chunks
        while True:
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                return
            size_text = bytes(buf[:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadResponse(f"a chunk size of {size_text[:20]!r} is not hex") from None
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", line_end)  # after the trailers, if any
                if trailer_end < 0:
                    return
                if len(buf) > trailer_end + 4:
                    self.keep_alive = False
                buf.clear()
                self._finish(bytes(out))
                return
            start = line_end + 2
            if len(buf) < start + size + 2:
                return
            out += buf[start : start + size]
            del buf[: start + size + 2]


def _read_head(raw: bytes) -> tuple[int, dict[str, str], str]:
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise BadResponse(
            f"the answer does not start with an HTTP/1.x status line: {lines[0][:80]!r}"
        )
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return int(parts[1]), headers, parts[0]


def _decompress(body: bytes, encoding: str) -> bytes:
    try:
        if "gzip" in encoding:
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some send it
    except zlib.error as exc:
        raise BadResponse(f"the answer's {encoding} body does not decompress: {exc}") from None


class ConnectionPool:
    """Kept-alive connections to one ``http://`` base URL, with fixed headers."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{base_url!r} is not a plain http:// URL")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = parts.path.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        fixed = {"Host": parts.netloc, **headers}
        for name, value in fixed.items():
            if any(c in name + value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} has a line break or NUL in its value")
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode()
        self._idle: list[_Connection] = []
        self._closed = False

    @staticmethod
    def usable(base_url: str, proxy: str | None) -> bool:
        """Whether requests to ``base_url`` may take this client (plain http, no proxy)."""
        return proxy is None and base_url.startswith("http://")

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Reply:
        """Send one request; its whole answer. ``timeout`` bounds the whole request
        (connecting included); the read timeout applies between bytes in any case."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        head = f"{method} {self.path}{path} HTTP/1.1\r\n".encode("latin-1") + self._fixed
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            data = head + body
        else:
            data = head + b"\r\n"
        fresh = False
        while True:
            conn = None if fresh else self._take(loop)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(loop, deadline)
            try:
                reply = await conn.send(data, self.read_timeout, deadline)
            except ServerDisconnected:
                conn.close()
                if reused and not conn.received:
                    # The keep-alive race: the server closed the idle connection as the
                    # request went out, so it never read it. Once more, on a new one.
                    fresh = True
                    continue
                raise
            except BaseException:
                conn.close()  # a timeout, cancellation: the answer may still come
                raise
            self._release(conn, loop)
            return reply

    def _take(self, loop: asyncio.AbstractEventLoop) -> _Connection | None:
        idle = self._idle
        stale = loop.time() - KEEPALIVE_SECONDS
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if conn.idle_since < stale:
                conn.close()
                continue
            return conn
        return None

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None
    ) -> _Connection:
        wait = self.connect_timeout
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - loop.time()))
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), self.host, self.port), wait
            )
        except asyncio.TimeoutError:
            if deadline is not None and loop.time() >= deadline:
                raise ReadTimeout() from None
            raise ConnectTimeout() from None
        except OSError as exc:
            raise ConnectFailed(exc) from None
        return conn

    def _release(self, conn: _Connection, loop: asyncio.AbstractEventLoop) -> None:
        if self._closed or not conn.keep_alive or conn.closed or len(self._idle) >= MAX_IDLE:
            conn.close()
            return
        conn.idle_since = loop.time()
        self._idle.append(conn)

    def close(self) -> None:
        """Close the idle connections; those in use close when their request ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
