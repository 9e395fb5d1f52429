"""A provider running in this process, as the registry and routers see it.

It owns its start: one shared start future for every request that needs it, the models
discovered, or the error that kept it down.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

from gleitzeit.errors import (
    GleitzeitError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from gleitzeit.health import HealthReport
from gleitzeit.instance import ProviderInstance
from gleitzeit.methods import MethodDescription
from gleitzeit.provider import Provider, awaited

__all__ = ["LocalInstance"]

log = logging.getLogger("gleitzeit.inprocess")


def _wrap(provider: Provider, method: str, exc: Exception) -> GleitzeitError:
    """A bare exception from provider code becomes an error that names where it came from."""
    log.debug("provider %s raised in %s", provider.name, method, exc_info=exc)
    return ProviderError(
        f"Provider {provider.name!r} failed in {method}: {type(exc).__name__}: {exc}",
        hint="this is a bug in the provider; run with --debug for the traceback",
    )


def _descriptions(provider: Provider) -> dict[str, MethodDescription]:
    return {n: s.description_model() for n, s in provider.method_specs().items()}


class LocalInstance(ProviderInstance):
    """A :class:`Provider` object running in this process.

    It owns its start: :meth:`ensure_started` starts the provider once, however many
    requests ask at the same time, and keeps the outcome (models discovered, or the
    error that kept it down).
    """

    transport = "inprocess"

    def __init__(self, provider: Provider, *, origin: str | None = None) -> None:
        super().__init__(
            name=provider.name,
            kind=provider.kind,
            methods=_descriptions(provider),
            models=provider.models,
            capabilities=provider.capabilities,
            description=provider.description,
            version=provider.version,
            model_required=provider.model_required,
        )
        self.provider = provider
        self.origin = origin
        self.started = False
        self.start_error: GleitzeitError | None = None
        self._starting: asyncio.Future[None] | None = None
        self.dynamic_methods = type(provider).dynamic_methods
        self.cools_down = type(provider).cools_down

    def hold(self, reason: GleitzeitError) -> None:
        """Keep the provider down, unstarted, with ``reason`` as its health detail and
        as the error of every call routed to it."""
        self._down(reason, str)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        self._starting = done

    @property
    def start_finished(self) -> bool:
        """Whether a start was attempted and is over (started, or down with a reason)."""
        return self._starting is not None and self._starting.done()

    def ensure_started(self, timeout: float) -> asyncio.Future[None]:
        """Start the provider unless a start was already attempted; every caller
        awaits the same start."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start(timeout))
        return self._starting

    async def _start(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(awaited(self.provider, "start"), timeout)
        except asyncio.TimeoutError:
            self._down(
                ProviderTimeoutError(
                    f"Provider {self.name!r} did not start within {timeout:g}s",
                    hint="raise health.startup_timeout in gleitzeit.yaml",
                ),
                str,
            )
            return
        except Exception as exc:  # one provider failing to start leaves the rest serving
            err = exc if isinstance(exc, GleitzeitError) else _wrap(self.provider, "start", exc)
            self._down(err, lambda e: f"failed to start: {e}")
            return
        self.started = True
        self.direct_invoke = self.provider.invoke
        self.capabilities = tuple(self.provider.capabilities)
        models = tuple(self.provider.models)
        if self.registry is not None:
            self.registry.update_models(self, models)
        else:
            self.models = models
        if self.dynamic_methods:
            self.provider.methods_listener = self.refresh_methods
            self.refresh_methods()
        self.health = HealthReport(status="healthy", checked_at=time.time())

    def refresh_methods(self) -> None:
        """Re-read the provider's methods (after start, or when it says they changed)."""
        methods = _descriptions(self.provider)
        if self.registry is not None:
            self.registry.update_methods(self, methods)
        else:
            self.methods = methods

    def _down(self, err: GleitzeitError, detail: Callable[[GleitzeitError], str]) -> None:
        self.start_error = err
        self.health = HealthReport(status="unhealthy", detail=detail(err))
        log.info("provider %s is down: %s", self.id, err)

    async def stop(self) -> None:
        if self.started:
            self.started = False
            self.direct_invoke = None
            self.provider.methods_listener = None
            await awaited(self.provider, "stop")

    def _not_started(self) -> GleitzeitError:
        if self.start_error is not None:
            return copy.copy(self.start_error)
        return ProviderUnavailableError(f"Provider {self.name!r} is not started")

    async def invoke(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if not self.started:
            raise self._not_started()
        try:
            return await self.provider.invoke(method, params)
        except Exception as exc:
            err = self.failure(method, exc)
            if err is exc:
                raise
            raise err from exc

    def failure(self, method: str, exc: Exception) -> Exception:
        return exc if isinstance(exc, GleitzeitError) else _wrap(self.provider, method, exc)

    async def stream(
        self, method: str, params: dict[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        if not self.started:
            raise self._not_started()
        try:
            async for chunk in self.provider.stream(method, params):
                yield chunk
        except Exception as exc:
            err = self.failure(method, exc)
            if err is exc:
                raise
            raise err from exc

    async def check_health(self) -> dict[str, Any]:
        if not self.started:
            detail = str(self.start_error) if self.start_error else "not started"
            return {"status": "unhealthy", "detail": detail}
        return await awaited(self.provider, "health")
