"""A client of a running ``gleitzeit serve``: invoke and stream over Socket.IO.

    async with gleitzeit.Client("http://127.0.0.1:8000", token="s3cret") as client:
        result = await client.invoke("calc/add", {"a": 1, "b": 2})
        async for chunk in client.stream("llm/chat", {"messages": [...]}):
            ...

It implements :class:`gleitzeit.Api`, as :class:`gleitzeit.Host` does, so code written
against one runs against the other.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from typing import Any

from gleitzeit.errors import (
    AuthRefused,
    GleitzeitError,
    ServerUnreachable,
    StreamError,
    error_from_dict,
)
from gleitzeit.socketio.demux import StreamDemux
from gleitzeit.socketio.flow import Grants
from gleitzeit.socketio.wire import CLIENTS_NAMESPACE


def _reason(data: Any) -> str:
    if isinstance(data, dict):
        return str(data.get("message", data))
    return str(data or "")


class Client:
    """Connection to a server's ``/clients`` namespace."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        connect_timeout: float = 10.0,
        stream_window: int = 32,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get("GLEITZEIT_TOKEN") or None
        self.connect_timeout = connect_timeout
        #: Chunks the server may send ahead of the reader (flow control).
        self.stream_window = stream_window
        self._sio: Any = None
        #: A connection that was lost, to close before the next one opens.
        self._lost: Any = None
        self._connecting: Any = None  # an asyncio.Lock, made on first use
        #: The answers awaited now: a lost connection fails them at once.
        self._awaited: set[Any] = set()
        self._streams = StreamDemux()
        self._ids = itertools.count(1)

    async def connect(self) -> None:
        """Connect now (calls connect on first use otherwise)."""
        await self._connection()

    async def _connection(self) -> Any:
        """The connection, made now if there is none: on first use, or after the last
        one was lost (the server restarted, or dropped it)."""
        sio = self._sio
        if sio is not None:
            return sio
        import asyncio

        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:  # concurrent first calls share one connection
            if self._sio is None:
                if self._lost is not None:
                    lost, self._lost = self._lost, None
                    await _discard(lost)
                await self._connect()
            return self._sio

    async def _connect(self) -> Any:
        import socketio

        from gleitzeit.socketio.packets import Packet

        sio = socketio.AsyncClient(reconnection=False, handle_sigint=False, serializer=Packet)
        ns = CLIENTS_NAMESPACE
        sio.on("stream:data", self._on_data, namespace=ns)
        sio.on("stream:end", self._on_end, namespace=ns)
        sio.on("stream:error", self._on_error, namespace=ns)
        sio.on("disconnect", lambda *reason: self._on_disconnect(sio), namespace=ns)
        refused: list[str] = []
        sio.on("connect_error", lambda data=None: refused.append(_reason(data)), namespace=ns)
        try:
            await sio.connect(
                self.url,
                namespaces=[ns],
                auth={"token": self.token} if self.token else None,
                transports=["websocket"],
                wait_timeout=self.connect_timeout,
            )
        except socketio.exceptions.ConnectionError as exc:
            await _discard(sio)
            text = "; ".join(r for r in refused if r) or str(exc)
            if "authentication failed" in text:
                raise AuthRefused(
                    f"{self.url} refused the connection: {text}",
                    hint="Client(url, token=...) or GLEITZEIT_TOKEN (--token on the command line)",
                ) from None
            raise ServerUnreachable(
                f"Cannot reach a gleitzeit server at {self.url}: {text or 'connection failed'}",
                hint="start one with `gleitzeit serve`, or check --server",
            ) from None
        self._sio = sio
        return sio

    async def close(self) -> None:
        sio, self._sio = self._sio, None
        if sio is not None:
            await sio.disconnect()
        if self._lost is not None:
            lost, self._lost = self._lost, None
            await _discard(lost)

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- events ----------------------------------------------------------------------

    def _on_data(self, data: Any) -> None:
        if isinstance(data, dict):
            self._streams.data(str(data.get("stream_id")), data.get("chunk") or {})

    def _on_end(self, data: Any) -> None:
        if isinstance(data, dict):
            self._streams.end(str(data.get("stream_id")))

    def _on_error(self, data: Any) -> None:
        if isinstance(data, dict):
            self._streams.fail(str(data.get("stream_id")), error_from_dict(data.get("error") or {}))

    def _on_disconnect(self, sio: Any) -> None:
        if self._sio is sio:  # (not after close(): that one was meant)
            self._sio, self._lost = None, sio
        for fut in list(self._awaited):
            if not fut.done():
                fut.set_exception(_Lost())
        self._streams.fail_all(
            lambda began: StreamError(f"Lost the connection to {self.url} during the stream")
        )

    # -- calls -----------------------------------------------------------------------

    async def _call(self, event: str, data: dict[str, Any], timeout: float | None) -> Any:
        sio = self._sio or await self._connection()
        try:
            reply = await _ask(sio, event, data, timeout, self._awaited)
        except _Lost:
            raise ServerUnreachable(
                f"Lost the connection to {self.url} before the answer to {event} came",
                hint="the server stopped or dropped the connection (a request above its "
                "server.max_payload_bytes is dropped); it may or may not have run the call. "
                "The next call connects again",
            ) from None
        except Exception as exc:
            raise ServerUnreachable(
                f"{event} to {self.url} failed: {type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(reply, dict) or not reply.get("ok"):
            raise error_from_dict((reply or {}).get("error") or {"message": "no answer"})
        return reply.get("result")

    @staticmethod
    def _selection(
        provider: str | None, model: str | None, capability: str | None
    ) -> dict[str, Any]:
        picked = {"provider": provider, "model": model, "capability": capability}
        return {k: v for k, v in picked.items() if v is not None}

    async def invoke(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        capability: str | None = None,
        timeout: float | None = None,
        call_id: str | None = None,
    ) -> dict[str, Any]:
        """Route one request through the server and return its result; an error
        raised here carries the server's ``call_id`` (the one given, or the server's)."""
        data: dict[str, Any] = {"method": method, "params": params or {}}
        data.update(self._selection(provider, model, capability))
        if call_id is not None:
            data["call_id"] = call_id
        if timeout is not None:
            data["timeout"] = timeout
        # The server enforces the invocation timeout; this one only guards the link.
        result: dict[str, Any] = await self._call("invoke", data, timeout=(timeout or 3600) + 30)
        return result

    async def stream(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        capability: str | None = None,
        chunk_timeout: float | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream one request through the server; the last chunk has ``done: true``."""
        sio = self._sio or await self._connection()
        stream_id = f"c{next(self._ids)}"
        self._streams.open(stream_id)
        data: dict[str, Any] = {
            "stream_id": stream_id,
            "method": method,
            "params": params or {},
            "window": self.stream_window,
        }
        data.update(self._selection(provider, model, capability))
        if chunk_timeout is not None:
            data["timeout"] = chunk_timeout
        grants = Grants(self.stream_window)
        finished = False
        try:
            await sio.emit("stream:start", data, namespace=CLIENTS_NAMESPACE)
            async for chunk in self._streams.read(stream_id):
                if chunk.get("done"):
                    finished = True  # stream:end follows; nothing more for the caller
                yield chunk
                # Credit is granted only once the caller took the chunk: a caller that
                # stops reading holds the server, which holds the provider.
                n = grants.consumed_one()
                if n and not finished and sio.connected:
                    await sio.emit(
                        "stream:credit",
                        {"stream_id": stream_id, "n": n},
                        namespace=CLIENTS_NAMESPACE,
                    )
            finished = True
        except GleitzeitError:
            finished = True
            raise
        finally:
            self._streams.close(stream_id)
            if not finished and sio.connected:
                await sio.emit(
                    "stream:cancel", {"stream_id": stream_id}, namespace=CLIENTS_NAMESPACE
                )

    async def providers(self, *, check: bool = False) -> list[dict[str, Any]]:
        """Every instance the server can reach, with health and in-flight counts;
        ``check`` has the server run its health checks first."""
        data = {"check": True} if check else {}
        result = await self._call("providers", data, timeout=90 if check else 30)
        providers: list[dict[str, Any]] = result["providers"]
        return providers

    async def health(self, name: str | None = None) -> list[dict[str, Any]]:
        """Run the server's health checks now."""
        rows: list[dict[str, Any]] = (await self._call("health", {"name": name}, timeout=60))[
            "instances"
        ]
        return rows


class _Lost(Exception):
    """The connection went away while an answer was awaited."""


async def _ask(
    sio: Any, event: str, data: dict[str, Any], timeout: float | None, awaited: set[Any]
) -> Any:
    """``sio.call`` without its task per call: the ack resolves a future, a timer
    (when ``timeout`` is given) fails it with the same ``TimeoutError``; while it is
    awaited, the future is in ``awaited`` (a lost connection fails it)."""
    import asyncio  # not at import: `import gleitzeit` stays without asyncio

    import socketio

    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def ack(*args: Any) -> None:
        if not fut.done():
            fut.set_result(args[0] if len(args) == 1 else (args or None))

    def expire() -> None:
        if not fut.done():
            fut.set_exception(socketio.exceptions.TimeoutError())

    awaited.add(fut)
    timer = None
    try:
        await sio.emit(event, data, namespace=CLIENTS_NAMESPACE, callback=ack)
        timer = loop.call_later(timeout, expire) if timeout is not None else None
        return await fut
    finally:
        awaited.discard(fut)
        if timer is not None:
            timer.cancel()
        if fut.done() and not fut.cancelled():
            fut.exception()  # (seen: a loss during the emit is raised by the emit)


async def _discard(sio: Any) -> None:
    """Close what a failed connect left open (engine.io's HTTP session), so no
    'Unclosed client session' warning follows the error."""
    try:
        await sio.disconnect()
    except Exception:  # nothing was connected
        pass
    http = getattr(sio.eio, "http", None)
    if http is not None and not http.closed:
        await http.close()
