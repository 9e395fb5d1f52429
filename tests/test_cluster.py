"""Several `gleitzeit serve` nodes sharing one routing table through a real Redis
(redis-server on an ephemeral port), with real provider subprocesses and real
Socket.IO clients on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gleitzeit.config import parse_config
from gleitzeit.errors import InstancesDownError
from gleitzeit.host import Host
from gleitzeit.plugins import Plugins
from gleitzeit.socketio.client import Client
from gleitzeit.socketio.server import GleitzeitServer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cluster_support import (  # noqa: E402
    INSTALL,
    RedisServer,
    node_env,
    redis_server_binary,
    start_node,
)
from observe_support import wait_until  # noqa: E402

TOKEN = "cluster-token"
#: Short enough for the tests to be quick, long enough for a busy 2-core machine.
TIMING = "heartbeat: 0.5, ttl: 2.0"


def needs_redis() -> str:
    binary = redis_server_binary()
    if binary is None:
        message = f"the cluster tests need Debian's redis-server on PATH: {INSTALL}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(needs_redis(), tmp_path / "redis")
    server.start()
    yield server
    server.kill()


class Processes:
    """Provider and node subprocesses, killed at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.env = node_env(HERE, tmp_path, TOKEN)
        self.procs: list[subprocess.Popen] = []
        self.logs = 0

    def provider(self, target: str, url: str, *extra: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gleitzeit", "provider", "run", target, "--server", url, *extra],
            env=self.env,
            cwd=self.tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def node(self, redis_url: str, name: str, *extra: str) -> tuple[subprocess.Popen, str]:
        """A node in a process of its own, named ``name``, with the tests' timing."""
        config = self.tmp_path / f"{name}.yaml"
        config.write_text(
            f"server:\n  token_roles: [client, admin, provider]\n  cluster: {{node: {name}, {TIMING}}}\n"
        )
        # No in-process providers: what a node serves here comes from provider processes.
        env = {**self.env, "GLEITZEIT_CONFIG": str(config), "GLEITZEIT_PLUGINS": ""}
        proc, url = start_node(
            redis_url, env, self.tmp_path, *extra, log=self.tmp_path / f"{name}.log"
        )
        self.procs.append(proc)
        return proc, url

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@pytest.fixture
def procs(tmp_path):
    p = Processes(tmp_path)
    yield p
    p.close()


@pytest.fixture
async def nodes(redis_server):
    servers: list[GleitzeitServer] = []

    async def start(name: str, extra: str = "") -> GleitzeitServer:
        config = parse_config(
            f"server: {{token: {TOKEN}, token_roles: [client, admin, provider], redis: '{redis_server.url}', "
            f"cluster: {{node: {name}, {TIMING}}}{extra}}}\n"
            # A call lost by a bug fails the test within seconds instead of hanging it.
            "routing: {timeout: 20}\n"
        )
        host = Host(config, plugins=Plugins.load(config, installed=False))
        server = GleitzeitServer(host, bind="127.0.0.1", port=0)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop(grace=0)


def of(server: GleitzeitServer, name: str, transport: str | None = None) -> list:
    return [
        i
        for i in server.host.registry.instances(name)
        if transport is None or i.transport == transport
    ]


async def healthz(server_url: str) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server_url}/healthz", timeout=aiohttp.ClientTimeout(10)) as resp:
            return await resp.json()


async def test_a_provider_on_node_a_serves_a_client_of_node_b(nodes, procs):
    a = await nodes("node-a")
    b = await nodes("node-b")
    procs.provider("calculator", a.url)
    procs.provider("remote_providers:Ticker", a.url)
    await wait_until(
        lambda: of(b, "calculator", "cluster") and of(b, "ticker", "cluster"),
        "node b to mirror node a's providers",
    )
    async with Client(b.url, token=TOKEN) as client:
        listed = [p for p in await client.providers() if p["name"] == "calculator"]
        assert [(p["transport"], p["node"], p["node_transport"]) for p in listed] == [
            ("cluster", "node-a", "socketio")
        ]
        assert "calc/add" in listed[0]["method_schemas"]

        assert (await client.invoke("calc/add", {"a": 1, "b": 2}, provider="calculator"))[
            "result"
        ] == 3
        chunks = [c async for c in client.stream("llm/generate", {"n": 50}, provider="ticker")]
        assert "".join(c["token"] for c in chunks) == "".join(f"t{i} " for i in range(50))
        assert chunks[-1]["done"] is True

        # A stream longer than the window, read slowly: it arrives whole and in order.
        got = []
        async for chunk in client.stream("llm/generate", {"n": 300}, provider="ticker"):
            got.append(chunk)
            if len(got) % 50 == 0:
                await asyncio.sleep(0.05)
        assert "".join(c["token"] for c in got) == "".join(f"t{i} " for i in range(300))

        # The caller's errors come back as they were raised on node a.
        with pytest.raises(Exception, match="a"):
            await client.invoke("calc/add", {"a": "x"}, provider="calculator")

    assert (await healthz(b.url))["cluster"] == {"node": "node-b", "redis": "connected", "nodes": 2}
    (ticker,) = of(a, "ticker")
    await wait_until(lambda: ticker.in_flight == 0, "the streams to end on node a")
    assert all(i.in_flight == 0 for i in b.host.registry)


