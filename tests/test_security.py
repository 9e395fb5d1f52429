"""Who may do what on `gleitzeit serve`: origins, role credentials, provider names."""

from __future__ import annotations

import logging
import subprocess
import sys

import aiohttp
import pytest
import socketio

from gleitzeit.config import parse_config
from gleitzeit.errors import ConfigError
from gleitzeit.host import Host
from gleitzeit.plugins import Plugins
from gleitzeit.socketio.client import Client
from gleitzeit.socketio.server import GleitzeitServer
from gleitzeit.tokens import mint

SECRET = "a-test-secret-that-is-long-enough-0123456789"
TOKEN = "static-shared-token"


@pytest.fixture
async def serve():
    servers: list[GleitzeitServer] = []

    async def start(server_yaml: str = "{}", *, bind: str = "127.0.0.1", **kw) -> GleitzeitServer:
        config = parse_config(f"server: {server_yaml}\n")
        server = GleitzeitServer(
            Host(config, plugins=Plugins.load(config, installed=False)), bind=bind, port=0, **kw
        )
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop(grace=0)


async def sio_connect(url: str, namespace: str, *, token=None, origin=None) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(
        url,
        namespaces=[namespace],
        auth={"token": token} if token is not None else None,
        headers={"Origin": origin} if origin else {},
        transports=["websocket"],
        wait_timeout=10,
    )
    return sio


