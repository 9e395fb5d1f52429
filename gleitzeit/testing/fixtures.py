"""pytest fixtures for Gleitzeit; enable with ``pytest_plugins = ["gleitzeit.testing.fixtures"]``.

* ``gleitzeit_server`` — a ``gleitzeit serve`` on 127.0.0.1 in a background thread, for
  synchronous tests and subprocesses: ``.url``, ``.token`` (a client's) and
  ``.provider_token`` (for ``gleitzeit provider run``).
* ``gleitzeit_host`` — :func:`gleitzeit.testing.host`: ``async with gleitzeit_host(plugin,
  providers=[...]) as host:`` gives a started host with those plugins registered.
* ``gleitzeit_plugin`` — a function ``register(obj, name=None)``; what it registers is
  seen by every host loaded in this test and removed afterwards.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from gleitzeit.testing.helpers import host, local_server, provider_token, registered_plugin


class _ServerThread:
    def __init__(self) -> None:
        self.url = ""
        self.token = ""
        self.provider_token = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gleitzeit-server", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                async with local_server() as server:
                    self.url, self.token = server.url, server.token
                    self.provider_token = provider_token(server.url)
                    self._loop = asyncio.get_running_loop()
                    self._ready.set()
                    await self._stop.wait()
            except BaseException as exc:  # reported to the test below
                self._error = exc
                self._ready.set()

        asyncio.run(main())

    def __enter__(self) -> _ServerThread:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture
def gleitzeit_server() -> Iterator[Any]:
    with _ServerThread() as server:
        yield server


@pytest.fixture
def gleitzeit_plugin() -> Iterator[Any]:
    with ExitStack() as stack:

        def register(obj: Any, name: str | None = None) -> str:
            return stack.enter_context(registered_plugin(obj, name))

        yield register


@pytest.fixture
def gleitzeit_host() -> Any:
    return host