async def test_sigkill_of_a_node_mid_load_fails_its_calls_over_to_another_node(
    nodes, procs, redis_server
):
    b = await nodes("node-b")
    c = await nodes("node-c")
    node_a, a_url = procs.node(redis_server.url, "node-a")
    procs.provider("remote_providers:Worker", a_url)
    worker_c = procs.provider("remote_providers:Worker", c.url)
    await wait_until(
        lambda: len([i for i in of(b, "worker") if i.transport == "cluster"]) == 2,
        "node b to mirror the workers of nodes a and c",
    )
    (on_c,) = of(c, "worker", "socketio")

    async with Client(b.url, token=TOKEN) as client:
        done: list[int] = []

        async def one(i: int) -> dict:
            # Spread over 0.05-0.45 s, so that many are in flight on a when it dies.
            delay = 0.05 + (i % 20) * 0.02
            result = await client.invoke("work/do", {"id": i, "delay": delay}, provider="worker")
            done.append(i)
            return result

        calls = [asyncio.ensure_future(one(i)) for i in range(200)]
        await wait_until(lambda: len(done) >= 40, "the first calls to complete")
        (on_a,) = [i for i in of(b, "worker") if i.node == "node-a"]
        pending_on_a = on_a.in_flight
        node_a.send_signal(signal.SIGKILL)
        results = await asyncio.gather(*calls)

    assert sorted(r["result"] for r in results) == list(range(200))  # each once, none lost
    assert pending_on_a > 0  # calls were waiting on a when it died, and went to c
    assert worker_c.pid in {r["pid"] for r in results}
    await wait_until(lambda: not [i for i in of(b, "worker") if i.node == "node-a"], "a to leave")
    for server in (b, c):
        assert all(i.in_flight == 0 for i in server.host.registry), server.cluster.node
        assert server.clients.active == 0
        assert server.cluster.calls.pending == 0
        assert server.cluster.serving.active == 0
    assert on_c.in_flight == 0


async def test_redis_restart_keeps_local_calls_working_and_leaves_no_stale_instance(
    nodes, procs, redis_server
):
    a = await nodes("node-a")
    b = await nodes("node-b")
    procs.provider("remote_providers:Worker", a.url, "--name", "remote")
    doomed = procs.provider("remote_providers:Worker", a.url, "--name", "doomed")
    procs.provider("remote_providers:Worker", b.url, "--name", "local")
    await wait_until(
        lambda: of(b, "remote", "cluster") and of(b, "doomed", "cluster") and of(b, "local"),
        "node b to see every worker",
    )
    outcomes: list[tuple[str, str, bool]] = []  # (phase, provider, ok)
    phase = "before"

    async def light_load(client: Client) -> None:
        # One loop per provider: a call for the remote provider may wait for it
        # (routing.wait_for_instance) while the local one keeps being called.
        async def calls(name: str) -> None:
            i = 0
            while True:
                i += 1
                try:
                    await client.invoke("work/do", {"id": i, "delay": 0.0}, provider=name)
                    outcomes.append((phase, name, True))
                except Exception:
                    outcomes.append((phase, name, False))
                await asyncio.sleep(0.05)

        await asyncio.gather(calls("local"), calls("remote"))

    def ok(when: str, name: str) -> int:
        return sum(1 for p, n, good in outcomes if p == when and n == name and good)

    async with Client(b.url, token=TOKEN) as client:
        load = asyncio.ensure_future(light_load(client))
        try:
            await wait_until(lambda: ok("before", "remote") >= 3, "cross-node calls")
            redis_server.kill()
            await wait_until(lambda: not a.cluster.up and not b.cluster.up, "the nodes to notice")
            phase = "outage"
            assert (await healthz(b.url))["status"] == "degraded"
            assert not of(b, "remote")  # another node's instances cannot be reached now
            doomed.kill()
            await wait_until(lambda: not of(a, "doomed"), "node a to lose the doomed worker")
            await wait_until(lambda: ok("outage", "local") >= 5, "local calls during the outage")

            redis_server.start()
            await wait_until(lambda: a.cluster.up and b.cluster.up, "the nodes to rejoin")
            phase = "after"
            await wait_until(lambda: ok("after", "remote") >= 3, "cross-node calls to resume")
            assert (await healthz(b.url))["status"] == "ok"
            await asyncio.sleep(a.cluster.settings.ttl)  # one TTL: nothing stale may remain
            assert not of(b, "doomed")
            assert [i.node for i in of(b, "remote")] == ["node-a"]
        finally:
            load.cancel()
            await asyncio.gather(load, return_exceptions=True)


