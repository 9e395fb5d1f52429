"""`gleitzeit serve` with remote providers: real server on an ephemeral port, real
provider subprocesses, real Socket.IO clients."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import gleitzeit
from gleitzeit.config import parse_config
from gleitzeit.errors import AuthRefused, ServerUnreachable
from gleitzeit.host import Host
from gleitzeit.plugins import Plugins
from gleitzeit.socketio.client import Client
from gleitzeit.socketio.server import GleitzeitServer
from gleitzeit.tokens import mint

HERE = Path(__file__).resolve().parent
TOKEN = "s3cret-token"
# Providers need a provider credential: a token signed with the server's secret.
SECRET = "test-secret-of-at-least-32-characters!"
PROVIDER_TOKEN = mint(SECRET, "provider", providers=["*"])


async def wait_until(predicate, what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Processes:
    def __init__(self, tmp_path: Path) -> None:
        self.procs: list[subprocess.Popen] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
        self.env.update(
            PYTHONPATH=str(HERE),
            XDG_CONFIG_HOME=str(tmp_path / "xdg"),
            GLEITZEIT_PLUGINS="calculator",
            GLEITZEIT_TOKEN=TOKEN,
        )
        self.cwd = tmp_path

    def provider(
        self, target: str, url: str, *extra: str, token: str | None = PROVIDER_TOKEN
    ) -> subprocess.Popen:
        env = dict(self.env)
        if token is None:
            env.pop("GLEITZEIT_TOKEN")
        else:
            env["GLEITZEIT_TOKEN"] = token
        proc = subprocess.Popen(
            [sys.executable, "-m", "gleitzeit", "provider", "run", target, "--server", url, *extra],
            env=env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

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
async def serve():
    servers: list[GleitzeitServer] = []

    async def start(server_settings: str = "", port: int = 0) -> GleitzeitServer:
        extra = f", {server_settings}" if server_settings else ""
        config = parse_config(f"server: {{token: {TOKEN}, secret: '{SECRET}'{extra}}}\n")
        host = Host(config, plugins=Plugins.load(config, installed=False))
        server = GleitzeitServer(host, bind="127.0.0.1", port=port)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop(grace=0)


def remote(server: GleitzeitServer, name: str) -> list:
    return [i for i in server.host.registry.instances(name) if i.transport == "socketio"]


async def test_register_list_invoke_stream_and_cancel(serve, procs):
    server = await serve()
    procs.provider("remote_providers:Worker", server.url)
    procs.provider("remote_providers:Ticker", server.url)
    await wait_until(lambda: remote(server, "worker") and remote(server, "ticker"), "registration")

    async with Client(server.url, token=TOKEN) as client:
        listed = {p["name"]: p for p in await client.providers()}
        assert listed["worker"]["transport"] == "socketio"
        assert listed["worker"]["method_schemas"]["work/do"]["params_schema"]["required"] == ["id"]
        assert listed["ticker"]["models"] == ["tick-1"]

        assert (await client.invoke("work/do", {"id": 7}))["result"] == 7
        with pytest.raises(gleitzeit.ToolError, match="always fails") as info:
            await client.invoke("work/fail", provider="worker")
        assert info.value.hint == "by design"
        with pytest.raises(gleitzeit.ProviderError, match="RuntimeError: unexpected"):
            await client.invoke("work/crash")
        with pytest.raises(gleitzeit.InvalidParamsError, match="id"):
            await client.invoke("work/do", {"idd": 1})

        chunks = [c async for c in client.stream("llm/generate", {"n": 4}, provider="ticker")]
        assert "".join(c["token"] for c in chunks) == "t0 t1 t2 t3 "
        assert [c["done"] for c in chunks] == [False] * 4 + [True]

        # Cancel: stop reading after two chunks of a long, slow stream.
        got = []
        stream = client.stream("llm/generate", {"n": 1000, "delay": 0.01}, provider="ticker")
        async for chunk in stream:
            got.append(chunk)
            if len(got) == 2:
                break
        await stream.aclose()
        (ticker,) = remote(server, "ticker")
        await wait_until(lambda: ticker.in_flight == 0, "the cancelled stream to end")
        health = await client.health("ticker")
        assert any(h["detail"].startswith("pid ") for h in health)


async def test_two_instances_share_load_and_survive_sigkill_of_one(serve, procs):
    server = await serve()
    a = procs.provider("remote_providers:Worker", server.url)
    procs.provider("remote_providers:Worker", server.url)
    await wait_until(lambda: len(remote(server, "worker")) == 2, "two instances")
    instances = remote(server, "worker")

    async with Client(server.url, token=TOKEN) as client:

        async def one(i: int) -> dict:
            # Long enough that no call on either instance ends before the kill.
            return await client.invoke("work/do", {"id": i, "delay": 0.3})

        tasks = [asyncio.ensure_future(one(i)) for i in range(200)]
        await wait_until(lambda: all(i.in_flight > 0 for i in instances), "load on both instances")
        victim = next(i for i in instances if i.sid)  # whichever; find it by its process below
        in_flight_at_kill = {i.id: i.in_flight for i in instances}
        a.send_signal(signal.SIGKILL)
        results = await asyncio.gather(*tasks)

    assert [r["result"] for r in results] == list(range(200))  # none lost, none mixed up
    assert a.pid not in {r["pid"] for r in results}  # what it held was retried on the survivor
    assert all(n > 0 for n in in_flight_at_kill.values())
    assert victim is not None
    survivors = remote(server, "worker")
    assert len(survivors) == 1
    assert all(i.in_flight == 0 for i in server.host.registry)
    assert all(i.in_flight == 0 for i in instances)


async def test_provider_reconnects_after_the_server_restarts(serve, procs, tmp_path):
    announce = tmp_path / "announce.txt"
    procs.env["ANNOUNCE_FILE"] = str(announce)
    server = await serve()
    port = server.port
    procs.provider("remote_providers:Announcer", server.url)
    await wait_until(lambda: remote(server, "announcer"), "registration")
    await server.stop(grace=0)

    again = await serve(port=port)
    await wait_until(lambda: remote(again, "announcer"), "re-registration", timeout=30)
    async with Client(again.url, token=TOKEN) as client:
        assert (await client.invoke("work/do", {"id": 3}))["result"] == 3
    await wait_until(lambda: announce.read_text().count("connected\n") >= 3, "the hooks")
    assert announce.read_text().splitlines()[:3] == ["connected", "disconnected", "connected"]


async def test_graceful_stop_lets_in_flight_calls_finish_and_refuses_new_ones(serve, procs):
    server = await serve()
    procs.provider("remote_providers:Worker", server.url)
    await wait_until(lambda: remote(server, "worker"), "registration")
    async with Client(server.url, token=TOKEN) as client:
        slow = asyncio.ensure_future(client.invoke("work/do", {"id": 1, "delay": 0.5}))
        await wait_until(lambda: server.in_flight() > 0, "the call to be in flight")
        stopping = asyncio.ensure_future(server.stop(grace=10))
        await wait_until(lambda: server.draining, "draining")
        with pytest.raises(gleitzeit.ProviderUnavailableError, match="shutting down"):
            await client.invoke("work/do", {"id": 2})
        assert (await slow)["result"] == 1
        await stopping


async def test_wrong_token_is_refused(serve, procs):
    server = await serve()
    with pytest.raises(AuthRefused, match="authentication failed"):
        async with Client(server.url, token="wrong"):
            pass
    with pytest.raises(AuthRefused):
        async with Client(server.url, token=None):
            pass
    proc = procs.provider("remote_providers:Worker", server.url, token="wrong")
    out, err = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 2
    assert "refused the provider: authentication failed" in err
    assert not remote(server, "worker")


async def test_oversized_payload_is_refused_and_others_keep_working(serve, procs):
    server = await serve("max_payload_bytes: 20000")
    procs.provider("remote_providers:Worker", server.url)
    await wait_until(lambda: remote(server, "worker"), "registration")
    async with Client(server.url, token=TOKEN) as big, Client(server.url, token=TOKEN) as small:
        busy = [asyncio.ensure_future(small.invoke("work/do", {"id": i})) for i in range(20)]
        with pytest.raises(gleitzeit.PayloadTooLargeError, match="the limit is 20,000"):
            await big.invoke("work/do", {"id": 1, "padding": "x" * 50_000})
        assert [r["result"] for r in await asyncio.gather(*busy)] == list(range(20))
        assert (await big.invoke("work/do", {"id": 2}))["result"] == 2  # still connected


async def test_malformed_payloads_get_validation_errors(serve):
    import socketio

    server = await serve()
    async with Client(server.url, token=TOKEN) as client:
        reply = await client._sio.call("invoke", {"method": 5, "params": []}, namespace="/clients")
        assert reply["ok"] is False
        assert reply["error"]["code"] == "invalid_message"
        assert "method" in reply["error"]["message"] and "params" in reply["error"]["message"]

    raw = socketio.AsyncClient(reconnection=False)
    await raw.connect(
        server.url,
        namespaces=["/providers"],
        auth={"token": PROVIDER_TOKEN},
        transports=["websocket"],
    )
    try:
        for bad, fragment in [
            ({"name": "bad name!", "kind": "tool", "methods": {"a/b": {}}}, "name"),
            ({"name": "ok", "kind": "robot", "methods": {"a/b": {}}}, "kind"),
            ({"name": "ok", "kind": "tool", "methods": {"nope": {}}}, "protocol/name"),
            ({"name": "ok", "kind": "tool", "methods": {}}, "at least one method"),
            ("not even a dict", "Input should be"),
        ]:
            ack = await raw.call("register", bad, namespace="/providers")
            assert ack["ok"] is False and fragment in ack["error"]["message"], (bad, ack)
        good = {"name": "raw", "kind": "tool", "methods": {"raw/ping": {}}}
        ack = await raw.call("register", good, namespace="/providers")
        assert ack["ok"] is True and ack["heartbeat_interval"] == 5.0
        assert remote(server, "raw")
    finally:
        await raw.disconnect()
    await wait_until(lambda: not remote(server, "raw"), "the raw provider to leave")


async def test_provider_that_dies_mid_stream_ends_the_stream_with_an_error(serve, procs):
    server = await serve()
    proc = procs.provider("remote_providers:Ticker", server.url)
    await wait_until(lambda: remote(server, "ticker"), "registration")
    async with Client(server.url, token=TOKEN) as client:
        got = []
        with pytest.raises(gleitzeit.StreamError, match="disconnected in the middle of the stream"):
            async for chunk in client.stream(
                "llm/generate", {"n": 1000, "delay": 0.01}, provider="ticker"
            ):
                got.append(chunk)
                if len(got) == 3:
                    proc.send_signal(signal.SIGKILL)
        assert 3 <= len(got) < 1000 and not any(c["done"] for c in got)
    assert all(i.in_flight == 0 for i in server.host.registry)


async def test_a_silent_instance_leaves_routing_and_comes_back(serve, procs):
    server = await serve("heartbeat_interval: 0.2, stale_after: 0.6")
    stopped = procs.provider("remote_providers:Worker", server.url)
    procs.provider("remote_providers:Worker", server.url)
    await wait_until(lambda: len(remote(server, "worker")) == 2, "two instances")
    frozen = next(i for i in remote(server, "worker") if i.sid)  # any one; identify by pid below
    async with Client(server.url, token=TOKEN) as client:
        pids = {
            (await client.invoke("work/do", {"id": i}, provider="worker"))["pid"] for i in range(6)
        }
        assert stopped.pid in pids
        stopped.send_signal(signal.SIGSTOP)
        try:
            await wait_until(
                lambda: any(i.stale for i in remote(server, "worker")),
                "the stopped instance to go stale",
            )
            stale = next(i for i in remote(server, "worker") if i.stale)
            assert "no heartbeat" in stale.health.detail
            results = [await client.invoke("work/do", {"id": i}) for i in range(6)]
            assert stopped.pid not in {r["pid"] for r in results}
        finally:
            stopped.send_signal(signal.SIGCONT)
        await wait_until(lambda: not any(i.stale for i in remote(server, "worker")), "recovery")
    assert frozen is not None


def test_cli_against_a_served_host(tmp_path, run_cli):
    env = {"GLEITZEIT_TOKEN": TOKEN, "GLEITZEIT_PLUGINS": "calculator", "PYTHONPATH": str(HERE)}
    base_env = {**{k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}, **env}
    base_env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    base_env["GLEITZEIT_SECRET"] = SECRET
    serve_proc = subprocess.Popen(
        [sys.executable, "-m", "gleitzeit", "serve", "--port", "0"],
        env=base_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    provider = None
    try:
        line = serve_proc.stdout.readline()
        assert "gleitzeit serving on http://127.0.0.1:" in line, serve_proc.stderr.read()
        url = line.split(" on ")[1].split(" ")[0]
        provider = subprocess.Popen(
            [sys.executable, "-m", "gleitzeit", "provider", "run", "calculator", "--server", url],
            env={**base_env, "GLEITZEIT_TOKEN": PROVIDER_TOKEN},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert "registered" in provider.stdout.readline()
        listed = run_cli("providers", "list", "--server", url, "--json", env=env).json()
        assert {p["transport"] for p in listed if p["name"] == "calculator"} == {
            "inprocess",
            "socketio",
        }
        added = run_cli(
            "providers",
            "invoke",
            "calculator",
            "calc/add",
            "--args",
            '{"a": 1, "b": 2}',
            "--server",
            url,
            "--json",
            env=env,
        )
        assert added.code == 0, added.err
        assert added.json()["result"] == 3
        streamed = run_cli(
            "providers",
            "invoke",
            "echo",
            "llm/chat",
            "--stream",
            "--server",
            url,
            "--args",
            '{"messages": [{"role": "user", "content": "over the wire"}]}',
            env=env,
        )
        assert streamed.out == "over the wire\n"
        health = run_cli("providers", "health", "calculator", "--server", url, env=env)
        assert health.code == 0 and "socketio" not in health.err
        refused = run_cli(
            "providers", "list", "--server", url, env={**env, "GLEITZEIT_TOKEN": "nope"}
        )
        assert refused.code == 2 and "authentication failed" in refused.err

        # SIGTERM: graceful stop, exit 0.
        serve_proc.send_signal(signal.SIGTERM)
        assert serve_proc.wait(30) == 0
    finally:
        for proc in (provider, serve_proc):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_protocol_doc_carries_the_current_schemas():
    from gleitzeit.socketio.wire import SCHEMAS_END, SCHEMAS_START, schemas_markdown

    text = (HERE.parent / "docs" / "protocol.md").read_text()
    start, end = text.index(SCHEMAS_START), text.index(SCHEMAS_END) + len(SCHEMAS_END)
    assert text[start:end] == schemas_markdown(), (
        "run: python -m gleitzeit.socketio.wire --write-docs"
    )


async def test_a_provider_written_with_bare_python_socketio_serves(serve, monkeypatch):
    """The protocol doc's Python example, as written, registers and serves."""
    import re

    import socketio

    text = (HERE.parent / "docs" / "protocol.md").read_text()
    example = re.search(
        r"The same in Python without Gleitzeit.*?```python\n(.*?)```", text, re.S
    ).group(1)
    server = await serve()
    code = example.replace('"http://127.0.0.1:8000"', repr(server.url)).replace(
        "asyncio.run(main())", ""
    )
    namespace: dict = {"__name__": "doc_example"}
    monkeypatch.setenv("GLEITZEIT_TOKEN", PROVIDER_TOKEN)
    try:
        exec(compile(code, "protocol.md", "exec"), namespace)
        task = asyncio.ensure_future(namespace["main"]())
        await wait_until(lambda: remote(server, "upper"), "the example to register")
        async with Client(server.url, token=TOKEN) as client:
            out = await client.invoke("text/upper", {"text": "hi"})
        assert out == {"result": "HI"}
    finally:
        sio = namespace.get("sio")
        if isinstance(sio, socketio.AsyncClient):
            await sio.disconnect()
        task.cancel()


