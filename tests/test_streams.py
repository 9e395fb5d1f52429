"""Bounded streams: flow control holds a provider when a client stops reading, the
server's memory stays bounded, and cancel / disconnect end the stream at the provider.
The server runs in its own process, so its RSS is measured alone."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import socketio

from gleitzeit.socketio.client import Client
from gleitzeit.tokens import mint

HERE = Path(__file__).resolve().parent
TOKEN = "stream-test-token"
SECRET = "stream-test-secret-0123456789-abcdefghij"
STALL = 3.0
#: Stated bound: a stalled 100 MB stream may grow the server by at most this much
#: (window 32 x 100 kB per hop, plus engine and allocator overhead).
RSS_BOUND_MB = 20


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def served(tmp_path):
    (tmp_path / "gleitzeit.yaml").write_text(
        f"server: {{token: {TOKEN}, stream_stall_timeout: {STALL}}}\nautoload_plugins: false\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
    env.update(PYTHONPATH=str(HERE), XDG_CONFIG_HOME=str(tmp_path / "xdg"), GLEITZEIT_SECRET=SECRET)
    procs: list[subprocess.Popen] = []
    server = subprocess.Popen(
        [sys.executable, "-m", "gleitzeit", "serve", "--port", "0"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(server)
    line = server.stdout.readline()
    assert "serving on" in line, server.stderr.read()
    url = line.split(" on ")[1].split(" ")[0]
    provider = subprocess.Popen(
        [sys.executable, "-m", "gleitzeit", "provider", "run", "remote_providers:Bulk"]
        + ["--server", url],
        env={**env, "GLEITZEIT_TOKEN": mint(SECRET, "provider", providers=["bulk"])},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    procs.append(provider)
    assert "registered" in provider.stdout.readline()
    yield server, url
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def bulk_in_flight(url: str) -> int:
    async with Client(url, token=TOKEN) as client:
        rows = [p for p in await client.providers() if p["name"] == "bulk"]
        return sum(p["in_flight"] for p in rows)


async def wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while not await predicate():
        if loop.time() > until:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_client_that_stops_reading_a_100mb_stream_holds_the_server_bounded(served):
    server, url = served
    async with Client(url, token=TOKEN) as client:  # warm up: one small stream read fully
        assert [c async for c in client.stream("llm/bulk", {"n": 3, "size": 10})][-1]["done"]
    start = rss_mb(server.pid)

    raw = socketio.AsyncClient(reconnection=False)
    got: list[int] = []
    failed = asyncio.Event()
    error: dict = {}
    raw.on("stream:data", lambda d: got.append(1), namespace="/clients")

    def on_error(data):
        error.update(data["error"])
        failed.set()

    raw.on("stream:error", on_error, namespace="/clients")
    await raw.connect(url, namespaces=["/clients"], auth={"token": TOKEN}, transports=["websocket"])
    ack = await raw.call(
        "stream:start",
        {"stream_id": "big", "method": "llm/bulk", "params": {"n": 1000}, "window": 32},
        namespace="/clients",
    )
    assert ack["ok"] is True
    peak = start
    while not failed.is_set():  # never grants credit: a reader that stopped
        peak = max(peak, rss_mb(server.pid))
        try:
            await asyncio.wait_for(failed.wait(), 0.05)
        except asyncio.TimeoutError:
            pass
    assert error["code"] == "stream_stalled"
    assert len(got) == 32  # the window, and not a chunk more
    await wait_for(lambda: _zero(url), "the provider to be cancelled")
    await raw.disconnect()
    after = rss_mb(server.pid)
    print(f"\nRSS: start {start:.1f} MB, peak {peak:.1f} MB, after {after:.1f} MB")
    assert peak - start < RSS_BOUND_MB
    assert after - start < RSS_BOUND_MB


async def _zero(url: str) -> bool:
    return await bulk_in_flight(url) == 0


async def test_disconnect_and_cancel_end_the_stream_at_the_provider(served):
    _server, url = served
    async with Client(url, token=TOKEN) as client:
        stream = client.stream("llm/bulk", {"n": 100_000, "size": 10})
        async for _ in stream:
            break
        await stream.aclose()  # stream:cancel, acknowledged
    await wait_for(lambda: _zero(url), "cancel to reach the provider")

    raw = socketio.AsyncClient(reconnection=False)
    await raw.connect(url, namespaces=["/clients"], auth={"token": TOKEN}, transports=["websocket"])
    start = {"stream_id": "s", "method": "llm/bulk", "params": {"n": 100_000, "size": 10}}
    assert (await raw.call("stream:start", start, namespace="/clients"))["ok"] is True
    again = await raw.call("stream:start", start, namespace="/clients")
    assert again["ok"] is False and "already in use" in again["error"]["message"]
    cancel = await raw.call("stream:cancel", {"stream_id": "s"}, namespace="/clients")
    assert cancel == {"ok": True, "cancelled": True}
    await wait_for(lambda: _zero(url), "the acknowledged cancel to reach the provider")
    assert (await raw.call("stream:start", start, namespace="/clients"))["ok"] is True
    await wait_for(lambda: _one(url), "the stream to run")
    await raw.disconnect()  # mid-stream
    await wait_for(lambda: _zero(url), "the disconnect to cancel at the provider")


async def _one(url: str) -> bool:
    return await bulk_in_flight(url) == 1
