"""Remote providers over Socket.IO against raw python-socketio between the same two
processes, and picking an instance among 1,000."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

NAME = "remote"
TARGET = (
    "call p50 <= 1.3x raw call(); 10-in-flight throughput >= 0.7x raw; "
    "stream chunks/s >= 0.7x raw emit; pick among 1,000 instances: median < 50 us"
)
HERE = Path(__file__).resolve().parent
CALLS = 2000
INFLIGHT_CALLS = 4000
CHUNKS = 20000


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    env["GLEITZEIT_PLUGINS"] = ""
    return env


async def _measure(call, stream) -> dict:
    for _ in range(200):  # warm-up
        await call()
    lat = []
    for _ in range(CALLS):
        t = time.perf_counter()
        await call()
        lat.append(time.perf_counter() - t)

    async def worker(n: int) -> None:
        for _ in range(n):
            await call()

    t = time.perf_counter()
    await asyncio.gather(*(worker(INFLIGHT_CALLS // 10) for _ in range(10)))
    throughput = INFLIGHT_CALLS / (time.perf_counter() - t)
    await stream(1000)
    t = time.perf_counter()
    n = await stream(CHUNKS)
    chunk_rate = n / (time.perf_counter() - t)
    return {
        "p50_ms": statistics.median(lat) * 1000,
        "throughput": throughput,
        "chunks_per_s": chunk_rate,
    }


async def _raw() -> dict:
    import socketio
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)
    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    state: dict = {}

    @sio.on("ready")
    async def on_ready(sid, data):
        if not ready.done():
            ready.set_result(sid)

    @sio.on("chunk")
    def on_chunk(sid, data):
        state["n"] += 1

    @sio.on("end")
    def on_end(sid, data):
        state["end"].set()

    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    peer = subprocess.Popen(
        [sys.executable, str(HERE / "remote_peers.py"), "raw", f"http://127.0.0.1:{port}"],
        env=_env(),
    )
    sid = await asyncio.wait_for(ready, 60)

    async def call():
        return await sio.call("echo", {"x": 1}, to=sid)

    async def stream(n: int) -> int:
        state["n"] = 0
        state["end"] = asyncio.Event()
        await sio.emit("stream", {"n": n}, to=sid)
        await state["end"].wait()
        return state["n"]

    try:
        return await _measure(call, stream)
    finally:
        await sio.emit("bye", {}, to=sid)
        await asyncio.to_thread(peer.wait, 30)
        await runner.cleanup()


async def _gleitzeit() -> dict:
    from gleitzeit.config import parse_config
    from gleitzeit.host import Host
    from gleitzeit.plugins import Plugins
    from gleitzeit.socketio.server import GleitzeitServer

    config = parse_config("routing: {timeout: 60}\n")
    host = Host(config, plugins=Plugins.load(config, installed=False))
    server = GleitzeitServer(host, bind="127.0.0.1", port=0)
    await server.start()
    peer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gleitzeit",
            "provider",
            "run",
            "remote_peers:BenchProvider",
            "--server",
            server.url,
        ],
        env=_env(),
        cwd=HERE,
        stdout=subprocess.DEVNULL,
    )
    while not host.registry.instances("bench"):
        await asyncio.sleep(0.02)

    async def call():
        return await host.invoke("bench/echo", {"x": 1}, provider="bench")

    async def stream(n: int) -> int:
        count = 0
        async for _ in host.stream("bench/stream", {"n": n}, provider="bench"):
            count += 1
        return count - 1

    try:
        return await _measure(call, stream)
    finally:
        peer.terminate()
        await asyncio.to_thread(peer.wait, 30)
        await server.stop(grace=0)


def _pick_among_1000() -> dict:
    from gleitzeit.config import Config
    from gleitzeit.host import Host
    from gleitzeit.instance import ProviderInstance
    from gleitzeit.methods import MethodDescription
    from gleitzeit.plugins import Plugins

    async def go() -> float:
        host = Host(Config(), plugins=Plugins.load(Config(), installed=False, builtins=True))
        await host.start()
        for i in range(1000):
            inst = ProviderInstance(
                name="llm", kind="llm", methods={"llm/x": MethodDescription()}, models=("m",)
            )
            inst.in_flight = i % 7
            host.registry.add(inst)
        from gleitzeit.request import Request

        times = []
        registry, router = host.registry, host.router
        assert router is not None
        for _ in range(20000):
            t = time.perf_counter_ns()
            request = Request("llm/x", {}, None, "m")
            request.method = registry.resolve_method(request.method, None)
            router.pick(registry.candidates(request.method, None, "m", None), request)
            times.append(time.perf_counter_ns() - t)
        await host.stop()
        return statistics.median(times) / 1000

    return {"pick_median_us": asyncio.run(go())}


def run() -> dict:
    raw = asyncio.run(_raw())
    ours = asyncio.run(_gleitzeit())
    pick = _pick_among_1000()
    out = {
        "raw_call_p50_ms": raw["p50_ms"],
        "gleitzeit_call_p50_ms": ours["p50_ms"],
        "call_p50_ratio": ours["p50_ms"] / raw["p50_ms"],
        "raw_10_in_flight_per_s": raw["throughput"],
        "gleitzeit_10_in_flight_per_s": ours["throughput"],
        "throughput_ratio": ours["throughput"] / raw["throughput"],
        "raw_chunks_per_s": raw["chunks_per_s"],
        "gleitzeit_chunks_per_s": ours["chunks_per_s"],
        "stream_ratio": ours["chunks_per_s"] / raw["chunks_per_s"],
        **pick,
    }
    out["ratio"] = out["call_p50_ratio"]
    out["target_ok"] = (
        out["call_p50_ratio"] <= 1.3
        and out["throughput_ratio"] >= 0.7
        and out["stream_ratio"] >= 0.7
        and out["pick_median_us"] < 50
    )
    return out
