"""A small HTTP/1.1 client for the requests of an HTTP LLM provider that are answered
whole (chat without streaming, embeddings, model lists) from a plain ``http://``
upstream: keep-alive connections, one write per request, ``Content-Length``, chunked
and read-until-close bodies.

It exists for speed: aiohttp's client spends about 0.2 ms of CPU per request and sends
its upstream more work, which the ``/v1`` gateway passed on to every request it
forwards to a local server. Streams, TLS, proxied upstreams and base URLs with
credentials stay with aiohttp (:class:`~gleitzeit.httpllm.HttpLLMProvider` decides
which client a request takes).

Answers are read strictly (RFC 9112): framing that is not exactly as the RFC has it,
and heads, chunk-size lines, trailers and bodies beyond their limits are
:class:`BadResponse`, never a guess. Other failures are raised as
:class:`ConnectFailed` (with the ``OSError``), :class:`ConnectTimeout`,
:class:`ReadTimeout` (both ``TimeoutError``) and :class:`ServerDisconnected` (a
``ConnectionError``); the provider turns them into Gleitzeit errors.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections import deque
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

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
#: A request that must not be sent twice (POST) takes only idle connections younger
#: than this: servers close idle ones after a few seconds (uvicorn after 5), and one
#: closing as the request goes out would leave it unknown whether it was read.
FRESH_SECONDS = 3.0
#: At most this many idle connections are kept; more are closed when released.
MAX_IDLE = 256
#: At most this many requests (and so connections) at once; more wait for one to end.
MAX_CONNECTIONS = 1000
#: The largest answer head, and the largest trailer section of a chunked answer.
MAX_HEAD = 65536
#: The largest body, as sent or decompressed.
MAX_BODY = 256 * 1024 * 1024
#: The longest chunk-size line (16 hex digits and an extension fit easily).
MAX_CHUNK_LINE = 1024

#: Methods that may be sent again when a kept connection closed before any answer
#: (RFC 9110 §9.2.2; as aiohttp's ``IDEMPOTENT_METHODS``).
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_STATUS_LINE = re.compile(r"(HTTP/1\.[0-9]) ([1-9][0-9][0-9])(?:[ \t][^\r]*)?\r?")
_DECIMAL = re.compile(r"[0-9]{1,15}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_WS = " \t\r"  # around values (and a line's CR, split on LF)
_NOT_IN_PATH = re.compile(r"[ \t\r\n\0]")
#: What may stay unescaped in a base URL's path (RFC 3986 pchar and "/", and "%" of
#: escapes already there).
_PATH_SAFE = "/%:@!$&'()*+,;=~"


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
    """The upstream's answer is not well-formed HTTP/1.x, or exceeds a limit."""


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
        self._scan = 0  # where the search for a line end goes on in _buf
        self._waiter: asyncio.Future[Reply] | None = None
        self._received = False
        self._no_body = False  # the answer to HEAD
        self._head: tuple[int, dict[str, str]] | None = None
        self._length: int | None = None  # None: read until the connection closes
        self._chunked = False
        self._chunk_left: int | None = None  # bytes of the current chunk, None: a size
        self._trailers: int | None = None  # trailer bytes so far, None: not there yet
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
        except Exception as exc:  # a parse error no check foresaw: still the answer's
            self._fail(BadResponse(f"the answer is malformed: {type(exc).__name__}: {exc}"))

    def eof_received(self) -> bool:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            if self._head is not None and self._length is None and not self._chunked:
                try:
                    self._finish(bytes(self._buf))  # a body delimited by the close
                except BadResponse as exc:
                    self._fail(exc)
            else:
                self._fail(ServerDisconnected("the server closed the connection"))
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
        self, data: bytes, no_body: bool, read_timeout: float, deadline: float | None
    ) -> asyncio.Future[Reply]:
        """Write a request; its answer, which has no body when ``no_body`` (HEAD)."""
        assert self.transport is not None
        self._waiter = waiter = self.loop.create_future()
        self._received, self._no_body, self._scan = False, no_body, 0
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
        coding = headers.get("content-encoding")
        if coding is not None and body:
            body = _gunzip(body, coding.strip().lower())
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
            # The blank line ending the head: CRLF, or a bare LF, whichever comes first.
            end, skip = buf.find(b"\n\r\n", self._scan), 3
            lf = buf.find(b"\n\n", self._scan, len(buf) if end < 0 else end + 1)
            if lf >= 0:
                end, skip = lf, 2
            elif end < 0:
                if len(buf) > MAX_HEAD:
                    raise BadResponse(f"the answer's head is larger than {MAX_HEAD} bytes")
                self._scan = max(0, len(buf) - 2)
                return
            self._scan = 0
            status, headers, version = _read_head(bytes(buf[:end]))
            del buf[: end + skip]
            if status < 200:
                continue  # an interim answer (103 Early Hints): the real one follows
            self._head = (status, headers)
            self._frame(status, headers, version)
        if self._chunked:
            self._parse_chunks()
        elif self._length is None:
            if len(buf) > MAX_BODY:
                raise BadResponse(f"the answer's body is larger than {MAX_BODY} bytes")
        elif len(buf) >= self._length:
            if len(buf) > self._length:
                self.keep_alive = False  # bytes beyond the answer: do not reuse
            body = bytes(buf[: self._length])
            buf.clear()
            self._finish(body)

    def _frame(self, status: int, headers: dict[str, str], version: str) -> None:
        """How the body of the answer is delimited (RFC 9112 §6.3)."""
        connection = headers.get("connection", "").lower()
        self.keep_alive = version == "HTTP/1.1" and "close" not in connection
        te = headers.get("transfer-encoding")
        if self._no_body or status in (204, 304):
            self._length = 0  # whatever the headers say
        elif te is not None:
            if [c.strip().lower() for c in te.split(",")] != ["chunked"]:
                raise BadResponse(f"the answer's Transfer-Encoding {te[:80]!r} is not chunked")
            if "content-length" in headers:
                self.keep_alive = False  # both: a smuggling attempt, or a confused server
            self._chunked = True
            self._chunk_left, self._trailers = None, None
            self._chunks = bytearray()
        elif "content-length" in headers:
            values = {v.strip() for v in headers["content-length"].split(",")}
            length = values.pop() if len(values) == 1 else ""
            if not _DECIMAL.fullmatch(length):
                raise BadResponse(
                    f"the answer's Content-Length {headers['content-length'][:80]!r}"
                    " is not a number"
                )
            self._length = int(length)
            if self._length > MAX_BODY:
                raise BadResponse(f"the answer's body is larger than {MAX_BODY} bytes")
        else:
            self._length = None
            self.keep_alive = False

    def _parse_chunks(self) -> None:
        buf, out = self._buf, self._chunks
        while True:
            left = self._chunk_left
            if left is not None:  # the chunk's data, then its line end
                if len(buf) < left + 1:
                    return
                if buf[left] == 10:  # a bare LF
                    end = left + 1
                elif len(buf) < left + 2:
                    return
                elif buf[left : left + 2] == b"\r\n":
                    end = left + 2
                else:
                    raise BadResponse("a chunk's data is not followed by a line end")
                out += buf[:left]
                del buf[:end]
                self._chunk_left = None
                continue
            line_end = buf.find(b"\n", self._scan)
            if line_end < 0:
                limit = MAX_CHUNK_LINE if self._trailers is None else MAX_HEAD - self._trailers
                if len(buf) > limit:
                    raise BadResponse("the answer's chunk-size line or trailers are too long")
                self._scan = len(buf)
                return
            self._scan = 0
            line = bytes(buf[:line_end]).removesuffix(b"\r")
            del buf[: line_end + 1]
            if self._trailers is not None:  # after the last chunk: trailers, then a blank
                if line:
                    self._trailers += line_end + 1
                    if self._trailers > MAX_HEAD:
                        raise BadResponse(f"the answer's trailers exceed {MAX_HEAD} bytes")
                    continue
                if buf:
                    self.keep_alive = False  # bytes beyond the answer: do not reuse
                    buf.clear()
                self._finish(bytes(out))
                return
            size_text = line.split(b";", 1)[0].rstrip(b" \t")
            if not _HEX.fullmatch(size_text):
                raise BadResponse(f"a chunk size of {size_text[:20]!r} is not hex")
            size = int(size_text, 16)
            if size == 0:
                self._trailers = 0
            elif len(out) + size > MAX_BODY:
                raise BadResponse(f"the answer's body is larger than {MAX_BODY} bytes")
            else:
                self._chunk_left = size


