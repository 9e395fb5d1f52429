"""Health reports and the running of health checks against instances."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from gleitzeit.instance import ProviderInstance

Status = Literal["healthy", "degraded", "unhealthy", "unknown"]
HealthCheck = Callable[["ProviderInstance"], Awaitable[Any]]

_RANK = {"healthy": 0, "unknown": 1, "degraded": 2, "unhealthy": 3}


class HealthReport(BaseModel):
    """What a health check says of one instance."""

    # Built on first use, not at import: keeps `gleitzeit plugins list` quick.
    model_config = ConfigDict(defer_build=True)

    status: Status = "unknown"
    detail: str | None = None
    latency_ms: float | None = None
    checked_at: float | None = Field(None, description="unix time of the check")
    checks: dict[str, dict[str, Any]] = Field(default_factory=dict)


def as_report(value: Any) -> HealthReport:
    if isinstance(value, HealthReport):
        return value
    if isinstance(value, Mapping):
        known = {k: value[k] for k in ("status", "detail", "latency_ms") if k in value}
        return HealthReport(**known)
    raise TypeError(f"a health check returned {type(value).__name__}, expected a dict")


async def run_checks(
    instance: ProviderInstance, checks: Mapping[str, HealthCheck], timeout: float
) -> HealthReport:
    """Run every check against ``instance``, each bounded by ``timeout``; the worst
    status wins, and the details name the checks that failed."""
    import asyncio

    async def one(name: str, check: HealthCheck) -> tuple[str, HealthReport]:
        start = time.perf_counter()
        try:
            report = as_report(await asyncio.wait_for(check(instance), timeout))
        except asyncio.TimeoutError:
            report = HealthReport(status="unhealthy", detail=f"no answer within {timeout:g}s")
        except Exception as exc:  # a check that raises reports the instance down, not the host
            report = HealthReport(status="unhealthy", detail=f"{type(exc).__name__}: {exc}")
        if report.latency_ms is None:
            report.latency_ms = round((time.perf_counter() - start) * 1000, 3)
        return name, report

    results = await asyncio.gather(*(one(n, c) for n, c in checks.items()))
    if not results:
        return HealthReport(status="unknown", checked_at=time.time())
    worst = max((r for _, r in results), key=lambda r: _RANK[r.status])
    failing = [(n, r) for n, r in results if r.detail and r.status != "healthy"]
    details = [str(r.detail) if len(results) == 1 else f"{n}: {r.detail}" for n, r in failing]
    return HealthReport(
        status=worst.status,
        detail="; ".join(details) or worst.detail,
        latency_ms=max(r.latency_ms or 0.0 for _, r in results),
        checked_at=time.time(),
        checks={n: r.model_dump(exclude={"checks"}) for n, r in results},
    )


def _resting(inst: ProviderInstance) -> float | None:
    left = inst.cooldown_until - time.monotonic()
    return round(left, 1) if left > 0 else None


def health_row(inst: ProviderInstance) -> dict[str, Any]:
    """One instance's health as ``providers health`` shows it."""
    return {
        "id": inst.id,
        "name": inst.name,
        "transport": inst.transport,
        "in_flight": inst.in_flight,
        "calls": inst.calls,
        "errors": inst.errors,
        "last_heartbeat": inst.last_heartbeat,
        "latency_ms": None if inst.latency_ewma is None else round(inst.latency_ewma * 1000, 3),
        # Seconds it stays out of routing after failures or a rate limit (None: it is in).
        "cooling_down_s": _resting(inst),
        **inst.health.model_dump(exclude={"latency_ms"}),
        "check_latency_ms": inst.health.latency_ms,
    }
