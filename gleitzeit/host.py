"""The host: plugins, transports, registry and router put together.

Python API::

    async with gleitzeit.Host() as host:
        result = await host.invoke("calc/add", {"a": 5, "b": 3})
        async for chunk in host.stream("llm/chat", {"messages": [...]}):
            print(chunk["token"], end="")
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import ValidationError

from gleitzeit.config import Config, load_config
from gleitzeit.errors import (
    ConfigError,
    GleitzeitError,
    PluginError,
    ProviderTimeoutError,
    RoutingError,
)
from gleitzeit.files import FILE_KEYS, apply_file_inputs
from gleitzeit.health import HealthReport, run_checks
from gleitzeit.instance import ProviderInstance
from gleitzeit.plugins import Plugins
from gleitzeit.provider import Provider
from gleitzeit.registry import Registry
from gleitzeit.routing import Request, Router
from gleitzeit.stall import StallWatch
from gleitzeit.transport import Transport
from gleitzeit.validation import describe_errors, suggest

log = logging.getLogger("gleitzeit.host")


if sys.version_info >= (3, 11):

    async def _within(awaitable: Any, timeout: float) -> Any:
        # asyncio.timeout runs the call in this task; wait_for would start a new one.
        async with asyncio.timeout(timeout):
            return await awaitable

else:  # pragma: no cover - Python 3.10

    async def _within(awaitable: Any, timeout: float) -> Any:
        return await asyncio.wait_for(awaitable, timeout)


class Host:
    """Routes requests to provider instances found through plugins."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        plugins: Plugins | None = None,
        providers: list[Provider] | None = None,
        lazy: bool = False,
    ) -> None:
        """``lazy``: start each provider only when a request first needs it (the CLI
        does this, so calling the calculator does not start an LLM client)."""
        self.lazy = lazy
        self.config = config if config is not None else load_config()
        self._plugins = plugins
        self.registry = Registry()
        self.transports: dict[str, Transport] = {}
        self.router: Router | None = None
        self._extra_providers = list(providers or [])
        self._started = False
        self._health_task: asyncio.Task[None] | None = None
        self.plugin_errors: dict[str, str] = {}
        #: The GleitzeitServer serving this host, if any (set by ``gleitzeit serve``).
        self.server: Any = None

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
        for name, cls in plugins.transports.items():
            self.transports[name] = cls(self)
        for transport in self.transports.values():
            await transport.start()
        self._create_local_providers()
        if not self.lazy:
            await self.ensure_started()
        self._started = True
        await self._call_lifecycle("gleitzeit_startup")

    async def _start_instance(self, inst: Any, timeout: float) -> None:
        inst.start_attempted = True
        try:
            await asyncio.wait_for(inst.start(), timeout)
        except asyncio.TimeoutError:
            inst.start_error = ProviderTimeoutError(
                f"Provider {inst.name!r} did not start within {timeout:g}s",
                hint="raise health.startup_timeout in gleitzeit.yaml",
            )
            inst.health = HealthReport(status="unhealthy", detail=str(inst.start_error))
            return
        if inst.started:
            self.registry.update_models(inst, inst.models)
            inst.health = HealthReport(status="healthy", checked_at=time.time())
        else:
            log.info("provider %s is down: %s", inst.id, inst.health.detail)

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

    def _inprocess(self) -> Any:
        transport = self.transports.get("inprocess")
        if transport is None:
            raise PluginError("the in-process transport is not loaded")
        return transport

    def _create_local_providers(self) -> list[Any]:
        """One instance per registered provider type, the ``providers:`` entries, and
        any provider objects handed to the constructor."""
        transport = self._inprocess()
        plugins = self.plugins
        out = []
        for name, ptype in plugins.provider_types.items():
            settings = plugins.records[ptype.plugin].settings
            out.append(self._attach(transport, ptype.cls, settings, name, f"plugin {ptype.plugin}"))
        for name, entry in self.config.providers.items():
            if not entry.enabled:
                continue
            out.append(self._from_config_entry(transport, name, entry))
        for provider in self._extra_providers:
            out.append(transport.attach(provider, origin="python"))
        return [inst for inst in out if inst is not None]

    def _attach(
        self, transport: Any, cls: type[Provider], settings: Any, name: str, origin: str
    ) -> Any:
        try:
            provider = cls(settings, name=name)
        except Exception as exc:
            self.plugin_errors[name] = f"could not create provider: {type(exc).__name__}: {exc}"
            log.warning("provider %s: %s", name, self.plugin_errors[name])
            return None
        return transport.attach(provider, origin=origin)

    def _from_config_entry(self, transport: Any, name: str, entry: Any) -> Any:
        where = f"providers.{name}"
        if entry.type is not None:
            ptype = self.plugins.provider_types.get(entry.type)
            if ptype is None:
                near = suggest(entry.type, list(self.plugins.provider_types))
                self.plugin_errors[where] = f"{where}.type: no provider type {entry.type!r}" + (
                    f"; did you mean {near!r}?" if near else ""
                )
                log.warning(self.plugin_errors[where])
                return None
            cls = ptype.cls
            schema = self.plugins.records[ptype.plugin].settings_schema
        else:
            try:
                cls = _import_class(entry.class_)
            except Exception as exc:
                self.plugin_errors[where] = f"{where}.class: cannot import {entry.class_!r}: {exc}"
                log.warning(self.plugin_errors[where])
                return None
            schema = getattr(cls, "Settings", None)
        settings: Any = entry.settings
        if schema is not None:
            try:
                settings = schema.model_validate(entry.settings)
            except ValidationError as exc:
                self.plugin_errors[where] = "; ".join(
                    describe_errors(exc, model=schema, prefix=("providers", name, "settings"))
                )
                log.warning(self.plugin_errors[where])
                return None
        return self._attach(transport, cls, settings, name, f"config {where}")

    def add_provider(self, provider: Provider) -> ProviderInstance:
        """Serve a provider object in-process; start it with :meth:`start_provider`."""
        return self._inprocess().attach(provider, origin="python")

    async def start_provider(self, instance: Any) -> None:
        """Start an instance added with :meth:`add_provider` (once, however often asked)."""
        await self.ensure_started(provider=instance.name)

    async def ensure_started(
        self, *, provider: str | None = None, method: str | None = None, model: str | None = None
    ) -> None:
        """Start the not-yet-started local instances a request could go to."""
        if provider is not None:
            pool = self.registry.instances(provider)
        elif method is not None:
            pool = [i for i in self.registry if method in i.methods or "/" not in method]
            if not pool:  # perhaps one a provider learns only when it starts
                pool = [i for i in self.registry if getattr(i, "dynamic_methods", False)]
            if model is None:  # do not start what could not take the request anyway
                pool = [i for i in pool if method not in i.model_required]
        else:
            pool = list(self.registry)
        # Concurrent requests share one start per instance: each waits for it to end.
        starting = []
        for inst in pool:
            if not hasattr(inst, "start_attempted"):
                continue  # not a local instance: nothing to start
            future = getattr(inst, "start_future", None)
            if future is None:
                future = inst.start_future = asyncio.ensure_future(
                    self._start_instance(inst, self.config.health.startup_timeout)
                )
            if not future.done():
                starting.append(future)
        if starting:
            await asyncio.gather(*starting)

    # -- requests --------------------------------------------------------------------

    def _route(
        self,
        method: str,
        params: dict[str, Any],
        provider: str | None,
        model: str | None,
        capability: str | None,
        exclude: set[str],
    ) -> tuple[str, ProviderInstance]:
        resolved = self.registry.resolve_method(method, provider)
        candidates = self.registry.candidates(
            resolved, provider=provider, model=model, capability=capability
        )
        if exclude:
            candidates = [c for c in candidates if c.id not in exclude]
        if not candidates:
            raise self.registry.explain_no_candidate(
                resolved, provider=provider, model=model, capability=capability
            )
        assert self.router is not None
        request = Request(method=resolved, provider=provider, model=model, params=params)
        return resolved, self.router.pick(candidates, request)

    def _next_try(
        self,
        method: str,
        params: dict[str, Any],
        provider: str | None,
        model: str | None,
        capability: str | None,
        tried: set[str],
        last: GleitzeitError | None,
    ) -> tuple[str, ProviderInstance]:
        """The instance for the next try; once none is left, the last try's error."""
        try:
            resolved, inst = self._route(method, params, provider, model, capability, tried)
        except RoutingError:
            if last is not None:
                raise last from None
            raise
        tried.add(inst.id)
        return resolved, inst

    async def _prepare(
        self, method: str, params: dict[str, Any] | None, provider: str | None, model: str | None
    ) -> tuple[dict[str, Any], str | None]:
        """Start what the request needs, fold in file inputs, and find its model."""
        if not self._started:
            await self.start()
        params = dict(params or {})
        if model is not None:
            params.setdefault("model", model)
        if self.lazy:
            value = params.get("model")
            await self.ensure_started(
                provider=provider, method=method, model=value if isinstance(value, str) else None
            )
        if any(k in params for k in FILE_KEYS):
            resolved = self.registry.resolve_method(method, provider)
            params = apply_file_inputs(resolved, params, self.config.files)
        value = params.get("model")
        return params, value if isinstance(value, str) else None

    async def invoke(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        capability: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Route one request and return its result.

        A retryable failure is retried on another instance (``routing.retries``
        times at most); the last error is raised when none succeeds.
        """
        params, model = await self._prepare(method, params, provider, model)
        routing = self.config.routing
        timeout = timeout if timeout is not None else routing.timeout
        tried: set[str] = set()
        last: GleitzeitError | None = None
        for _attempt in range(routing.retries + 1):
            resolved, inst = self._next_try(
                method, params, provider, model, capability, tried, last
            )
            start = time.perf_counter()
            try:
                with inst.track():
                    result = await _within(inst.invoke(resolved, params), timeout)
            except asyncio.TimeoutError:
                err: GleitzeitError = ProviderTimeoutError(
                    f"{resolved} on {inst.id} took longer than {timeout:g}s",
                    hint="raise routing.timeout in gleitzeit.yaml or pass a timeout",
                )
                inst.record_failure(
                    err, threshold=routing.failure_threshold, cooldown=routing.cooldown
                )
                raise err from None
            except GleitzeitError as exc:
                if exc.retryable:
                    inst.record_failure(
                        exc, threshold=routing.failure_threshold, cooldown=routing.cooldown
                    )
                    last = exc
                    continue
                inst.errors += 1
                raise
            inst.record_success(time.perf_counter() - start)
            return result
        assert last is not None
        raise last

    async def stream(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        capability: str | None = None,
        chunk_timeout: float | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Route one request and yield its chunks; the last has ``done: true``.

        A stream that fails before its first chunk is retried on another instance;
        once chunks have been delivered, a failure ends the stream with the error.
        """
        params, model = await self._prepare(method, params, provider, model)
        routing = self.config.routing
        chunk_timeout = chunk_timeout if chunk_timeout is not None else routing.timeout
        tried: set[str] = set()
        last: GleitzeitError | None = None
        for _attempt in range(routing.retries + 1):
            resolved, inst = self._next_try(
                method, params, provider, model, capability, tried, last
            )
            delivered = False
            start = time.perf_counter()
            with inst.track():
                agen = inst.stream(resolved, params)
                watch = StallWatch(chunk_timeout)
                try:
                    while True:
                        watch.waiting()
                        try:
                            chunk = await agen.__anext__()
                        except StopAsyncIteration:
                            break
                        except asyncio.CancelledError:
                            if watch.fired:
                                raise ProviderTimeoutError(
                                    f"{resolved} on {inst.id} sent nothing for {chunk_timeout:g}s",
                                ) from None
                            raise
                        watch.got()
                        delivered = True
                        yield chunk
                        if chunk.get("done"):
                            break
                except GleitzeitError as exc:
                    inst.record_failure(
                        exc, threshold=routing.failure_threshold, cooldown=routing.cooldown
                    )
                    if exc.retryable and not delivered:
                        last = exc
                        continue
                    raise
                finally:
                    watch.stop()
                    await agen.aclose()
            inst.record_success(time.perf_counter() - start)
            return
        assert last is not None
        raise last

    # -- health ----------------------------------------------------------------------

    async def check_health(self, name: str | None = None) -> list[ProviderInstance]:
        """Run the health checks now against every instance (or those named ``name``)."""
        if not self._started:
            await self.start()
        instances = self.registry.instances(name)
        if name is not None and not instances:
            self.registry.resolve_method("?", name)  # raises the unknown-provider error
        if self.lazy:
            await self.ensure_started(provider=name)
        checks = self.plugins.health_checks
        timeout = self.config.health.timeout

        async def one(inst: ProviderInstance) -> None:
            inst.health = await run_checks(inst, checks, timeout)

        await asyncio.gather(*(one(i) for i in instances))
        return instances

    def watch_health(self) -> None:
        """Re-check health every ``health.interval`` seconds until the host stops."""
        if self._health_task is None:
            self._health_task = asyncio.ensure_future(self._health_loop())

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.health.interval)
            try:
                await self.check_health()
            except Exception:
                log.warning("health checks failed", exc_info=True)


def _import_class(path: str) -> type[Provider]:
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    module = importlib.import_module(module_name)
    obj = getattr(module, attr)
    if not (isinstance(obj, type) and issubclass(obj, Provider)):
        raise TypeError(f"{path} is not a gleitzeit.Provider subclass")
    return obj