def run_cli(procs: Processes, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gleitzeit", *args],
        env=procs.env,
        cwd=procs.tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_two_node_processes_from_the_command_line(procs, redis_server):
    a, a_url = procs.node(redis_server.url, "node-a")
    b, b_url = procs.node(redis_server.url, "node-b")
    # each counts its own instances only (b already mirrors a's when it says so)
    assert "(1 local provider instance(s)" in a.serving_line  # the built-in echo
    assert "(1 local provider instance(s)" in b.serving_line
    procs.provider("calculator", a_url)

    deadline = 60.0
    listed = ""
    while "calculator" not in listed and deadline > 0:  # until b mirrors a's calculator
        listed = run_cli(procs, "providers", "list", "--server", b_url).stdout
        deadline -= 1
    assert "NODE" in listed.splitlines()[0]
    (row,) = [line for line in listed.splitlines() if "calculator" in line]
    assert row.split()[2:4] == ["cluster", "node-a"]

    done = run_cli(
        procs,
        "providers", "invoke", "calculator", "calc/add",
        "--args", '{"a": 1, "b": 2}', "--server", b_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == 3

    # A workflow run against node b: every task runs on a's calculator.
    example = Path(__file__).resolve().parent.parent / "examples" / "calculator.yaml"
    run = run_cli(procs, "run", str(example), "--input", "radius=2", "--server", b_url, "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["tasks"]["ratio"]["result"]["result"] == 1.0

    status = run_cli(procs, "serve", "status", "--redis", redis_server.url, "--json")
    assert status.returncode == 0, status.stderr
    rows = {r["node"]: r for r in json.loads(status.stdout)}
    assert set(rows) == {"node-a", "node-b"}
    assert rows["node-a"]["url"] == a_url
    assert [i["name"] for i in rows["node-a"]["instances"] if i["name"] == "calculator"] == [
        "calculator"
    ]
    table = run_cli(procs, "serve", "status", "--redis", redis_server.url).stdout
    # the table, one blank line, then one line per node with providers
    lines = table.splitlines()
    per_node = lines[lines.index("") + 1 :]
    assert "" not in per_node
    assert any(line.startswith("node-a: calculator") for line in per_node)
    assert table.splitlines()[0].split() == [
        "NODE",
        "URL",
        "INSTANCES",
        "IN-FLIGHT",
        "LAST",
        "SEEN",
    ]


def test_a_wrong_redis_password_stops_the_node_from_starting(procs, tmp_path):
    server = RedisServer(needs_redis(), tmp_path / "redis-pw", password="the-right-one")
    server.start()
    try:
        for url, says in (
            (server.url_with("not-the-password"), "wrong password"),
            (server.url_with(None), "requires a password"),
        ):
            with pytest.raises(RuntimeError) as info:
                procs.node(url, "node-x")
            message = str(info.value)
            assert says in message and "Redis at redis://" in message
            assert "not-the-password" not in message  # masked
        status = run_cli(procs, "serve", "status", "--redis", server.url_with("nope-nope"))
        assert status.returncode == 2 and "wrong password" in status.stderr
        assert "nope-nope" not in status.stderr
        # The right one joins; a second node of the same name does not.
        _, url = procs.node(server.url, "node-y")
        assert url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError, match="Another live node of the cluster is named"):
            procs.node(server.url, "node-y")
    finally:
        server.kill()


async def test_broadcasts_reach_the_clients_of_every_node(nodes):
    import socketio

    a = await nodes("node-a")
    b = await nodes("node-b")
    got: asyncio.Queue = asyncio.Queue()
    sio = socketio.AsyncClient()
    sio.on("notice", lambda data: got.put_nowait(data), namespace="/clients")
    await sio.connect(
        b.url, namespaces=["/clients"], auth={"token": TOKEN}, transports=["websocket"]
    )
    try:
        # python-socketio's Redis manager subscribes in the background: emit until heard.
        async def heard() -> dict:
            while True:
                await a.sio.emit("notice", {"from": "node-a"}, namespace="/clients")
                try:
                    return await asyncio.wait_for(got.get(), 0.5)
                except asyncio.TimeoutError:
                    continue

        assert await asyncio.wait_for(heard(), 30) == {"from": "node-a"}
    finally:
        await sio.disconnect()


def test_a_single_node_imports_nothing_of_the_cluster(tmp_path):
    code = (
        "import sys\n"
        "from gleitzeit.config import parse_config\n"
        "from gleitzeit.host import Host\n"
        "from gleitzeit.plugins import Plugins\n"
        "from gleitzeit.socketio.server import GleitzeitServer\n"
        "config = parse_config('server: {port: 0}')\n"
        "server = GleitzeitServer(Host(config, plugins=Plugins.load(config, installed=False)))\n"
        "assert server.cluster is None\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('gleitzeit.cluster'))\n"
        "print(loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['gleitzeit.cluster', 'gleitzeit.cluster.settings']"


def test_bad_redis_urls_are_refused_with_what_to_write(tmp_path):
    from gleitzeit.errors import ConfigError

    with pytest.raises(ConfigError, match="scheme 'http' is not one of redis, rediss, unix"):
        parse_config("server: {redis: 'http://127.0.0.1:6379'}")
    with pytest.raises(ConfigError, match="at least twice the heartbeat"):
        parse_config("server: {redis: 'redis://127.0.0.1:6379/0', cluster: {ttl: 1, heartbeat: 1}}")


async def test_a_cool_down_decided_on_one_node_rests_the_instance_on_every_node(nodes, procs):
    import time

    import gleitzeit

    a = await nodes("node-a")
    b = await nodes("node-b")
    procs.provider("remote_providers:Worker", a.url)
    await wait_until(lambda: of(b, "worker", "cluster"), "node b to mirror the worker")
    (own,) = of(a, "worker", "socketio")
    async with Client(b.url, token=TOKEN) as client:
        for _ in range(3):  # routing.failure_threshold: the third failure cools it down
            with pytest.raises(gleitzeit.ProviderError, match="unexpected"):
                await client.invoke("work/crash", provider="worker")
        await wait_until(lambda: own.cooldown_until > time.monotonic(), "node a to rest it too")
        with pytest.raises(InstancesDownError):
            await client.invoke("work/do", {"id": 1}, provider="worker")
    async with Client(a.url, token=TOKEN) as client:
        with pytest.raises(InstancesDownError):
            await client.invoke("work/do", {"id": 1}, provider="worker")


async def test_a_stream_from_a_node_that_dies_ends_with_an_error(nodes, procs, redis_server):
    import gleitzeit

    b = await nodes("node-b")
    node_a, a_url = procs.node(redis_server.url, "node-a")
    procs.provider("remote_providers:Ticker", a_url)
    await wait_until(lambda: of(b, "ticker", "cluster"), "node b to mirror the ticker")
    got = []
    async with Client(b.url, token=TOKEN) as client:
        with pytest.raises(gleitzeit.StreamError, match="node-a"):
            async for chunk in client.stream(
                "llm/generate", {"n": 100000, "delay": 0.005}, provider="ticker"
            ):
                got.append(chunk)
                if len(got) == 20:
                    node_a.send_signal(signal.SIGKILL)
    assert 20 <= len(got) < 100000
    await wait_until(lambda: not of(b, "ticker"), "node a to leave")
    assert all(i.in_flight == 0 for i in b.host.registry)
    assert b.cluster.calls.pending == 0


async def test_health_checks_run_on_the_owner_and_show_on_every_node(nodes, procs, tmp_path):
    a = await nodes("node-a")
    b = await nodes("node-b")
    procs.provider("remote_providers:Flaky", a.url)  # its working directory: tmp_path
    await wait_until(lambda: of(b, "flaky", "cluster"), "node b to mirror the instance")
    (own,) = of(a, "flaky", "socketio")
    (mirrored,) = of(b, "flaky", "cluster")

    def shown(inst) -> tuple:
        return (inst.health.status, inst.health.detail)

    # A check on the owner shows on the other node (published with the instance's state).
    (tmp_path / "SICK").touch()
    await a.host.check_health("flaky")
    assert shown(own) == ("unhealthy", "SICK flag present")
    await wait_until(lambda: shown(mirrored) == shown(own), "node b to show the owner's check")
    async with Client(b.url, token=TOKEN) as client:
        (row,) = [p for p in await client.providers() if p["name"] == "flaky"]
        assert (row["status"], row["health_detail"]) == ("unhealthy", "SICK flag present")

    # A check asked for on node b runs on the owner now, not from what was last published.
    (tmp_path / "SICK").unlink()
    async with Client(b.url, token=TOKEN) as client:
        (row,) = await client.health("flaky")
    assert (row["status"], row["detail"]) == ("healthy", "fine")
    assert shown(own) == ("healthy", "fine")  # the owner keeps (and publishes) it

    # Node b's scheduled rounds leave another node's instances to their owner.
    (tmp_path / "SICK").touch()
    await b.host.check_health(scheduled=True)
    assert shown(mirrored) == ("healthy", "fine")
    (row,) = await b.host.health("flaky")
    assert (row["status"], row["detail"]) == ("unhealthy", "SICK flag present")