async def http_get(url: str, path: str, **headers: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(url + path, headers=headers) as r:
        return r.status, await r.json()


# -- origins ---------------------------------------------------------------------------


async def test_cross_origin_socketio_is_refused_even_without_a_token(serve):
    server = await serve()  # no token: the default on loopback
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio_connect(server.url, "/clients", origin="https://evil.example")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio_connect(server.url, "/providers", origin="null")
    # The server's own pages (same origin) and non-browser callers (no Origin) connect.
    same = await sio_connect(server.url, "/clients", origin=server.url)
    await same.disconnect()
    plain = await sio_connect(server.url, "/clients")
    reply = await plain.call("providers", {}, namespace="/clients")
    assert reply["ok"] is True
    await plain.disconnect()


async def test_cross_origin_http_request_is_refused_before_the_handler(serve):
    server = await serve()
    status, body = await http_get(server.url, "/healthz", Origin="https://evil.example")
    assert status == 403 and body["error"]["code"] == "forbidden_origin"
    status, _ = await http_get(server.url, "/healthz", **{"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, body = await http_get(server.url, "/healthz", Origin=server.url)
    assert status == 200 and body["status"] == "ok"
    assert (await http_get(server.url, "/healthz"))[0] == 200


async def test_dns_rebinding_host_is_not_same_origin_on_an_open_server(serve):
    server = await serve()
    origin = f"http://rebound.example:{server.port}"
    status, _ = await http_get(
        server.url, "/healthz", Origin=origin, Host=f"rebound.example:{server.port}"
    )
    assert status == 403


async def test_allowed_origins_are_honoured(serve):
    server = await serve(f"{{token: {TOKEN}, allowed_origins: ['https://app.example']}}")
    sio = await sio_connect(server.url, "/clients", token=TOKEN, origin="https://app.example")
    await sio.disconnect()
    assert (await http_get(server.url, "/healthz", Origin="https://app.example"))[0] == 200
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio_connect(server.url, "/clients", token=TOKEN, origin="https://other.example")


async def test_a_new_route_uses_the_guard_for_role_checks(serve):
    from aiohttp import web

    config = parse_config(f"server: {{token: {TOKEN}, secret: '{SECRET}'}}\n")
    server = GleitzeitServer(
        Host(config, plugins=Plugins.load(config, installed=False)), bind="127.0.0.1", port=0
    )

    async def reports(request):
        return web.json_response({"up": 1})

    server.app.router.add_get("/reports", server.guard.protect(reports, role="admin"))
    await server.start()
    try:
        assert (await http_get(server.url, "/reports"))[0] == 401
        client = mint(SECRET, "client")
        assert (await http_get(server.url, "/reports", Authorization=f"Bearer {client}"))[0] == 403
        admin = mint(SECRET, "admin")
        status, body = await http_get(server.url, "/reports", Authorization=f"Bearer {admin}")
        assert status == 200 and body == {"up": 1}
        # The static token is client + admin by default.
        assert (await http_get(server.url, "/reports", Authorization=f"Bearer {TOKEN}"))[0] == 200
        evil = {"Authorization": f"Bearer {admin}", "Origin": "https://evil.example"}
        assert (await http_get(server.url, "/reports", **evil))[0] == 403
    finally:
        await server.stop(grace=0)


# -- credentials -----------------------------------------------------------------------

REG = {"name": "calculator", "kind": "tool", "methods": {"calc/add": {}}}


async def test_a_client_credential_cannot_register_a_provider(serve, caplog):
    server = await serve(f"{{token: {TOKEN}, secret: '{SECRET}'}}")
    for token in (TOKEN, mint(SECRET, "client"), mint(SECRET, "admin")):
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio_connect(server.url, "/providers", token=token)
    assert caplog.text.count("cannot connect as a provider") == 3
    assert not server.host.registry.instances("calculator")


async def test_a_provider_token_registers_only_its_own_names(serve, caplog):
    server = await serve(f"{{secret: '{SECRET}'}}")
    token = mint(SECRET, "provider", providers=["calculator"], ttl=60)
    sio = await sio_connect(server.url, "/providers", token=token)
    try:
        ack = await sio.call("register", {**REG, "name": "echo"}, namespace="/providers")
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
        assert "'echo'" in ack["error"]["message"]
        ack = await sio.call("register", REG, namespace="/providers")
        assert ack["ok"] is True
    finally:
        await sio.disconnect()
    # A provider token is no client credential.
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio_connect(server.url, "/clients", token=token)
    assert token not in caplog.text


async def test_static_token_registers_providers_only_when_configured(serve):
    server = await serve(f"{{token: {TOKEN}, token_roles: [client, provider]}}")
    sio = await sio_connect(server.url, "/providers", token=TOKEN)
    try:
        assert (await sio.call("register", REG, namespace="/providers"))["ok"] is True
    finally:
        await sio.disconnect()


async def test_expired_tampered_and_foreign_tokens_are_refused(serve, caplog):
    server = await serve(f"{{secret: '{SECRET}'}}")
    import jwt

    good = mint(SECRET, "client")
    head, body, sig = good.split(".")
    tampered = f"{head}.{body}x.{sig}"
    foreign = mint("another-secret-that-is-also-long-enough-xyz", "client")
    expired = jwt.encode(
        {"iss": "gleitzeit", "role": "client", "iat": 1, "exp": 2}, SECRET, algorithm="HS256"
    )
    for token, why in [
        (expired, "expired"),
        (tampered, "authentication failed"),
        (foreign, "signature"),
        ("\ud800bad", "ASCII"),
        ("", "no token"),
    ]:
        with caplog.at_level(logging.WARNING):
            with pytest.raises(Exception, match=why):
                async with Client(server.url, token=token or None):
                    pass
    assert "Traceback" not in caplog.text and "UnicodeEncodeError" not in caplog.text
    async with Client(server.url, token=good) as client:
        assert isinstance(await client.providers(), list)


def test_an_empty_secret_or_token_is_a_config_error(monkeypatch):
    with pytest.raises(ConfigError, match="empty"):
        parse_config("server: {secret: '  '}\n")
    with pytest.raises(ConfigError, match="empty"):
        parse_config("server: {token: ''}\n")
    monkeypatch.setenv("GLEITZEIT_TOKEN", "")
    with pytest.raises(ConfigError, match="GLEITZEIT_TOKEN"):
        config = parse_config("{}")
        GleitzeitServer(Host(config, plugins=Plugins.load(config, installed=False)))


async def test_public_bind_without_credentials_needs_insecure(serve, tmp_path):
    with pytest.raises(ConfigError, match="--insecure"):
        await serve(bind="0.0.0.0")
    server = await serve(bind="0.0.0.0", insecure=True)
    assert server.port
    out = subprocess.run(
        [sys.executable, "-m", "gleitzeit", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)},
        timeout=60,
    )
    assert out.returncode == 2 and "--insecure" in out.stderr


def test_token_command_mints_a_scoped_provider_token(run_cli):
    env = {"GLEITZEIT_SECRET": SECRET}
    made = run_cli(
        "token", "create", "--role", "provider", "--provider", "calculator", "--ttl", "30d", env=env
    )
    assert made.code == 0, made.err
    import jwt

    claims = jwt.decode(made.out.strip(), SECRET, algorithms=["HS256"], issuer="gleitzeit")
    assert claims["role"] == "provider" and claims["providers"] == ["calculator"]
    assert 29 * 86400 < claims["exp"] - claims["iat"] <= 30 * 86400
    client = run_cli("token", "create", "--role", "client", env=env)
    assert (
        client.code == 0
        and jwt.decode(client.out.strip(), SECRET, algorithms=["HS256"], issuer="gleitzeit")["role"]
        == "client"
    )
    nosecret = run_cli("token", "create", "--role", "client", env={})
    assert nosecret.code != 0 and "secret" in nosecret.err
