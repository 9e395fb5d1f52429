"""The server: aiohttp + a python-socketio ``AsyncServer`` in front of a :class:`Host`.

The server owns its Socket.IO server, so it builds the ``/providers`` transport from it
and hands that to the host, and serves ``/clients`` with handlers that call the host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
from collections.abc import Callable
from typing import Any

from gleitzeit.errors import ConfigError
from gleitzeit.host import Host
from gleitzeit.http import attach_gateway
from gleitzeit.socketio.clients import ClientHandlers
from gleitzeit.socketio.guard import Guard
from gleitzeit.socketio.manager import Manager
from gleitzeit.socketio.origins import OriginPolicy
from gleitzeit.socketio.packets import Packet
from gleitzeit.socketio.transport import SocketIOTransport
from gleitzeit.tokens import Credentials, Principal

log = logging.getLogger("gleitzeit.server")


def is_loopback(address: str) -> bool:
    if address in ("localhost", ""):
        return address == "localhost"
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class GleitzeitServer:
    """Serve a host: remote providers on ``/providers``, callers on ``/clients``."""

    def __init__(
        self,
        host: Host,
        *,
        bind: str | None = None,
        port: int | None = None,
        insecure: bool | None = None,
    ) -> None:
        import socketio
        from aiohttp import web

        cfg = host.config.server
        self.host = host
        self.bind = bind if bind is not None else cfg.host
        self.port = cfg.port if port is None else port
        self.insecure = cfg.insecure if insecure is None else insecure
        self.token = cfg.resolved_token()
        credentials = Credentials(
            token=self.token, token_roles=cfg.token_roles, secret=cfg.resolved_secret()
        )
        #: Origin and credential checks for every route and namespace (docs/security.md).
        self.guard = Guard(
            credentials, OriginPolicy(cfg.allowed_origins, open_server=credentials.open)
        )
        from gleitzeit.cluster import cluster_for

        # None without server.redis
        self.cluster = cluster_for(host.config, host.registry, host.plugins.health_checks)
        # The engine's own limit drops the whole connection, so it sits well above ours:
        # a payload a little over the limit gets a clear error and the client stays.
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            max_http_buffer_size=self.engine_limit(cfg.max_payload_bytes),
            ping_interval=cfg.ping_interval,
            ping_timeout=cfg.ping_timeout,
            cors_allowed_origins=self.guard.origins.engineio_check,
            client_manager=Manager() if self.cluster is None else self.cluster.broadcasts(),
            serializer=Packet,
        )
        self.app = web.Application(middlewares=[self.guard.middleware()])
        self.sio.attach(self.app)
        self.app.router.add_get("/healthz", self._healthz)
        self.gateway = attach_gateway(self.app, host, guard=self.guard)
        self.clients = ClientHandlers(host, self.sio, self.authenticate, cfg)
        self.clients.attach()
        self.providers = SocketIOTransport(
            host.registry, sio=self.sio, authenticate=self.authenticate, config=cfg
        )
        host.add_transport(self.providers)
        if self.cluster is not None:
            host.add_transport(self.cluster)
        from gleitzeit.observe import attach_observability

        self.observability = attach_observability(
            self.app, self.sio, host, guard=self.guard, token=self.token
        )
        self._runner: Any = None
        self._stopped = asyncio.Event()

    @property
    def draining(self) -> bool:
        """True once the server stops taking new calls."""
        return self.clients.draining

    @staticmethod
    def engine_limit(max_payload_bytes: int) -> int:
        """The engine.io message limit: above it the connection is dropped unanswered,
        so it sits well above ``max_payload_bytes``, whose excess gets an answer."""
        return max_payload_bytes * 4 + 65536

    def authenticate(self, auth: Any, environ: dict[str, Any], *, who: str) -> Principal:
        """Origin and credential check of a Socket.IO connection as ``who`` (a role)."""
        return self.guard.connect(auth, environ, role=who)

    async def _healthz(self, request: Any) -> Any:
        from aiohttp import web

        body: dict[str, Any] = {
            "status": "draining" if self.draining else "ok",
            "instances": len(self.host.registry),
        }
        if self.cluster is not None:  # a node that lost Redis serves its own instances only
            body["cluster"] = self.cluster.health()
            if not self.cluster.up and not self.draining:
                body["status"] = "degraded"
        return web.json_response(body)

    @property
    def url(self) -> str:
        shown = self.bind if ":" not in self.bind else f"[{self.bind}]"
        return f"http://{shown}:{self.port}"

    def in_flight(self) -> int:
        return sum(i.in_flight for i in self.host.registry) + self.clients.active

    async def start(self) -> None:
        from aiohttp import web

        if not is_loopback(self.bind) and self.guard.credentials.open:
            if not self.insecure:
                raise ConfigError(
                    f"refusing to serve on {self.bind} without a token: anyone who can reach "
                    "it could register providers and call them",
                    hint="set server.secret / GLEITZEIT_SECRET or server.token / "
                    "GLEITZEIT_TOKEN, bind 127.0.0.1, or pass --insecure",
                )
            log.warning(
                "serving on %s without a token (--insecure): anyone who can reach it may "
                "register providers and call them",
                self.bind,
            )
        await self.host.start()
        for where, problem in self.host.plugin_errors.items():
            log.warning("%s: %s", where, problem)
        await self.host.check_health()  # so that what cannot serve is out of routing at once
        self.host.watch_health()
        # Open websockets (providers, clients) must not hold the shutdown for the
        # default minute: they reconnect when the server is back.
        try:
            self._runner = web.AppRunner(
                self.app, handle_signals=False, access_log=None, shutdown_timeout=1.0
            )
            site_kw: dict[str, Any] = {}
        except TypeError:  # aiohttp < 3.9 takes it on the site
            self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
            site_kw = {"shutdown_timeout": 1.0}
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port, **site_kw)
        try:
            await site.start()
        except OSError as exc:  # the port is taken, or the address is not this machine's
            await self._runner.cleanup()
            self._runner = None
            await self.host.stop()
            raise ConfigError(
                f"Cannot listen on {self.bind}:{self.port}: {exc.strerror or exc}",
                hint="choose another --port (or server.port), or stop what is using it",
            ) from None
        self.port = self._runner.addresses[0][1]
        if self.cluster is not None:
            self.cluster.advertised_url = self.url

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking work, let in-flight calls finish within ``grace``, tell providers,
        and close."""
        if self._runner is None:
            return
        self.clients.draining = True
        grace = self.host.config.server.shutdown_grace if grace is None else grace
        try:
            await asyncio.wait_for(self.clients.idle.wait(), grace)
        except asyncio.TimeoutError:
            pass
        if self.in_flight():
            log.warning("stopping with %d call(s) still in flight", self.in_flight())
        await self.host.stop()
        await self._runner.cleanup()
        self._runner = None
        self._stopped.set()

    async def serve_forever(self, ready: Callable[[GleitzeitServer], None] | None = None) -> None:
        """Run until SIGINT or SIGTERM, then stop gracefully."""
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # not on this platform
                pass
        if ready is not None:
            ready(self)
        await stop.wait()
        await self.stop()
