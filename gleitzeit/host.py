"""The host: plugins, transports, registry and router put together.

Python API::

    async with gleitzeit.Host() as host:
        result = await host.invoke("calc/add", {"a": 5, "b": 3})
        async for chunk in host.stream("llm/chat", {"messages": [...]}):
            print(chunk["token"], end="")
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import AsyncGenerator, Coroutine
from typing import Any

from gleitzeit._dispatch import CallListener, Dispatcher
from gleitzeit._factory import build_providers
from gleitzeit._local import LocalInstance
from gleitzeit._registry import Registry
from gleitzeit._validation import suggest
from gleitzeit.aliases import METHOD_ALIASES
from gleitzeit.builtins.inprocess import InProcessTransport
from gleitzeit.config import Config, load_config
from gleitzeit.errors import ConfigError, GleitzeitError, InvalidParamsError, PluginError
from gleitzeit.files import FILE_KEYS, apply_file_inputs
from gleitzeit.health import health_row, run_checks
from gleitzeit.instance import ProviderInstance
from gleitzeit.plugins import STRICT_ENV, TRUTHY, Plugins
from gleitzeit.provider import Provider
from gleitzeit.request import CALL_CONTEXT, CALL_ID, Request
from gleitzeit.routing import Router
from gleitzeit.tools import wants_tool_loop
from gleitzeit.transport import Transport

log = logging.getLogger("gleitzeit.host")


class Host:
    """Routes requests to provider instances found through plugins."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        plugins: Plugins | None = None,
        providers: list[Provider] | None = None,
        transports: list[Transport] | None = None,
        lazy: bool = False,
    ) -> None:
        """``providers``: provider objects to serve in-process beside those the plugins
        and config define. ``transports``: transports built by their owner and handed
        in (``gleitzeit serve`` hands in its Socket.IO transport); they report their
        instances to :attr:`registry`. ``lazy``: start each local provider only when a
        request first needs it (the CLI does this, so calling the calculator does not
        start an LLM client)."""
        self.lazy = lazy
        self.config = config if config is not None else load_config()
        self._plugins = plugins
        self.registry = Registry()
        self.local = InProcessTransport(self.registry)
        self.transports: dict[str, Transport] = {self.local.name: self.local}
        self._handed_in = list(transports or [])
        self.router: Router | None = None
        self._dispatcher: Dispatcher | None = None
        self._extra_providers = list(providers or [])
        self._started = False
        # Local instances whose start has not been attempted (lazy hosts start them
        # on demand); empty once everything started, so requests skip the check.
        self._unstarted: list[LocalInstance] = []
        # (method, provider) of plain requests that no unstarted instance could take:
        # they go straight to routing while others are still unstarted (lazy hosts).
        # Emptied whenever an instance joins the unstarted.
        self._settled: set[tuple[str, str | None]] = set()
        self._health_task: asyncio.Task[None] | None = None
        self.plugin_errors: dict[str, str] = {}
        #: Told about every call (metrics, request logs): handed to the dispatcher
        #: when the host starts, so add them before.
        self.call_listeners: list[CallListener] = []

    @property
    def plugins(self) -> Plugins:
        if self._plugins is None:
            self._plugins = Plugins.load(self.config)
        return self._plugins

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Start transports and providers, then call the startup hooks."""
        if self._started:
            return
        plugins = self.plugins
        self.router = self._make_router()
        self._dispatcher = Dispatcher(
            self.registry, self.router, self.config.routing, self.config.models
        )
        self._dispatcher.listeners.extend(self.call_listeners)
        if logging.getLogger("gleitzeit.calls").isEnabledFor(logging.INFO):
            from gleitzeit.logs import RequestLog

            if not any(isinstance(x, RequestLog) for x in self.call_listeners):
                self._dispatcher.listeners.append(RequestLog())
        for name, cls in plugins.transports.items():
            if name not in self.transports:  # the in-process transport is the host's own
                self.transports[name] = cls(self.registry)
        for transport in self._handed_in:
            self.transports[transport.name] = transport
        for transport in self.transports.values():
            await transport.start()
        for built in build_providers(self.config, plugins, self.plugin_errors):
            try:
                inst = self.local.attach(built.provider, origin=built.origin)
            except GleitzeitError as exc:
                # One provider that cannot describe its methods stays out; the host
                # serves the others (strict mode below makes it an error).
                self.plugin_errors[built.provider.name] = f"{built.origin}: {exc}"
                log.warning("provider %s left out: %s", built.provider.name, exc)
                continue
            if built.held is not None:
                inst.hold(PluginError(built.held, hint="set the variable, then restart"))
            else:
                self._unstarted.append(inst)
        for provider in self._extra_providers:
            self._unstarted.append(self.local.attach(provider, origin="python"))
        self._settled.clear()
        self.registry.missing_hint = self._missing_plugins()
        if self.plugin_errors and os.environ.get(STRICT_ENV, "").strip().lower() in TRUTHY:
            raise PluginError(
                "Providers could not be set up (strict mode): "
                + "; ".join(f"{where}: {problem}" for where, problem in self.plugin_errors.items()),
                hint=f"fix gleitzeit.yaml, or unset {STRICT_ENV}",
            )
        if not self.lazy:
            await self.ensure_started()
        self._started = True
        await self._call_lifecycle("gleitzeit_startup")

    async def stop(self) -> None:
        """Call the shutdown hooks, then stop providers and transports."""
        if not self._started:
            return
        self._started = False
        if self._health_task is not None:
            self._health_task.cancel()
            try:
                await self._health_task
            except asyncio.CancelledError:
                pass
            self._health_task = None
        await self._call_lifecycle("gleitzeit_shutdown")
        for transport in reversed(list(self.transports.values())):
            try:
                await transport.stop()
            except Exception:
                log.warning("transport %s failed to stop", transport.name, exc_info=True)
        self.transports.clear()

    async def __aenter__(self) -> Host:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _call_lifecycle(self, hook: str) -> None:
        for rec, result in self.plugins.call_each(hook, host=self):
            if isinstance(result, PluginError):
                self.plugin_errors[rec.name] = str(result)
                log.warning("plugin %s: %s", rec.name, result)
                continue
            if inspect.isawaitable(result):
                try:
                    await result
                except Exception as exc:
                    self.plugin_errors[rec.name] = f"{hook}: {type(exc).__name__}: {exc}"
                    log.warning("plugin %s: %s failed: %s", rec.name, hook, exc)

    def _make_router(self) -> Router:
        name = self.config.routing.strategy
        routers = self.plugins.routers
        if name not in routers:
            near = suggest(name, list(routers))
            raise ConfigError(
                f"routing.strategy: unknown router {name!r}"
                + (f"; did you mean {near!r}?" if near else ""),
                hint=f"available routers: {', '.join(sorted(routers))}",
            )
        return routers[name](self.config.routing)

    def add_transport(self, transport: Transport) -> None:
        """Hand in a transport built by its owner (before :meth:`start`); it reports
        its instances to :attr:`registry`."""
        if self._started:
            raise PluginError(f"transport {transport.name!r} was handed in after the host started")
        self._handed_in.append(transport)

    def add_provider(self, provider: Provider) -> ProviderInstance:
        """Serve a provider object in-process; it starts with the next request that
        needs it (or :meth:`ensure_started`)."""
        inst = self.local.attach(provider, origin="python")
        self._unstarted.append(inst)
        self._settled.clear()
        return inst

    async def ensure_started(
        self, *, provider: str | None = None, method: str | None = None, model: str | None = None
    ) -> None:
        """Start the not-yet-started local instances a request could go to (all of them
        when nothing is named); concurrent requests share one start per instance."""
        pool = self._unstarted
        if provider is not None:
            pool = [i for i in pool if i.name == provider]
        elif method is not None:
            if "/" in method and not self.registry.serves(method):
                # Perhaps a method that a provider learns only when it starts.
                pool = [i for i in pool if i.dynamic_methods]
            else:
                pool = [i for i in pool if method in i.methods or "/" not in method]
            if model is None:  # do not start what could not take the request anyway
                pool = [i for i in pool if method not in i.model_required]
        if not pool:
            if method is not None and model is None:
                self._settled.add((method, provider))
            return
        timeout = self.config.health.startup_timeout
        await asyncio.gather(*(inst.ensure_started(timeout) for inst in pool))
        self._unstarted = [i for i in self._unstarted if not i.start_finished]

    # -- requests --------------------------------------------------------------------

    def _request(
        self,
        method: str,
        params: dict[str, Any] | None,
        provider: str | None,
        model: str | None,
        capability: str | None,
        timeout: float | None,
        call_id: str | None = None,
    ) -> Request:
        """Build the request at the edge: the model, given or in the parameters; the
        call id, given or the context's (an HTTP edge sets it from ``X-Request-ID``)."""
        if params is None:
            params = {}
        elif not isinstance(params, dict):
            raise InvalidParamsError(
                f"The parameters of {method} must be a dict (a JSON object), "
                f"not {type(params).__name__}",
                hint="pass params as a dict, e.g. {'a': 1}",
            )
        if model is not None and "model" not in params:
            params = {**params, "model": model}
        value = params.get("model")
        model = value if isinstance(value, str) else None
        request = Request(
            method, params, provider, model, capability, timeout, call_id or CALL_ID.get()
        )
        if method in METHOD_ALIASES:  # before file inputs, which attach to its messages
            Dispatcher._method_alias(request)
        return request

    async def _prepare(self, request: Request) -> None:
        """Start what the request needs, and fold in its file inputs. Most requests
        need neither: :meth:`invoke` and :meth:`stream` call this only when one does."""
        if not self._started:
            await self.start()
        if self._unstarted:
            await self.ensure_started(
                provider=request.provider, method=request.method, model=request.model
            )
        if self._unstarted and wants_tool_loop(request.params):
            # Its tools may be any method, called from inside the dispatcher.
            await self.ensure_started()
        if not FILE_KEYS.isdisjoint(request.params):
            resolved = self.registry.resolve_method(request.method, request.provider)
            request.params = apply_file_inputs(resolved, request.params, self.config.files)

    def _needs_preparing(self, request: Request) -> bool:
        if not self._started or not FILE_KEYS.isdisjoint(request.params):
            return True
        if not self._unstarted:
            return False
        return (
            request.model is not None
            or (request.method, request.provider) not in self._settled
            or wants_tool_loop(request.params)
        )

    def _missing_plugins(self) -> str | None:
        """Which installed plugins failed (and why) or are switched off (and where): a
        provider or method nobody offers may belong to one of them."""
        records = sorted(self.plugins.records.values(), key=lambda r: r.name)
        said = [f"plugin {r.name} failed: {r.error}" for r in records if r.status == "failed"]
        # Providers of loaded plugins that could not be built (their __init__ raised).
        said += [f"{where}: {problem}" for where, problem in self.plugin_errors.items()]
        off = [r.name for r in records if r.status == "disabled"]
        if off:
            only = os.environ.get("GLEITZEIT_PLUGINS")
            where = (
                f"GLEITZEIT_PLUGINS={only!r} leaves them out"
                if only is not None
                else f"switched off in {self.config.source or 'gleitzeit.yaml'}"
            )
            said.append(f"installed but disabled: {', '.join(off)} ({where})")
        return "; ".join(said) or None

    @property
    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            raise PluginError("the host is not started")
        return self._dispatcher

    def invoke(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        capability: str | None = None,
        timeout: float | None = None,
        call_id: str | None = None,
    ) -> Coroutine[Any, Any, dict[str, Any]]:
        """Route one request and return its result: ``await host.invoke(...)``.

        A retryable failure is retried on another instance (``routing.retries``
        times at most, within one deadline of ``timeout`` seconds); the last error is
        raised when none succeeds. ``call_id`` names the call in logs and errors (one
        is made when none is given). (Not a coroutine function itself: it returns the
        coroutine that runs the request, so a call costs no extra layer. Errors are
        raised when it is awaited, as from a coroutine function.)
        """
        try:
            dispatcher = self._dispatcher
            if (
                dispatcher is not None
                and self._started
                and (not self._unstarted or (method, provider) in self._settled)
                and type(params) is dict
                and model is None
                and method not in METHOD_ALIASES
                and _ROUTE_ONLY.isdisjoint(params)
            ):
                # The common case: nothing to start, no file to fold in, no alias, model
                # or tools to resolve; the request goes straight to routing.
                call_id = call_id or CALL_CONTEXT.get()[0]
                request = Request(method, params, provider, None, capability, timeout, call_id)
                return dispatcher.invoke_once(request)
            request = self._request(method, params, provider, model, capability, timeout, call_id)
            return self._prepared_invoke(request)
        except Exception as exc:
            return _raising(exc)

    async def _prepared_invoke(self, request: Request) -> dict[str, Any]:
        if self._needs_preparing(request):
            await self._prepare(request)
        return await self.dispatcher.invoke(request)

    async def stream(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        capability: str | None = None,
        chunk_timeout: float | None = None,
        call_id: str | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Route one request and yield its chunks; the last has ``done: true``.

        A stream that fails before its first chunk is retried on another instance;
        once chunks have been delivered, a failure ends the stream with the error.
        """
        request = self._request(method, params, provider, model, capability, chunk_timeout, call_id)
        if self._needs_preparing(request):
            await self._prepare(request)
        chunks = self.dispatcher.stream(request)
        try:
            async for chunk in chunks:
                yield chunk
        finally:  # a consumer that stops early ends the call now, not at garbage collection
            await chunks.aclose()

    # -- health ----------------------------------------------------------------------

    async def check_health(
        self, name: str | None = None, *, scheduled: bool = False
    ) -> list[ProviderInstance]:
        """Run the health checks now against every instance (or those named ``name``);
        ``scheduled``: a periodic round, which leaves out the instances checked
        elsewhere (another cluster node's, whose owner publishes its checks)."""
        if not self._started:
            await self.start()
        instances = self.registry.instances(name)
        if name is not None and not instances:
            self.registry.resolve_method("?", name)  # raises the unknown-provider error
        if scheduled:
            instances = [i for i in instances if not i.checked_elsewhere]
        if self.lazy:
            await self.ensure_started(provider=name)
        checks = self.plugins.health_checks
        timeout = self.config.health.timeout

        async def one(inst: ProviderInstance) -> None:
            inst.health = await run_checks(inst, checks, timeout)

        await asyncio.gather(*(one(i) for i in instances))
        return instances

    async def providers(self, *, check: bool = False) -> list[dict[str, Any]]:
        """Every instance, as ``providers list --json`` shows it (with method schemas);
        ``check`` runs the health checks first."""
        if check:
            await self.check_health()
        elif not self._started:
            await self.start()
        return [i.describe(schemas=True) for i in sorted(self.registry, key=lambda i: i.id)]

    async def health(self, name: str | None = None) -> list[dict[str, Any]]:
        """Run the health checks now; one row per instance (``providers health``)."""
        instances = await self.check_health(name)
        return [health_row(i) for i in sorted(instances, key=lambda i: i.id)]

    def watch_health(self) -> None:
        """Re-check health every ``health.interval`` seconds until the host stops."""
        if self._health_task is None:
            self._health_task = asyncio.ensure_future(self._health_loop())

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.health.interval)
            try:
                await self.check_health(scheduled=True)
            except Exception:
                log.warning("health checks failed", exc_info=True)


#: Parameters with which a request needs more than routing: a file to fold in, a model
#: (it may name an alias or targets), tools (a tool loop).
_ROUTE_ONLY = FILE_KEYS | Dispatcher.MORE_THAN_ROUTING


async def _raising(exc: Exception) -> Any:
    """A coroutine that raises ``exc`` when awaited."""
    raise exc
