"""Helpers for testing code that uses Gleitzeit, and plugins for it.

* :func:`host` — a started :class:`gleitzeit.Host` with the plugins and providers you give.
* :func:`registered_plugin` — register a plugin object for the duration of a block: every
  host loaded meanwhile (the CLI's too, in this process) sees it.
* :func:`local_server` — a ``gleitzeit serve`` on an ephemeral 127.0.0.1 port.
* :func:`serve_provider` — run a provider object as a remote provider of a server.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from pydantic import SecretStr

from gleitzeit.config import Config, parse_config
from gleitzeit.tokens import mint

_registered: list[tuple[str, Any]] = []


def registered_plugins() -> list[tuple[str, Any]]:
    """The ``(name, plugin)`` pairs :func:`registered_plugin` holds now; every plugin
    load in this process adds them."""
    return list(_registered)


@contextmanager
def registered_plugin(plugin: Any, name: str | None = None) -> Iterator[str]:
    """Register ``plugin`` (a module or object with hook implementations) until the
    block ends. Yields the name it is registered under."""
    entry = (name or getattr(plugin, "__name__", None) or type(plugin).__name__, plugin)
    _registered.append(entry)
    try:
        yield entry[0]
    finally:
        _registered.remove(entry)


def _config(config: Config | str | None) -> Config:
    if isinstance(config, Config):
        return config
    return parse_config(config or "{}")


@asynccontextmanager
async def host(
    *plugins: Any,
    providers: list[Any] | None = None,
    config: Config | str | None = None,
    installed: bool = False,
) -> AsyncIterator[Any]:
    """A started host with the built-in plugins, the given plugin objects, the given
    provider objects, and (with ``installed=True``) the installed plugins."""
    from gleitzeit.host import Host
    from gleitzeit.plugins import Plugins

    cfg = _config(config)
    extra = [(getattr(p, "__name__", None) or f"plugin{i}", p) for i, p in enumerate(plugins)]
    loaded = Plugins.load(cfg, installed=installed, extra=extra, strict=True)
    h = Host(cfg, plugins=loaded, providers=list(providers or []))
    async with h:
        yield h


@asynccontextmanager
async def local_server(
    *plugins: Any, config: Config | str | None = None, token: str | None = None
) -> AsyncIterator[Any]:
    """A served host on 127.0.0.1 with a random port, a random client token
    (``server.token``) and signing secret; :func:`provider_token` mints a provider
    credential for it (:func:`serve_provider` does so by itself)."""
    from gleitzeit.host import Host
    from gleitzeit.plugins import Plugins
    from gleitzeit.socketio.server import GleitzeitServer

    cfg = _config(config)
    cfg.server.token = SecretStr(token or secrets.token_urlsafe(16))
    secret = cfg.server.resolved_secret() or secrets.token_urlsafe(32)
    cfg.server.secret = SecretStr(secret)
    extra = [(getattr(p, "__name__", None) or f"plugin{i}", p) for i, p in enumerate(plugins)]
    server = GleitzeitServer(
        Host(cfg, plugins=Plugins.load(cfg, installed=False, extra=extra)), bind="127.0.0.1", port=0
    )
    await server.start()
    assert server.token is not None
    _TOKENS[server.url] = mint(secret, "provider", providers=["*"], ttl=86400)
    try:
        yield server
    finally:
        _TOKENS.pop(server.url, None)
        await server.stop(grace=0)


@asynccontextmanager
async def serve_provider(
    provider: Any, url: str, *, token: str | None = None
) -> AsyncIterator[Any]:
    """Run ``provider`` as a remote provider of the server at ``url`` until the block
    ends; returns once it is registered."""
    import asyncio

    from gleitzeit.socketio.runner import ProviderRunner

    if token is None:  # a local_server() of this process: a provider token for it
        token = _token_for(url)
    runner = ProviderRunner(provider, url, token=token)
    task = asyncio.ensure_future(runner.run())
    try:
        done, _ = await asyncio.wait(
            {task, asyncio.ensure_future(runner.registered.wait())},
            timeout=30,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if task in done:
            task.result()  # raises why it stopped
        if not runner.registered.is_set():
            raise TimeoutError(f"{provider.name} did not register with {url} within 30s")
        yield runner
    finally:
        runner.stop()
        await asyncio.gather(task, return_exceptions=True)


_TOKENS: dict[str, str] = {}


def _token_for(url: str) -> str | None:
    return _TOKENS.get(url)


def provider_token(url: str) -> str:
    """A provider credential (any provider name) for the :func:`local_server` at
    ``url``."""
    token = _TOKENS.get(url)
    if token is None:
        raise KeyError(f"no local_server() of this process serves {url}")
    return token
