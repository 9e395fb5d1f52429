"""The in-process transport: providers that run inside the host's event loop."""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator
from typing import Any

from gleitzeit.errors import GleitzeitError, ProviderError, ProviderUnavailableError
from gleitzeit.health import HealthReport
from gleitzeit.hookspecs import hookimpl
from gleitzeit.instance import MethodInfo, ProviderInstance
from gleitzeit.provider import Provider
from gleitzeit.transport import Transport

log = logging.getLogger("gleitzeit.inprocess")


def _wrap(provider: Provider, method: str, exc: Exception) -> GleitzeitError:
    """A bare exception from provider code becomes an error that names where it came from."""
    log.debug("provider %s raised in %s", provider.name, method, exc_info=exc)
    return ProviderError(
        f"Provider {provider.name!r} failed in {method}: {type(exc).__name__}: {exc}",
        hint="this is a bug in the provider; run with --debug for the traceback",
    )


def _method_infos(provider: Provider) -> dict[str, MethodInfo]:
    return {
        n: MethodInfo(n, s.streaming, s.description, s.schema())
        for n, s in provider.method_specs().items()
    }


class LocalInstance(ProviderInstance):
    """A :class:`Provider` object running in this process."""

    transport = "inprocess"

    def __init__(self, provider: Provider, *, origin: str | None = None) -> None:
        super().__init__(
            name=provider.name,
            kind=provider.kind,
            methods=_method_infos(provider),
            models=provider.models,
            capabilities=provider.capabilities,
            description=provider.description,
            version=provider.version,
            model_required=provider.model_required,
        )
        self.provider = provider
        self.origin = origin
        self.started = False
        self.start_attempted = False
        self.start_future: Any = None
        self.start_error: GleitzeitError | None = None
        self.dynamic_methods = bool(getattr(provider, "dynamic_methods", False))

    async def start(self) -> None:
        try:
            await self.provider.start()
        except Exception as exc:  # one provider failing to start leaves the rest serving
            err = exc if isinstance(exc, GleitzeitError) else _wrap(self.provider, "start", exc)
            self.start_error = err
            self.health = HealthReport(status="unhealthy", detail=f"failed to start: {err}")
            return
        self.started = True
        self.models = tuple(self.provider.models)
        self.capabilities = tuple(self.provider.capabilities)
        if self.dynamic_methods:
            self.provider.methods_listener = self.refresh_methods
            self.refresh_methods()

    def refresh_methods(self) -> None:
        """Re-read the provider's methods (after start, or when it says they changed)."""
        methods = _method_infos(self.provider)
        if self.registry is not None:
            self.registry.update_methods(self, methods)
        else:
            self.methods = methods

    async def stop(self) -> None:
        if self.started:
            self.started = False
            self.provider.methods_listener = None
            await self.provider.stop()

    def _not_started(self) -> GleitzeitError:
        if self.start_error is not None:
            return copy.copy(self.start_error)
        return ProviderUnavailableError(f"Provider {self.name!r} is not started")

    async def invoke(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if not self.started:
            raise self._not_started()
        try:
            return await self.provider.invoke(method, params)
        except GleitzeitError:
            raise
        except Exception as exc:
            raise _wrap(self.provider, method, exc) from exc

    async def stream(self, method: str, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        if not self.started:
            raise self._not_started()
        try:
            async for chunk in self.provider.stream(method, params):
                yield chunk
        except GleitzeitError:
            raise
        except Exception as exc:
            raise _wrap(self.provider, method, exc) from exc

    async def check_health(self) -> dict[str, Any]:
        if not self.started:
            detail = str(self.start_error) if self.start_error else "not started"
            return {"status": "unhealthy", "detail": detail}
        return await self.provider.health()


class InProcessTransport(Transport):
    """Runs :class:`Provider` objects in the host's own event loop."""

    name = "inprocess"

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.instances: list[LocalInstance] = []

    def attach(self, provider: Provider, *, origin: str | None = None) -> LocalInstance:
        """Add a provider object to the host as an instance (not started yet)."""
        inst = LocalInstance(provider, origin=origin)
        self.instances.append(inst)
        self.host.registry.add(inst)
        return inst

    async def stop(self) -> None:
        for inst in self.instances:
            try:
                await inst.stop()
            except Exception:
                log.warning("provider %s failed to stop", inst.id, exc_info=True)
            self.host.registry.remove(inst.id)
        self.instances.clear()


@hookimpl
def gleitzeit_register_transports(register):
    register(InProcessTransport)
