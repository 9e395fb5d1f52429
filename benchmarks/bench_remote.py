"""Remote calls the way users make them: `gleitzeit.Client` -> `gleitzeit serve` ->
a provider process (two hops), against a bare python-socketio relay between three
processes (two hops) and a bare `call()` from a server to its client (one hop), at 1,
10 and 100 calls in flight and streaming, rounds interleaved. For the two-hop systems
also the CPU each process (client, server, provider) spends per call at 100 in flight,
from /proc: steadier than times on a busy machine, and it says which hop costs what. Then what a server holds
for 300 connected providers (memory per connection, CPU while idle) against a bare
python-socketio server with the same connections; and picking among 1,000 instances.

    python3 benchmarks/run.py remote
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench_util import Check, quick, summary, with_checks
from remote_peers import CLIENTS, REQUEST
from remote_peers import PROVIDERS as PROVIDERS_NS

NAME = "remote"
TARGET = (
    "two-hop call p50 / raw two-hop relay <= 1.0; throughput at 100 in flight / raw "
    "two-hop >= 1.0; server memory per provider connection / raw server <= 1.5; idle CPU "
    "with 300 providers / raw <= 2; pick among 1,000 instances < 50 us"
)
HERE = Path(__file__).resolve().parent
SYSTEMS = ("raw_one_hop", "raw_two_hop", "gleitzeit")
LEVELS = (1, 10, 100)
PROVIDERS = 300


def _sizes() -> dict[str, int]:
    if quick():
        return {"rounds": 2, "calls": 300, "inflight_calls": 1000, "chunks": 3000, "idle": 5}
    return {"rounds": 5, "calls": 1000, "inflight_calls": 3000, "chunks": 10000, "idle": 10}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    env["GLEITZEIT_PLUGINS"] = ""
    return env


def _spawn(*args: str, stdin: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        env=_env(),
        cwd=HERE,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )


async def _first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
    if not line:
        raise RuntimeError(f"{proc.args} ended before it was ready")
    return line.strip()


async def _server(kind: str) -> tuple[subprocess.Popen[str], str]:
    """A server process (``relay``, ``rawserver`` or ``gserver``) and its URL."""
    proc = _spawn(str(HERE / "remote_peers.py"), kind, stdin=True)
    return proc, await _first_line(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()  # the servers end when stdin closes
    else:
        proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the three ways to make a call --------------------------------------------------------

Call = Callable[[], Awaitable[Any]]
Stream = Callable[[int], Awaitable[int]]


class _RawOneHop:
    """This process is the server; the provider process is its client."""

    async def start(self) -> tuple[Call, Stream]:
        import socketio
        from aiohttp import web

        sio = socketio.AsyncServer(async_mode="aiohttp")
        app = web.Application()
        sio.attach(app)
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        state: dict[str, Any] = {}

        @sio.on("ready", namespace=PROVIDERS_NS)
        async def on_ready(sid, data):
            if not ready.done():
                ready.set_result(sid)

        @sio.on("chunk", namespace=PROVIDERS_NS)
        def on_chunk(sid, data):
            state["n"] += 1

        @sio.on("end", namespace=PROVIDERS_NS)
        def on_end(sid, data):
            state["end"].set()

        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        port = self.runner.addresses[0][1]
        self.peer = _spawn(str(HERE / "remote_peers.py"), "raw", f"http://127.0.0.1:{port}")
        sid = await asyncio.wait_for(ready, 60)
        self.sio, self.sid = sio, sid

        request = {"method": REQUEST["method"], "params": REQUEST["params"]}

        async def call() -> Any:
            return await sio.call("invoke", request, to=sid, namespace=PROVIDERS_NS)

        async def stream(n: int) -> int:
            state["n"], state["end"] = 0, asyncio.Event()
            await sio.emit("stream", {"n": n}, to=sid, namespace=PROVIDERS_NS)
            await state["end"].wait()
            return int(state["n"])

        return call, stream

    async def stop(self) -> None:
        await self.sio.emit("bye", {}, to=self.sid, namespace=PROVIDERS_NS)
        await asyncio.to_thread(self.peer.wait, 30)
        await self.runner.cleanup()


class _RawTwoHop:
    """A bare client -> a bare relay process -> the provider process."""

    async def start(self) -> tuple[Call, Stream]:
        import socketio

        self.relay, url = await _server("relay")
        self.peer = _spawn(str(HERE / "remote_peers.py"), "raw", url)
        client = socketio.AsyncClient(reconnection=False)
        state: dict[str, Any] = {"n": 0, "end": asyncio.Event()}

        @client.on("chunk", namespace=CLIENTS)
        def on_chunk(data):
            state["n"] += 1

        @client.on("end", namespace=CLIENTS)
        def on_end(data):
            state["end"].set()

        await client.connect(url, namespaces=[CLIENTS], transports=["websocket"])
        self.client = client
        self.pids = {"server": self.relay.pid, "provider": self.peer.pid}
        while await client.call("invoke", REQUEST, namespace=CLIENTS, timeout=60) is None:
            await asyncio.sleep(0.05)  # until the provider has said it is ready

        async def call() -> Any:
            return await client.call("invoke", REQUEST, namespace=CLIENTS)

        async def stream(n: int) -> int:
            state["n"], state["end"] = 0, asyncio.Event()
            await client.emit("stream", {"n": n}, namespace=CLIENTS)
            await state["end"].wait()
            return int(state["n"])

        return call, stream

    async def stop(self) -> None:
        await self.client.emit("bye", {}, namespace=CLIENTS)
        await asyncio.to_thread(self.peer.wait, 30)
        await self.client.disconnect()
        _stop(self.relay)


class _Gleitzeit:
    """gleitzeit.Client -> a gleitzeit server process -> `gleitzeit provider run`."""

    async def start(self) -> tuple[Call, Stream]:
        import gleitzeit

        self.server, url = await _server("gserver")
        self.peer = _spawn(
            "-m", "gleitzeit", "provider", "run", "remote_peers:BenchProvider", "--server", url
        )
        client = gleitzeit.Client(url)
        await client.__aenter__()
        self.client = client
        self.pids = {"server": self.server.pid, "provider": self.peer.pid}
        while not any(p["name"] == "bench" for p in await client.providers()):
            await asyncio.sleep(0.05)

        async def call() -> Any:
            return await client.invoke(
                REQUEST["method"], REQUEST["params"], provider=REQUEST["provider"]
            )

        async def stream(n: int) -> int:
            count = 0
            async for _ in client.stream("bench/stream", {"n": n}, provider="bench"):
                count += 1
            return count - 1  # the last chunk says done

        return call, stream

    async def stop(self) -> None:
        await self.client.__aexit__(None, None, None)
        self.peer.terminate()
        await asyncio.to_thread(self.peer.wait, 30)
        _stop(self.server)


async def _latency_p50(call: Call, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await call()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


async def _throughput(call: Call, inflight: int, n: int) -> float:
    async def worker(k: int) -> None:
        for _ in range(k):
            await call()

    t = time.perf_counter()
    await asyncio.gather(*(worker(n // inflight) for _ in range(inflight)))
    return (n // inflight * inflight) / (time.perf_counter() - t)


def _process_cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each peer process, and of this one (the client)."""
    cpu = {role: _cpu_seconds(pid) for role, pid in pids.items()}
    cpu["client"] = time.process_time()
    return cpu


