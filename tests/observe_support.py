"""Helpers shared by the observability tests: a real server on an ephemeral port,
provider subprocesses, and /metrics read back with prometheus_client's parser."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from gleitzeit.config import parse_config
from gleitzeit.host import Host
from gleitzeit.plugins import Plugins
from gleitzeit.socketio.server import GleitzeitServer

HERE = Path(__file__).resolve().parent
TOKEN = "obs-s3cret-token"


async def wait_until(predicate: Any, what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def start_server(
    tmp_path: Path, extra: str = "", providers: list | None = None
) -> GleitzeitServer:
    config = parse_config(
        f"server: {{token: {TOKEN}, token_roles: [client, admin, provider]}}\nworkflows: {{database: {tmp_path / 'runs.sqlite'}}}\n{extra}"
    )
    host = Host(config, plugins=Plugins.load(config, installed=False), providers=providers)
    server = GleitzeitServer(host, bind="127.0.0.1", port=0)
    await server.start()
    return server


def provider_process(
    target: str, url: str, tmp_path: Path, *extra: str, stderr: Any = subprocess.DEVNULL
) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
    env.update(
        PYTHONPATH=str(HERE),
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        GLEITZEIT_PLUGINS="",
        GLEITZEIT_TOKEN=TOKEN,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "gleitzeit", "provider", "run", target, "--server", url, *extra],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


def remote(server: GleitzeitServer, name: str) -> list:
    return [i for i in server.host.registry.instances(name) if i.transport == "socketio"]


async def scrape(url: str, token: str | None = TOKEN) -> dict[str, Any]:
    """``/metrics`` parsed: family name -> list of (labels, value) per sample name."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/metrics", headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            text = await resp.text()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((dict(s.labels), s.value))
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(
        v for got, v in samples.get(name, []) if all(got.get(k) == x for k, x in labels.items())
    )
