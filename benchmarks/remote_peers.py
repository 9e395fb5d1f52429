"""Peers for the remote benchmark, each run in its own process.

python3 remote_peers.py raw URL          # a bare python-socketio client: the baseline
gleitzeit provider run remote_peers:BenchProvider --server URL   # the same work as a provider
"""

from __future__ import annotations

import asyncio
import sys

from pydantic import BaseModel

import gleitzeit


class Count(BaseModel):
    n: int


class BenchProvider(gleitzeit.Provider):
    name = "bench"
    kind = "tool"

    @gleitzeit.method("bench/echo")
    async def echo(self, params: dict) -> dict:
        return params

    @gleitzeit.method("bench/stream", params=Count)
    async def ticks(self, p: Count):
        chunk = {"token": "x", "done": False}
        for _ in range(p.n):
            yield dict(chunk)
        yield {"token": "", "done": True}


async def raw(url: str) -> None:
    import socketio

    sio = socketio.AsyncClient(reconnection=False)
    done = asyncio.Event()

    @sio.on("echo")
    async def echo(data):
        return data

    @sio.on("stream")
    async def stream(data):
        for _ in range(data["n"]):
            await sio.emit("chunk", {"token": "x", "done": False})
        await sio.emit("end", {})

    @sio.on("bye")
    async def bye(data=None):
        done.set()

    await sio.connect(url, transports=["websocket"])
    await sio.emit("ready", {})
    await done.wait()
    await sio.disconnect()


if __name__ == "__main__":
    asyncio.run(raw(sys.argv[2]))