def _read_head(raw: bytes) -> tuple[int, dict[str, str], str]:
    """Status, headers (lower-case names, repeats joined) and version of a head."""
    lines = raw.decode("latin-1").split("\n")
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        raise BadResponse(
            f"the answer does not start with an HTTP/1.x status line: {lines[0].rstrip(_WS)[:80]!r}"
        )
    headers: dict[str, str] = {}
    key = ""
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):  # obs-fold: the line continues the previous value
            if not key:
                raise BadResponse("the answer's first header line is a continuation")
            headers[key] += " " + line.strip(_WS)
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name[-1] in _WS:
            raise BadResponse(f"the answer has a malformed header line: {line.rstrip(_WS)[:80]!r}")
        key = name.lower()
        value = value.strip(_WS)
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return int(status_line[2]), headers, status_line[1]


def _gunzip(body: bytes, coding: str) -> bytes:
    """``body`` decoded from its content coding: gzip (which some send though
    ``identity`` was asked for), within :data:`MAX_BODY`."""
    if coding in ("", "identity"):
        return body
    if coding not in ("gzip", "x-gzip"):
        raise BadResponse(f"the answer's body is in a coding not asked for: {coding[:80]!r}")
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = decoder.decompress(body, MAX_BODY)
    except zlib.error as exc:
        raise BadResponse(f"the answer's gzip body does not decompress: {exc}") from None
    if decoder.unconsumed_tail:
        raise BadResponse(f"the answer's body is larger than {MAX_BODY} bytes decompressed")
    if not decoder.eof:
        raise BadResponse("the answer's gzip body is cut short")
    return data


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
        if not self.usable(base_url, None) or not parts.hostname:
            raise ValueError(f"{base_url!r} is not a plain http:// URL without credentials")
        host = parts.hostname
        if ":" in host:  # IPv6
            self.host, authority = host, f"[{host}]"
        else:
            self.host = authority = host.encode("idna").decode("ascii")  # UnicodeError
        self.port = parts.port or 80
        if parts.port is not None:
            authority += f":{parts.port}"
        self.path = quote(parts.path.rstrip("/"), safe=_PATH_SAFE)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        fixed = {"Host": authority, "Accept-Encoding": "identity", **headers}
        for name, value in fixed.items():
            if any(c in name + value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} has a line break or NUL in its value")
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode()
        self._idle: deque[_Connection] = deque()  # the longest idle on the left
        self._busy = 0  # requests under way
        self._waiting: deque[asyncio.Future[None]] = deque()  # for one to end
        self._closed = False

    @staticmethod
    def usable(base_url: str, proxy: str | None) -> bool:
        """Whether requests to ``base_url`` may take this client (plain http, no proxy,
        no credentials in the URL)."""
        return (
            proxy is None
            and base_url.startswith("http://")
            and "@" not in urlsplit(base_url).netloc
        )

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
        (connecting included); the read timeout applies between bytes in any case.
        Raises ValueError for a ``method`` or ``path`` that cannot go in a request line.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        if not _TOKEN.fullmatch(method) or _NOT_IN_PATH.search(path):
            raise ValueError(f"{method!r} {path!r} cannot be sent as a request line")
        if not path.isascii():
            path = quote(path, safe=_PATH_SAFE + "?")
        head = f"{method} {self.path}{path} HTTP/1.1\r\n".encode("ascii") + self._fixed
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            data = head + body
        else:
            data = head + b"\r\n"
        # A request that must not be sent twice takes only a fresh idle connection, and
        # is never sent again once written (RFC 9112 §9.3.1).
        idempotent = method in _IDEMPOTENT
        max_idle_age = KEEPALIVE_SECONDS if idempotent else FRESH_SECONDS
        no_body = method == "HEAD"
        if self._busy < MAX_CONNECTIONS:
            self._busy += 1
        else:
            await self._wait_for_slot(loop)
        try:
            fresh = False
            while True:
                conn = None if fresh else self._take(loop, max_idle_age)
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(loop, deadline)
                try:
                    reply = await conn.send(data, no_body, self.read_timeout, deadline)
                except ServerDisconnected:
                    conn.close()
                    if reused and idempotent and not conn.received:
                        # The keep-alive race: the server closed the idle connection as
                        # the request went out. Once more, on a new one.
                        fresh = True
                        continue
                    raise
                except BaseException:
                    conn.close()  # a timeout, cancellation: the answer may still come
                    raise
                self._release(conn, loop)
                return reply
        finally:
            self._free_slot()

    async def _wait_for_slot(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until a request ends and hands its slot on."""
        turn: asyncio.Future[None] = loop.create_future()
        self._waiting.append(turn)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._free_slot()  # handed a slot as it was cancelled: pass it on
            raise

    def _free_slot(self) -> None:
        waiting = self._waiting
        while waiting:
            turn = waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot goes to the longest waiting
                return
        self._busy -= 1

    def _take(self, loop: asyncio.AbstractEventLoop, max_age: float) -> _Connection | None:
        """The most recently used idle connection, after closing those idle longer
        than ``max_age`` (the longest idle first)."""
        idle = self._idle
        stale = loop.time() - max_age
        while idle and (idle[0].closed or idle[0].idle_since < stale):
            idle.popleft().close()
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
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
        conn.idle_since = now = loop.time()
        idle = self._idle
        stale = now - KEEPALIVE_SECONDS
        while idle and (idle[0].closed or idle[0].idle_since < stale):
            idle.popleft().close()
        idle.append(conn)

    def close(self) -> None:
        """Close the idle connections; those in use close when their request ends."""
        self._closed = True
        idle, self._idle = self._idle, deque()
        for conn in idle:
            conn.close()
