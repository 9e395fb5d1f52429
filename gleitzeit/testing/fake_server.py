"""The base of the fake upstream servers (:mod:`gleitzeit.testing.fake_openai`,
:mod:`gleitzeit.testing.fake_ollama`) that tests of LLM plugins run against.

A fake server is an aiohttp application on 127.0.0.1 (a real socket, real framing) whose
behaviour a test scripts through a :class:`Scenario`. A fake of a new upstream
subclasses :class:`FakeServer`: its ``routes``, its answers, and :meth:`FakeServer.script`
for streams.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Scenario:
    """What the fake server does with the next requests.

    * ``reply`` — the text answered; with ``chunks``, a stream has exactly that many
      content pieces (the reply's words, repeated as needed).
    * ``delay`` — seconds between streamed pieces; ``first_byte_delay`` — seconds before
      the response starts (for timeouts).
    * ``status``/``error``/``headers`` — answer with this HTTP error instead.
    * ``error_after`` — inside a stream, send an error after this many pieces.
    * ``drop_after`` — inside a stream, cut the connection after this many pieces.
    * ``tool_calls`` — ``[{"name": ..., "arguments": {...}}]``: when the request offers
      ``tools``, answer with these calls (in the upstream's own tool-call shape) instead
      of text; ``tool_calls_once`` answers with text once the conversation holds tool
      results.
    """

    reply: str = "Hello from the fake server"
    chunks: int | None = None
    delay: float = 0.0
    first_byte_delay: float = 0.0
    status: int | None = None
    error: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    error_after: int | None = None
    drop_after: int | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 7
    embedding_dimensions: int = 8
    tool_calls: list[dict[str, Any]] | None = None
    tool_calls_once: bool = True

    def calls_for(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The scripted tool calls to answer ``body`` with (none without ``tools``)."""
        if not self.tool_calls or not body.get("tools"):
            return []
        answered = any(
            isinstance(m, dict) and m.get("role") == "tool" for m in body.get("messages") or []
        )
        return [] if answered and self.tool_calls_once else list(self.tool_calls)

    def pieces(self) -> list[str]:
        words = self.reply.split(" ")
        words = [w + " " for w in words[:-1]] + [words[-1]]
        if self.chunks is None:
            return words
        return list(itertools.islice(itertools.cycle(words), self.chunks))

    def embedding(self, text: str) -> list[float]:
        seed = sum(map(ord, text)) or 1
        return [((seed * (i + 3)) % 97) / 97 for i in range(self.embedding_dimensions)]


class FakeServer:
    """Start and stop an aiohttp app on an ephemeral port of 127.0.0.1.

    A subclass adds its upstream's endpoints in :meth:`routes`; ``base_path`` is what
    the upstream's base URL adds to the address (``/v1`` for OpenAI's).
    """

    base_path: str = ""

    def __init__(self) -> None:
        self.scenario = Scenario()
        self.requests: list[dict[str, Any]] = []
        self._runner: Any = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        """The base URL to point a client at."""
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    def routes(self, router: Any) -> None:
        """Add the upstream's endpoints to ``router`` (an aiohttp ``UrlDispatcher``)."""
        raise NotImplementedError

    def app(self) -> Any:
        from aiohttp import web

        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app.router)
        return app

    async def start(self) -> None:
        from aiohttp import web

        self._runner = web.AppRunner(self.app(), handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _record(self, request: Any) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = {"_raw": (await request.text())[:200]}
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": dict(request.headers),
                "json": body,
            }
        )
        if self.scenario.first_byte_delay:
            await asyncio.sleep(self.scenario.first_byte_delay)
        return body

    async def script(
        self,
        request: Any,
        pieces: list[str],
        send: Callable[[int, str], Awaitable[None]],
        fail: Callable[[], Awaitable[None]],
    ) -> bool:
        """Stream ``pieces`` as the scenario says: ``send(i, piece)`` each, ``delay``
        seconds apart; ``fail()`` in place of piece ``error_after``, or the connection
        cut at ``drop_after``. False when the stream ended early that way."""
        sc = self.scenario
        for i, piece in enumerate(pieces):
            if sc.error_after is not None and i == sc.error_after:
                await fail()
                return False
            if sc.drop_after is not None and i == sc.drop_after:
                self.drop(request)
                return False
            if sc.delay:
                await asyncio.sleep(sc.delay)
            await send(i, piece)
        return True

    @staticmethod
    def drop(request: Any) -> None:
        """Cut the connection without finishing the response."""
        transport = request.transport
        if transport is not None:
            transport.abort()


class ThreadedServer:
    """Run a fake server on its own event loop in a thread, for tests that block (a CLI
    run in a subprocess, a synchronous client)::

        with ThreadedServer(FakeOpenAI()) as server:
            subprocess.run([... server.url ...])
    """

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: Any = None

    def __enter__(self) -> FakeServer:
        import threading

        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.server.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-server", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            raise failure[0]
        return self.server

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(30)
