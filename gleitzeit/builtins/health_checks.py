"""Built-in health check: ask the provider itself."""

from __future__ import annotations

from typing import Any

from gleitzeit.hookspecs import hookimpl


async def provider_check(instance: Any) -> dict[str, Any]:
    """The provider's own ``health()`` report."""
    return await instance.check_health()


@hookimpl
def gleitzeit_register_health_checks(register):
    register("provider", provider_check)
