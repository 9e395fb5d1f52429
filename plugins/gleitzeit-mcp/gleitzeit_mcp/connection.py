"""One MCP server kept connected: started, watched, restarted with backoff, stopped.

Imported only when an MCP provider starts (it imports the ``mcp`` SDK).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Callable
from typing import IO, Any

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from gleitzeit.errors import GleitzeitError, ProviderTimeoutError, ProviderUnavailableError
from gleitzeit_mcp.settings import ServerConfig

log = logging.getLogger("gleitzeit.mcp")

_TAIL_BYTES = 2000
# JSON-RPC codes the SDK uses for a link that broke, not for an answer the server gave.
_CONNECTION_CLOSED = -32000
_REQUEST_TIMEOUT = -32001
_LIST_CHANGED = "notifications/tools/list_changed"


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside the exception groups anyio's task groups raise."""
    inner = getattr(exc, "exceptions", None)
    while inner:
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    return exc


def describe(exc: BaseException) -> str:
    """One line for an error from starting or talking to a server."""
    exc = _leaf(exc)
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {exc.filename or exc}"
    if isinstance(exc, TimeoutError):
        return "did not answer in time"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _WatchedStream:
    """The read side of a transport, reporting when it ends (the server went away)."""

    def __init__(self, inner: Any, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    @property
    def last_context(self) -> Any:
        # The dispatcher reads this from streams that carry a sender's context.
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _WatchedStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _WatchedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Connection:
    """A supervised session with one MCP server.

    :meth:`open` starts the server (or connects to its URL), initializes the session and
    reads its tools; it fails with the server's own words when that does not work. After
    that a background task keeps the session: when the server exits or the link breaks
    it is started again after a backoff that doubles up to ``restart_backoff_max``, and
    a ``tools/list_changed`` notification re-reads the tools. ``on_tools`` is called with
    every new tool list and the server's capabilities.
    """

    def __init__(
        self,
        server: str,
        config: ServerConfig,
        on_tools: Callable[[list[types.Tool], types.ServerCapabilities | None], None],
    ) -> None:
        self.server = server
        self.config = config
        self.on_tools = on_tools
        self.session: ClientSession | None = None
        self.capabilities: types.ServerCapabilities | None = None
        self.tools: list[types.Tool] = []
        #: Set while a session is up; tests and callers wait on it after a restart.
        self.ready = asyncio.Event()
        #: Set when a session ended without being asked to (cleared once it is back).
        self.down = asyncio.Event()
        #: Set each time the tools have been read.
        self.tools_read = asyncio.Event()
        self.restarts = 0
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._lost = False
        self._tools_dirty = False
        self._stderr: IO[str] | None = None
        self._tail = ""

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Start the server and wait until its session is ready."""
        if self._task is not None:
            return
        self._stopping = False
        self._first = asyncio.get_running_loop().create_future()
        self._task = asyncio.ensure_future(self._supervise())
        try:
            await asyncio.wait_for(asyncio.shield(self._first), self.config.startup_timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise ProviderTimeoutError(
                f"MCP server {self.server!r} did not start within "
                f"{self.config.startup_timeout:g}s" + self._tail_note(),
                hint=f"raise plugins.mcp.servers.{self.server}.startup_timeout, or check the "
                "command or url",
            ) from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop the server (or leave its URL) and the background task."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            # The SDK bounds its own shutdown of a stdio server (grace, then kill).
            await asyncio.wait_for(asyncio.shield(task), 15)
        except asyncio.TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except Exception:
            log.debug("MCP server %s: supervisor ended with an error", self.server, exc_info=True)
        self.ready.clear()
        self.session = None

    async def _supervise(self) -> None:
        delay = self.config.restart_backoff
        while not self._stopping:
            began = time.monotonic()
            try:
                await self._run_session()
                reason = "closed the connection"
            except Exception as exc:
                reason = describe(exc)
            self.ready.clear()
            self.session = None
            if not self._stopping:
                self.down.set()
            if self._first is not None and not self._first.done():
                self._first.set_exception(
                    ProviderUnavailableError(
                        f"MCP server {self.server!r} failed to start: {reason}" + self._tail_note(),
                        hint=self._start_hint(),
                    )
                )
                return
            if self._stopping:
                return
            self.last_error = f"MCP server {self.server!r} {reason}" + self._tail_note()
            log.warning("%s; restarting in %.1fs", self.last_error, delay)
            if time.monotonic() - began > self.config.restart_backoff_max:
                delay = self.config.restart_backoff
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wait_stopping(), delay)
            delay = min(delay * 2, self.config.restart_backoff_max)
            self.restarts += 1

    async def _wait_stopping(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()

    async def _run_session(self) -> None:
        self._lost = False
        self._tools_dirty = False
        self._wake.clear()
        cfg = self.config
        async with contextlib.AsyncExitStack() as stack:
            if cfg.command is not None:
                # Appending, so the server's writes land at the end however we read.
                errlog = stack.enter_context(
                    tempfile.TemporaryFile("a+", encoding="utf-8", errors="replace")
                )
                self._stderr = errlog
                # Runs after the server has stopped (exit order), before the file closes.
                stack.callback(self._keep_tail)
                params = StdioServerParameters(
                    command=cfg.command, args=cfg.args, env=cfg.env_values() or None, cwd=cfg.cwd
                )
                read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
            else:
                assert cfg.url is not None
                http = await stack.enter_async_context(
                    httpx2.AsyncClient(
                        headers=cfg.header_values(),
                        timeout=httpx2.Timeout(30.0, read=cfg.timeout + 30),
                    )
                )
                read, write = await stack.enter_async_context(
                    streamable_http_client(cfg.url, http_client=http)
                )
            session = await stack.enter_async_context(
                ClientSession(
                    _WatchedStream(read, self._on_end),
                    write,
                    message_handler=self._on_message,
                    client_info=types.Implementation(name="gleitzeit", version=_version()),
                )
            )
            with anyio.fail_after(cfg.startup_timeout):
                init = await session.initialize()
                self.capabilities = init.capabilities
                await self._read_tools(session)
            self.session = session
            self.last_error = None
            self.down.clear()
            self.ready.set()
            if self._first is not None and not self._first.done():
                self._first.set_result(None)
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._stopping or self._lost:
                    break
                if self._tools_dirty:
                    self._tools_dirty = False
                    try:
                        with anyio.fail_after(cfg.timeout):
                            await self._read_tools(session)
                    except Exception as exc:
                        log.warning("MCP server %s: re-reading tools failed: %s", self.server, exc)
            self.ready.clear()
            self.session = None

    async def _read_tools(self, session: ClientSession) -> None:
        caps = self.capabilities
        if caps is None or caps.tools is None:
            tools: list[types.Tool] = []
        else:
            tools = []
            cursor: str | None = None
            while True:
                page = await session.list_tools(
                    params=types.PaginatedRequestParams(cursor=cursor) if cursor else None
                )
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
        self.tools = tools
        self.on_tools(tools, caps)
        self.tools_read.set()

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            log.debug("MCP server %s: transport error: %s", self.server, message)
            return
        if getattr(getattr(message, "root", message), "method", None) == _LIST_CHANGED:
            self._tools_dirty = True
            self._wake.set()

    def _on_end(self) -> None:
        if not self._stopping:
            self._lost = True
            self._wake.set()

    def mark_lost(self) -> None:
        """Drop the session and connect again (the link is known to be broken)."""
        self._on_end()

    # -- stderr ----------------------------------------------------------------------

    def _keep_tail(self) -> None:
        self._tail = self._read_tail()
        self._stderr = None

    def _read_tail(self) -> str:
        f = self._stderr
        if f is None or f.closed:
            return self._tail
        try:
            f.flush()
            size = f.seek(0, 2)
            f.seek(max(0, size - _TAIL_BYTES))
            return f.read().strip()
        except (OSError, ValueError):
            return self._tail

    def stderr_tail(self) -> str:
        """The last lines the server wrote to stderr (stdio servers)."""
        return self._read_tail()

    def _tail_note(self) -> str:
        tail = self.stderr_tail()
        if not tail:
            return ""
        lines = tail.splitlines()[-5:]
        return "; its stderr ends: " + " | ".join(line.strip() for line in lines)

    def _start_hint(self) -> str:
        if self.config.command is not None:
            return (
                f"check plugins.mcp.servers.{self.server}.command and args in gleitzeit.yaml "
                "(the command must speak MCP on stdin/stdout)"
            )
        return f"check that {self.config.url} is an MCP endpoint and the headers it needs"

    # -- calls -----------------------------------------------------------------------

    def live(self) -> ClientSession:
        """The session, or an error saying why there is none now."""
        session = self.session
        if session is None:
            raise ProviderUnavailableError(
                self.last_error or f"MCP server {self.server!r} is not connected",
                hint="it is restarted automatically; see `gleitzeit providers health`",
            )
        return session

    def failure(self, exc: BaseException, what: str) -> GleitzeitError:
        """The gleitzeit error for a failed request ``what`` (a broken link restarts)."""
        exc = _leaf(exc)
        if isinstance(exc, MCPError):
            if exc.code == _REQUEST_TIMEOUT:
                return ProviderTimeoutError(
                    f"{what}: MCP server {self.server!r} did not answer within "
                    f"{self.config.timeout:g}s",
                    hint=f"raise plugins.mcp.servers.{self.server}.timeout",
                )
            if exc.code == _CONNECTION_CLOSED:
                self.mark_lost()
                return ProviderUnavailableError(
                    f"{what}: lost the connection to MCP server {self.server!r}: {exc.message}"
                    + self._tail_note(),
                    hint="it is restarted automatically",
                )
            return _protocol_error(self.server, what, exc)
        if isinstance(exc, TimeoutError):
            return ProviderTimeoutError(
                f"{what}: MCP server {self.server!r} did not answer within {self.config.timeout:g}s"
            )
        self.mark_lost()
        return ProviderUnavailableError(
            f"{what}: MCP server {self.server!r} failed: {describe(exc)}" + self._tail_note()
        )


def _protocol_error(server: str, what: str, exc: MCPError) -> GleitzeitError:
    from gleitzeit.errors import InvalidParamsError, MethodNotFoundError, ToolError

    text = f"{what}: MCP server {server!r} answered: {exc.message}"
    if exc.code == -32602:
        return InvalidParamsError(text)
    if exc.code == -32601:
        return MethodNotFoundError(text)
    return ToolError(text)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gleitzeit-mcp")
    except PackageNotFoundError:
        return "0"
