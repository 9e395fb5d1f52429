"""A provider instance as the registry and routers see it, whatever its transport."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from gleitzeit.health import HealthReport
from gleitzeit.methods import MethodDescription

if TYPE_CHECKING:
    from gleitzeit._registry import Registry

_ids = itertools.count(1)


class ProviderInstance:
    """One reachable instance of a provider.

    Transports subclass this and implement :meth:`invoke`, :meth:`stream` and
    :meth:`health`. The host keeps the counters: ``in_flight`` rises when a call is
    handed to the instance and falls when it ends, however it ends.
    """

    transport: str = "?"
    #: True when another party runs this instance's scheduled health checks and shares
    #: the outcome (a cluster node's mirror of another node's instance): the host's
    #: periodic checks leave it out; checks asked for now still run.
    checked_elsewhere: bool = False
    #: False when failures of the instance are never its own (see
    #: :attr:`gleitzeit.Provider.cools_down`): counted, never cooled down for.
    cools_down: bool = True
    #: The provider's own ``invoke`` while this instance runs it, started, in this
    #: process: the dispatcher then calls it with no layer in between and passes what
    #: it raises through :meth:`failure`. ``None``: calls go through :meth:`invoke`.
    direct_invoke: Callable[[str, dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]] | None = (
        None
    )

    def __init__(
        self,
        *,
        name: str,
        kind: str,
        methods: dict[str, MethodDescription],
        models: tuple[str, ...] | list[str] = (),
        capabilities: tuple[str, ...] | list[str] = (),
        description: str = "",
        version: str = "",
        instance_id: str | None = None,
        model_required: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.id = instance_id or f"{name}#{next(_ids)}"
        self.name = name
        self.kind = kind
        self.methods = methods
        self.models = tuple(models)
        self.capabilities = tuple(capabilities)
        self.model_required = frozenset(model_required)
        #: Learns (some of) its methods only once started; see Provider.dynamic_methods.
        self.dynamic_methods = False
        self.description = description
        self.version = version
        self.in_flight = 0
        self.calls = 0
        self.errors = 0
        self.consecutive_failures = 0
        self.latency_ewma: float | None = None
        self.cooldown_until = 0.0
        self._health = HealthReport(status="unknown")
        #: Set by the registry that holds this instance; told when routability changes.
        self.registry: Registry | None = None
        self.last_heartbeat: float | None = None
        self.last_error: str | None = None

    # -- transport side --------------------------------------------------------------

    async def invoke(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def stream(self, method: str, params: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        raise NotImplementedError

    def failure(self, method: str, exc: Exception) -> Exception:
        """The error a call of :attr:`direct_invoke` ends with when it raised ``exc``."""
        return exc

    async def check_health(self) -> dict[str, Any]:
        """The provider's own health report."""
        raise NotImplementedError

    # -- bookkeeping -----------------------------------------------------------------

    @property
    def health(self) -> HealthReport:
        return self._health

    @health.setter
    def health(self, report: HealthReport) -> None:
        changed = (report.status == "unhealthy") != (self._health.status == "unhealthy")
        self._health = report
        if changed and self.registry is not None:
            self.registry.routability_changed(self)

    @property
    def routable(self) -> bool:
        """Whether routers may pick this instance now."""
        return self._health.status != "unhealthy" and time.monotonic() >= self.cooldown_until

    def serves_model(self, model: str) -> bool:
        return model in self.models

    @contextmanager
    def track(self) -> Iterator[None]:
        """Count one call in flight for the duration of the block."""
        self.in_flight += 1
        self.calls += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def record_success(self, seconds: float) -> None:
        self.consecutive_failures = 0
        last = self.latency_ewma
        self.latency_ewma = seconds if last is None else 0.2 * seconds + 0.8 * last

    def record_failure(self, error: BaseException, *, threshold: int, cooldown: float) -> None:
        self.errors += 1
        self.consecutive_failures += 1
        self.last_error = str(error)
        if self.consecutive_failures >= threshold and cooldown > 0:
            self.cooldown_until = time.monotonic() + cooldown
            if self.registry is not None:
                self.registry.cooling(self)

    def describe(self, *, schemas: bool = False) -> dict[str, Any]:
        """The instance as ``providers list --json`` shows it; ``schemas`` adds each
        method's description, streaming flag and parameter schema."""
        data = {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "transport": self.transport,
            "description": self.description,
            "version": self.version,
            "methods": sorted(self.methods),
            "models": list(self.models),
            "capabilities": list(self.capabilities),
            "status": self.health.status,
            "in_flight": self.in_flight,
            "calls": self.calls,
            "errors": self.errors,
            "latency_ms": None if self.latency_ewma is None else round(self.latency_ewma * 1000, 3),
            "cooling_down": time.monotonic() < self.cooldown_until,
            "health_detail": self.health.detail,
        }
        if schemas:
            data["method_schemas"] = {
                n: {
                    "streaming": m.streaming,
                    "description": m.description,
                    "params_schema": m.params_schema,
                }
                for n, m in sorted(self.methods.items())
            }
        return data
