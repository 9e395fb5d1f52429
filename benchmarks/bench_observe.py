"""What seeing inside a server costs: remote calls at 10 in flight with metrics and
JSON request logs on against off (the same server, rounds interleaved), and the
dashboard's pushes and CPU with 300 connected providers while idle.

    python3 benchmarks/run.py observe
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

NAME = "observe"
TARGET = (
    "10-in-flight remote throughput with metrics+logs >= 0.9x without; dashboard with 300 "
    "providers: <= 4 pushes/s per browser and <= 5% of a core idle (with vs without a page)"
)
HERE = Path(__file__).resolve().parent
ROUNDS = 11
CALLS = 1500
PROVIDERS = 300
IDLE_SECONDS = 10.0


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    env["GLEITZEIT_PLUGINS"] = ""
    return env


async def _server(tmp: Path, extra: str = ""):
    from gleitzeit.config import parse_config
    from gleitzeit.host import Host
    from gleitzeit.plugins import Plugins
    from gleitzeit.socketio.server import GleitzeitServer

    config = parse_config(
        f"routing: {{timeout: 60}}\nworkflows: {{database: {tmp / 'runs.sqlite'}}}\n{extra}"
    )
    host = Host(config, plugins=Plugins.load(config, installed=False))
    server = GleitzeitServer(host, bind="127.0.0.1", port=0)
    await server.start()
    return server


async def _throughput(tmp: Path) -> dict:
    from gleitzeit.logs import setup_logging

    # JSON request logs at INFO, formatted and written for real (to a file).
    log_file = open(tmp / "server.log", "w")  # noqa: SIM115 - closed below
    setup_logging("json", "INFO", stream=log_file)
    server = await _server(tmp)
    host = server.host
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
    dispatcher = host.dispatcher
    observing = list(dispatcher.listeners)
    sio = server.sio
    counting = (sio.__dict__["_trigger_event"], sio.__dict__["emit"])

    def observe(on: bool) -> None:
        if on:
            dispatcher.listeners[:] = observing
            sio._trigger_event, sio.emit = counting
        else:
            dispatcher.listeners.clear()
            del sio._trigger_event, sio.emit  # the library's own methods again

    async def call() -> None:
        await host.invoke("bench/echo", {"x": 1}, provider="bench")

    async def rate() -> float:
        async def worker(n: int) -> None:
            for _ in range(n):
                await call()

        t = time.perf_counter()
        await asyncio.gather(*(worker(CALLS // 10) for _ in range(10)))
        return CALLS / (time.perf_counter() - t)

    try:
        for _ in range(300):
            await call()
        on, off = [], []
        for _ in range(ROUNDS):  # A B A B
            observe(False)
            off.append(await rate())
            observe(True)
            on.append(await rate())
    finally:
        observe(True)
        peer.terminate()
        await asyncio.to_thread(peer.wait, 30)
        await server.stop(grace=0)
        logging.getLogger().handlers.clear()
        logging.getLogger("gleitzeit").setLevel(
            logging.NOTSET
        )  # the next benchmark's host logs nothing
        log_file.close()
    with open(tmp / "server.log") as written:
        lines = sum(1 for _ in written)
    return {"on": on, "off": off, "log_lines": lines}


async def _dashboard(tmp: Path) -> dict:
    import socketio

    server = await _server(tmp, "server: {heartbeat_interval: 5}\n")
    peer = subprocess.Popen(
        [sys.executable, str(HERE / "remote_peers.py"), "providers", server.url, str(PROVIDERS)],
        env=_env(),
        cwd=HERE,
    )
    try:
        while len(server.host.registry) < PROVIDERS + 1:  # + the in-process echo
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # registrations settle

        def cpu() -> float:
            return time.process_time()

        # Idle without a page, then idle with one connected: the difference is the page's.
        t0, c0 = time.perf_counter(), cpu()
        await asyncio.sleep(IDLE_SECONDS)
        without = (cpu() - c0) / (time.perf_counter() - t0)

        page = socketio.AsyncClient(reconnection=False)
        deltas: list[float] = []
        page.on("delta", lambda data: deltas.append(time.perf_counter()), namespace="/dashboard")
        await page.connect(server.url, namespaces=["/dashboard"], transports=["websocket"])
        snap = await page.call("snapshot", {}, namespace="/dashboard", timeout=30)
        assert len(snap["result"]["instances"]) == PROVIDERS + 1
        t0, c0 = time.perf_counter(), cpu()
        await asyncio.sleep(IDLE_SECONDS)
        idle_with = (cpu() - c0) / (time.perf_counter() - t0)
        idle_pushes = len(deltas)

        # Busy: calls to every provider keep changing rows; pushes stay a few a second.
        deltas.clear()
        names = [f"p{i}" for i in range(PROVIDERS)]
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 5.0:
            await asyncio.gather(
                *(server.host.invoke("bench/echo", {"x": 1}, provider=n) for n in names[:50])
            )
            names = names[50:] + names[:50]
        busy_rate = len(deltas) / (time.perf_counter() - t0)
        await page.disconnect()
    finally:
        peer.terminate()
        await asyncio.to_thread(peer.wait, 30)
        await server.stop(grace=0)
    return {
        "idle_cpu_without_page": without,
        "idle_cpu_with_page": idle_with,
        "idle_pushes": idle_pushes,
        "busy_pushes_per_s": busy_rate,
    }


def run() -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        t = asyncio.run(_throughput(Path(tmp)))
    with tempfile.TemporaryDirectory() as tmp:
        d = asyncio.run(_dashboard(Path(tmp)))
    on, off = t["on"], t["off"]
    # Each round's pair ran back to back: their ratio cancels the machine's drift.
    ratio = statistics.median(a / b for a, b in zip(on, off, strict=True))
    page_cpu = d["idle_cpu_with_page"] - d["idle_cpu_without_page"]
    return {
        "calls_per_s_observed": round(statistics.median(on)),
        "calls_per_s_observed_range": [round(min(on)), round(max(on))],
        "calls_per_s_unobserved": round(statistics.median(off)),
        "calls_per_s_unobserved_range": [round(min(off)), round(max(off))],
        "log_lines_written": t["log_lines"],
        "ratio": round(ratio, 3),
        "ratio_range": [
            round(min(a / b for a, b in zip(on, off, strict=True)), 3),
            round(max(a / b for a, b in zip(on, off, strict=True)), 3),
        ],
        "dashboard_idle_cpu_of_a_core": round(page_cpu, 4),
        "server_idle_cpu_without_page": round(d["idle_cpu_without_page"], 4),
        "server_idle_cpu_with_page": round(d["idle_cpu_with_page"], 4),
        "dashboard_idle_pushes": d["idle_pushes"],
        "dashboard_busy_pushes_per_s": round(d["busy_pushes_per_s"], 2),
        "target_ok": ratio >= 0.9 and page_cpu <= 0.05 and d["busy_pushes_per_s"] <= 4,
    }