async def test_public_bind_without_token_warns(caplog):
    from gleitzeit.socketio.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.10")
    config = parse_config("{}")
    server = GleitzeitServer(
        Host(config, plugins=Plugins.load(config, installed=False)),
        bind="0.0.0.0",
        port=0,
        insecure=True,
    )
    with caplog.at_level("WARNING", logger="gleitzeit.server"):
        await server.start()
        await server.stop(grace=0)
    assert any("without a token" in r.getMessage() for r in caplog.records)


async def test_provider_run_exits_when_the_restarted_server_refuses_it(serve, procs):
    # The server comes back with another secret: the provider's credential no longer
    # holds, and a refused reconnection ends `provider run` as a refused first connect.
    server = await serve()
    port = server.port
    proc = procs.provider("remote_providers:Worker", server.url)
    await wait_until(lambda: remote(server, "worker"), "registration")
    await server.stop(grace=0)

    config = parse_config(f"server: {{token: {TOKEN}, secret: '{'another-' + SECRET}'}}\n")
    again = GleitzeitServer(
        Host(config, plugins=Plugins.load(config, installed=False)), bind="127.0.0.1", port=port
    )
    await again.start()
    try:
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
    finally:
        await again.stop(grace=0)
    assert proc.returncode == 2
    assert "registered with" in out
    assert f"lost the connection to {server.url}; reconnecting" in err
    assert "refused the provider: authentication failed" in err
    assert not remote(again, "worker")
    assert "Unclosed" not in err


