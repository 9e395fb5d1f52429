"""The test kit itself: helpers and fixtures that plugin authors use."""

from __future__ import annotations

import subprocess
import sys

import gleitzeit
from gleitzeit.plugins import Plugins
from gleitzeit.socketio.client import Client
from gleitzeit.testing import host, local_server, registered_plugin, serve_provider

pytest_plugins = ["gleitzeit.testing.fixtures"]


class Hello(gleitzeit.Provider):
    name = "hello"
    kind = "tool"

    @gleitzeit.method("hello/say")
    async def say(self, params):
        """Say hello."""
        return {"result": "hello"}


class HelloPlugin:
    @gleitzeit.hookimpl
    def gleitzeit_register_providers(self, register):
        register(Hello)


def test_registered_plugin_is_seen_only_inside_the_block():
    with registered_plugin(HelloPlugin(), "hello-plugin"):
        assert "hello" in Plugins.load(installed=False).provider_types
    assert "hello" not in Plugins.load(installed=False).provider_types


async def test_host_helper_with_plugin_objects():
    async with host(HelloPlugin()) as h:
        assert (await h.invoke("hello/say"))["result"] == "hello"


async def test_local_server_and_serve_provider():
    async with local_server() as server, serve_provider(Hello(), server.url):
        async with Client(server.url, token=server.token) as client:
            assert (await client.invoke("hello/say"))["result"] == "hello"


def test_gleitzeit_plugin_fixture(gleitzeit_plugin):
    gleitzeit_plugin(HelloPlugin(), "fixture-hello")
    assert "hello" in Plugins.load(installed=False).provider_types


def test_gleitzeit_server_fixture_serves_subprocesses(gleitzeit_server, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gleitzeit",
            "providers",
            "invoke",
            "echo",
            "llm/generate",
            "--args",
            '{"prompt": "via the fixture"}',
            "--server",
            gleitzeit_server.url,
            "--token",
            gleitzeit_server.token,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "via the fixture\n"


async def test_gleitzeit_host_fixture(gleitzeit_host):
    async with gleitzeit_host(HelloPlugin()) as h:
        assert (await h.invoke("hello/say", provider="hello"))["result"] == "hello"
