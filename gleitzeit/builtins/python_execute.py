"""Built-in plugin: ``python/execute``, served only when ``workflows.allow_execute`` is
true (a workflow file is then code). The provider lives in :mod:`gleitzeit.execute`
and is imported only then."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from gleitzeit.hookspecs import hookimpl

if TYPE_CHECKING:
    from gleitzeit.host import Host


@hookimpl
def gleitzeit_startup(host: Host) -> Awaitable[None] | None:
    # Served only when allowed: a host that may not run workflow code has no instance
    # that could be asked to (and `providers list` does not show one).
    if not host.config.workflows.allow_execute:
        return None
    from gleitzeit.execute import PythonExecuteProvider

    provider = PythonExecuteProvider()
    provider.configure(host.config)
    host.add_provider(provider)
    return host.ensure_started(provider=provider.name)
