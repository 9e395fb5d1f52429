"""A client of a running ``gleitzeit serve``: invoke and stream over Socket.IO.

    async with gleitzeit.Client("http://127.0.0.1:8000", token="s3cret") as client:
        result = await client.invoke("calc/add", {"a": 1, "b": 2})
        async for chunk in client.stream("llm/chat", {"messages": [...]}):
            ...

It has the same ``invoke`` and ``stream`` as :class:`gleitzeit.Host`, so code written
against one runs against the other.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator
from typing import Any

from gleitzeit.errors import GleitzeitError, ProviderUnavailableError, StreamError, error_from_dict
from gleitzeit.protocol import CLIENTS_NAMESPACE

_END = object()


class ServerUnreachable(ProviderUnavailableError):
    code = "server_unreachable"


class AuthRefused(GleitzeitError):
    code = "auth_refused"
    exit_code = 2


def _reason(data: Any) -> str:
    if isinstance(data, dict):
        return str(data.get("message", data))
    return str(data or "")


class Client:
    """Connection to a server's ``/clients`` namespace."""

    def __init__(
        self, url: str, *, token: str | None = None, connect_timeout: float = 10.0
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get("GLEITZEIT_TOKEN") or None
        self.connect_timeout = connect_timeout
        self._sio: Any = None
        self._streams: dict[str, asyncio.Queue[Any]] = {}
        self._ids = itertools.count(1)

    async def connect(self) -> None:
        import socketio

        sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        ns = CLIENTS_NAMESPACE
        sio.on("stream:data", self._on_data, namespace=ns)
        sio.on("stream:end", self._on_end, namespace=ns)
        sio.on("stream:error", self._on_error, namespace=ns)
        sio.on("disconnect", self._on_disconnect, namespace=ns)
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
            text = "; ".join(r for r in refused if r) or str(exc)
            if "authentication failed" in text:
                raise AuthRefused(
                    f"{self.url} refused the connection: {text}",
                    hint="pass the server's token with --token or GLEITZEIT_TOKEN",
                ) from None
            raise ServerUnreachable(
                f"Cannot reach a gleitzeit server at {self.url}: {text or 'connection failed'}",
                hint="start one with `gleitzeit serve`, or check --server",
            ) from None
        self._sio = sio

    async def close(self) -> None:
        if self._sio is not None:
            await self._sio.disconnect()
            self._sio = None

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- events ----------------------------------------------------------------------

    def _on_data(self, data: Any) -> None:
        queue = self._streams.get(data.get("stream_id")) if isinstance(data, dict) else None
        if queue is not None:
            queue.put_nowait(data.get("chunk") or {})

    def _on_end(self, data: Any) -> None:
        queue = self._streams.get(data.get("stream_id")) if isinstance(data, dict) else None
        if queue is not None:
            queue.put_nowait(_END)

    def _on_error(self, data: Any) -> None:
        queue = self._streams.get(data.get("stream_id")) if isinstance(data, dict) else None
        if queue is not None:
            queue.put_nowait(error_from_dict(data.get("error") or {}))

    def _on_disconnect(self, *reason: Any) -> None:
        for queue in self._streams.values():
            queue.put_nowait(StreamError(f"Lost the connection to {self.url} during the stream"))

    # -- calls -----------------------------------------------------------------------

    async def _call(self, event: str, data: dict[str, Any], timeout: float | None) -> Any:
        if self._sio is None:
            await self.connect()
        try:
            reply = await self._sio.call(event, data, namespace=CLIENTS_NAMESPACE, timeout=timeout)
        except Exception as exc:
            raise ServerUnreachable(
                f"{event} to {self.url} failed: {type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(reply, dict) or not reply.get("ok"):
            raise error_from_dict((reply or {}).get("error") or {"message": "no answer"})
        return reply.get("result")

    async def invoke(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        timeout: float | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        """Route one request through the server and return its result."""
        data: dict[str, Any] = {"method": method, "params": params or {}}
        if provider is not None:
            data["provider"] = provider
        if model is not None:
            data["model"] = model
        if timeout is not None:
            data["timeout"] = timeout
        # The server enforces the invocation timeout; this one only guards the link.
        return await self._call("invoke", data, timeout=(timeout or 3600) + 30)

    async def stream(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        chunk_timeout: float | None = None,
        **_: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream one request through the server; the last chunk has ``done: true``."""
        if self._sio is None:
            await self.connect()
        stream_id = f"c{next(self._ids)}"
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._streams[stream_id] = queue
        data: dict[str, Any] = {"stream_id": stream_id, "method": method, "params": params or {}}
        if provider is not None:
            data["provider"] = provider
        if model is not None:
            data["model"] = model
        if chunk_timeout is not None:
            data["timeout"] = chunk_timeout
        finished = False
        try:
            await self._sio.emit("stream:start", data, namespace=CLIENTS_NAMESPACE)
            while True:
                item = await queue.get()
                if item is _END:
                    finished = True
                    return
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                yield item
                if item.get("done"):
                    finished = True
                    # stream:end follows; nothing more to read for the caller
                    return
        finally:
            self._streams.pop(stream_id, None)
            if not finished and self._sio is not None and self._sio.connected:
                await self._sio.emit(
                    "stream:cancel", {"stream_id": stream_id}, namespace=CLIENTS_NAMESPACE
                )

    async def providers(self) -> list[dict[str, Any]]:
        """Every instance the server can reach, with health and in-flight counts."""
        return (await self._call("providers", {}, timeout=30))["providers"]

    async def health(self, name: str | None = None) -> list[dict[str, Any]]:
        """Run the server's health checks now."""
        return (await self._call("health", {"name": name}, timeout=60))["instances"]