async def _calls() -> dict[str, dict[str, list[float]]]:
    size = _sizes()
    systems = {"raw_one_hop": _RawOneHop(), "raw_two_hop": _RawTwoHop(), "gleitzeit": _Gleitzeit()}
    ways: dict[str, tuple[Call, Stream]] = {}
    got: dict[str, dict[str, list[float]]] = {s: {} for s in systems}
    try:
        for name, system in systems.items():
            ways[name] = await system.start()
            call, stream = ways[name]
            for _ in range(200):  # warm-up
                await call()
            await stream(500)
        for _ in range(size["rounds"]):  # each round: every system, every measure
            for name, (call, stream) in ways.items():
                g = got[name]
                g.setdefault("p50_ms_1", []).append(await _latency_p50(call, size["calls"]) * 1e3)
                for level in LEVELS:
                    calls = size["calls"] if level == 1 else size["inflight_calls"]
                    pids = getattr(systems[name], "pids", None)
                    before = _process_cpu(pids) if pids else {}
                    rate = await _throughput(call, level, calls)
                    g.setdefault(f"calls_per_s_{level}", []).append(rate)
                    if pids and level == LEVELS[-1]:  # where each hop's work shows
                        after = _process_cpu(pids)
                        for role, used in after.items():
                            per_call = (used - before[role]) / (calls // level * level) * 1e6
                            g.setdefault(f"cpu_us_per_call_{level}_{role}", []).append(per_call)
                t = time.perf_counter()
                chunks = await stream(size["chunks"])
                g.setdefault("chunks_per_s", []).append(chunks / (time.perf_counter() - t))
    finally:
        for name in ways:
            await systems[name].stop()
    return got


# -- what a server holds for many providers -------------------------------------------------


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _held(kind: str, idle: float) -> dict[str, float]:
    """A server (``rawserver`` or ``gserver``) with 300 providers connected: bytes of RSS
    per connection and the share of a core it uses while nothing is called."""
    server, url = await _server(kind)
    providers = None
    try:
        await asyncio.sleep(1.0)
        before = _rss(server.pid)
        providers = _spawn(str(HERE / "remote_peers.py"), "providers", url, str(PROVIDERS))
        await asyncio.wait_for(_first_line(providers), 300)
        await asyncio.sleep(2.0)  # registrations settle
        after = _rss(server.pid)
        c0, t0 = _cpu_seconds(server.pid), time.perf_counter()
        await asyncio.sleep(idle)
        cpu = (_cpu_seconds(server.pid) - c0) / (time.perf_counter() - t0)
    finally:
        if providers is not None:
            providers.terminate()
            await asyncio.to_thread(providers.wait, 30)
        _stop(server)
    return {"bytes_per_connection": (after - before) / PROVIDERS, "idle_cpu": cpu}


async def _holding() -> dict[str, dict[str, list[float]]]:
    idle = _sizes()["idle"]
    got: dict[str, dict[str, list[float]]] = {"raw": {}, "gleitzeit": {}}
    for _ in range(1 if quick() else 2):  # raw, gleitzeit, raw, gleitzeit
        for name, kind in (("raw", "rawserver"), ("gleitzeit", "gserver")):
            for key, value in (await _held(kind, idle)).items():
                got[name].setdefault(key, []).append(value)
    return got


def _pick_among_1000() -> float:
    from gleitzeit.config import Config
    from gleitzeit.host import Host
    from gleitzeit.instance import ProviderInstance
    from gleitzeit.methods import MethodDescription
    from gleitzeit.plugins import Plugins
    from gleitzeit.request import Request

    async def go() -> float:
        host = Host(Config(), plugins=Plugins.load(Config(), installed=False, builtins=True))
        await host.start()
        for i in range(1000):
            inst = ProviderInstance(
                name="llm", kind="llm", methods={"llm/x": MethodDescription()}, models=("m",)
            )
            inst.in_flight = i % 7
            host.registry.add(inst)
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

    return asyncio.run(go())


def _ratios(a: list[float], b: list[float]) -> list[float]:
    """Round by round: each pair ran close together, so the machine's drift cancels."""
    return summary([x / y for x, y in zip(a, b, strict=True)])


def run() -> dict:
    calls = asyncio.run(_calls())
    held = asyncio.run(_holding())
    pick = _pick_among_1000()
    out: dict[str, Any] = {}
    for name, values in calls.items():
        out[name] = {key: summary(v, 4) for key, v in values.items()}
    g, raw2, raw1 = calls["gleitzeit"], calls["raw_two_hop"], calls["raw_one_hop"]
    out["gleitzeit_over_raw_two_hop"] = {
        "p50_1": _ratios(g["p50_ms_1"], raw2["p50_ms_1"]),
        **{
            f"calls_per_s_{n}": _ratios(g[f"calls_per_s_{n}"], raw2[f"calls_per_s_{n}"])
            for n in LEVELS
        },
        "chunks_per_s": _ratios(g["chunks_per_s"], raw2["chunks_per_s"]),
        **{
            key: _ratios(g[key], raw2[key])
            for key in g
            if key.startswith("cpu_us_per_call_") and key in raw2
        },
    }
    out["gleitzeit_over_raw_one_hop"] = {
        "p50_1": _ratios(g["p50_ms_1"], raw1["p50_ms_1"]),
        "calls_per_s_100": _ratios(g["calls_per_s_100"], raw1["calls_per_s_100"]),
        "chunks_per_s": _ratios(g["chunks_per_s"], raw1["chunks_per_s"]),
    }
    for name, values in held.items():
        out[f"{name}_server_300_providers"] = {
            "kib_per_connection": summary([v / 1024 for v in values["bytes_per_connection"]], 1),
            "idle_cpu_of_a_core": summary(values["idle_cpu"], 4),
        }
    memory = _ratios(held["gleitzeit"]["bytes_per_connection"], held["raw"]["bytes_per_connection"])
    idle = _ratios(
        [max(v, 1e-4) for v in held["gleitzeit"]["idle_cpu"]],
        [max(v, 1e-4) for v in held["raw"]["idle_cpu"]],
    )
    out["pick_among_1000_us"] = round(pick, 2)
    ratios = out["gleitzeit_over_raw_two_hop"]
    checks = [
        Check.of("two-hop call p50, 1 in flight / raw two-hop", ratios["p50_1"], "<=", 1.0),
        Check.of("throughput at 100 in flight / raw two-hop", ratios["calls_per_s_100"], ">=", 1.0),
        Check.of("server memory per provider connection / raw", memory, "<=", 1.5),
        Check.of(f"server idle CPU with {PROVIDERS} providers / raw", idle, "<=", 2),
        Check("pick among 1,000 instances (us)", pick, "<", 50),
    ]
    return with_checks(out, checks)


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