async def test_provider_run_says_when_its_connection_drops_and_is_back(serve, procs):
    server = await serve()
    port = server.port
    proc = procs.provider("remote_providers:Worker", server.url)
    await wait_until(lambda: remote(server, "worker"), "registration")
    await server.stop(grace=0)
    again = await serve(port=port)
    await wait_until(lambda: remote(again, "worker"), "re-registration", timeout=30)
    await asyncio.sleep(0.5)  # the announcement polls
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    assert err.count(f"lost the connection to {server.url}; reconnecting") == 1
    assert err.count(f"reconnected to {server.url}") == 1
    assert out.count("registered with") == 2


async def test_client_link_timeout_is_server_unreachable(serve, procs):
    server = await serve()
    procs.provider("remote_providers:Worker", server.url)
    await wait_until(lambda: remote(server, "worker"), "registration")
    async with Client(server.url, token=TOKEN) as client:
        # The link's own guard (well above the invocation timeout in invoke()).
        with pytest.raises(ServerUnreachable, match="invoke to .* TimeoutError"):
            await client._call(
                "invoke", {"method": "work/do", "params": {"id": 1, "delay": 2}}, 0.2
            )
        assert (await client.invoke("work/do", {"id": 2}))["result"] == 2


async def test_a_client_fails_calls_pending_on_a_lost_connection_and_connects_again(serve, procs):
    server = await serve()
    port = server.port
    procs.provider("remote_providers:Worker", server.url)
    await wait_until(lambda: remote(server, "worker"), "registration")
    async with Client(server.url, token=TOKEN) as client:
        assert (await client.invoke("work/do", {"id": 1}))["result"] == 1
        pending = asyncio.ensure_future(client.invoke("work/do", {"id": 2, "delay": 600}))
        await wait_until(lambda: server.in_flight() >= 1, "the call in flight")
        await server.stop(grace=0)
        # At once, not when the link's own timer (the call's timeout + 30 s) runs out.
        with pytest.raises(ServerUnreachable, match="Lost the connection") as lost:
            await asyncio.wait_for(pending, 30)
        assert "may or may not have run the call" in str(lost.value)
        again = await serve(port=port)
        procs.provider("remote_providers:Worker", again.url)
        await wait_until(lambda: remote(again, "worker"), "registration again")
        # The same client: its next call connects to the server that is there now.
        assert (await client.invoke("work/do", {"id": 3}))["result"] == 3
