"""Processes for the remote benchmark, each run on its own.

python3 remote_peers.py raw URL            # a bare python-socketio client: the provider side
python3 remote_peers.py relay              # a bare python-socketio server relaying to it
python3 remote_peers.py rawserver          # a bare server that takes registrations, nothing else
python3 remote_peers.py gserver            # a gleitzeit server (GleitzeitServer)
python3 remote_peers.py providers URL N    # N provider connections, registered and heart-beating
gleitzeit provider run remote_peers:BenchProvider --server URL   # the provider, as users run it

The servers print their URL on the first line of stdout and run until stdin closes.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

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


#: The raw baselines use the namespaces and the request and reply shapes of Gleitzeit's
#: protocol (docs/protocol.md), so they move the same JSON as a Gleitzeit call at least
#: has to: a client's ``{"method", "params", "provider"}``, the provider's ``{"method",
#: "params"}``, and ``{"ok", "result"}`` back.
PROVIDERS, CLIENTS = "/providers", "/clients"
REQUEST = {"method": "bench/echo", "params": {"x": 1}, "provider": "bench"}


async def raw(url: str) -> None:
    """The provider of the raw baselines: answers ``invoke``, streams ``n`` chunks."""
    import socketio

    sio = socketio.AsyncClient(reconnection=False)
    done = asyncio.Event()

    @sio.on("invoke", namespace=PROVIDERS)
    async def invoke(data):
        return {"ok": True, "result": data["params"]}

    @sio.on("stream", namespace=PROVIDERS)
    async def stream(data):
        for _ in range(data["n"]):
            await sio.emit("chunk", {"token": "x", "done": False}, namespace=PROVIDERS)
        await sio.emit("end", {}, namespace=PROVIDERS)

    @sio.on("bye", namespace=PROVIDERS)
    async def bye(data=None):
        done.set()

    await sio.connect(url, namespaces=[PROVIDERS], transports=["websocket"])
    await sio.emit("ready", {}, namespace=PROVIDERS)
    await done.wait()
    await sio.disconnect()


async def _serve_until_stdin_closes(app: Any) -> None:
    from aiohttp import web

    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"http://127.0.0.1:{port}", flush=True)
    await _stdin_closed()
    await runner.cleanup()


async def _stdin_closed() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def relay() -> None:
    """A raw two-hop relay: a client's ``invoke`` on /clients is ``call``ed on the
    provider (on /providers) with its method and params, and the provider's reply
    returned; a ``stream`` is forwarded and each chunk sent back; nothing else."""
    import socketio
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)
    state: dict[str, Any] = {"provider": None, "client": None}

    @sio.on("ready", namespace=PROVIDERS)
    async def ready(sid, data):
        state["provider"] = sid

    @sio.on("invoke", namespace=CLIENTS)
    async def invoke(sid, data):
        if state["provider"] is None:
            return None  # not connected yet
        request = {"method": data["method"], "params": data["params"]}
        return await sio.call("invoke", request, to=state["provider"], namespace=PROVIDERS)

    @sio.on("stream", namespace=CLIENTS)
    async def stream(sid, data):
        state["client"] = sid
        await sio.emit("stream", data, to=state["provider"], namespace=PROVIDERS)

    @sio.on("chunk", namespace=PROVIDERS)
    async def chunk(sid, data):
        await sio.emit("chunk", data, to=state["client"], namespace=CLIENTS)

    @sio.on("end", namespace=PROVIDERS)
    async def end(sid, data):
        await sio.emit("end", data, to=state["client"], namespace=CLIENTS)

    @sio.on("bye", namespace=CLIENTS)
    async def bye(sid, data=None):
        await sio.emit("bye", {}, to=state["provider"], namespace=PROVIDERS)

    await _serve_until_stdin_closes(app)


async def rawserver() -> None:
    """What a bare python-socketio server holds for provider connections: a register
    call answered, heartbeats received."""
    import itertools

    import socketio
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)
    ids = itertools.count()

    @sio.on("register", namespace="/providers")
    async def register(sid, data):
        return {"ok": True, "instance_id": f"i{next(ids)}"}

    @sio.on("heartbeat", namespace="/providers")
    async def heartbeat(sid, data):
        return None

    await _serve_until_stdin_closes(app)


async def gserver() -> None:
    from gleitzeit.config import parse_config
    from gleitzeit.host import Host
    from gleitzeit.plugins import Plugins
    from gleitzeit.socketio.server import GleitzeitServer

    config = parse_config("routing: {timeout: 60}\n")
    host = Host(config, plugins=Plugins.load(config, installed=False))
    server = GleitzeitServer(host, bind="127.0.0.1", port=0)
    await server.start()
    print(server.url, flush=True)
    await _stdin_closed()
    await server.stop(grace=0)


async def providers(url: str, n: int) -> None:
    """N provider connections in this one process, registered and heart-beating every
    5 s (the server's default interval), as a provider runner does."""
    import socketio

    clients = []
    for i in range(n):
        sio = socketio.AsyncClient(reconnection=False)

        async def echo(data: dict) -> dict:
            return {"ok": True, "result": data.get("params", {})}

        sio.on("invoke", echo, namespace="/providers")
        await sio.connect(url, namespaces=["/providers"], transports=["websocket"])
        ack = await sio.call(
            "register",
            {"name": f"p{i}", "kind": "tool", "methods": {"bench/echo": {}}},
            namespace="/providers",
        )
        clients.append((sio, ack["instance_id"]))
    print("connected", flush=True)

    async def beat(sio: socketio.AsyncClient, instance_id: str) -> None:
        while True:
            await asyncio.sleep(5.0)
            await sio.emit(
                "heartbeat", {"instance_id": instance_id, "in_flight": 0}, namespace="/providers"
            )

    await asyncio.gather(*(beat(s, i) for s, i in clients))


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "raw":
        asyncio.run(raw(sys.argv[2]))
    elif what == "providers":
        asyncio.run(providers(sys.argv[2], int(sys.argv[3])))
    else:
        asyncio.run({"relay": relay, "rawserver": rawserver, "gserver": gserver}[what]())
