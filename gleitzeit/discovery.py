"""Finding installed plugins (entry points) and importing the enabled ones.

Listing reads package metadata only; nothing is imported until a plugin is loaded,
and then only the plugins asked for, each on its own (stevedore filters by name
before import), so one that fails to import cannot stop the others.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any

GROUP = "gleitzeit.plugins"


@dataclass(frozen=True)
class InstalledPlugin:
    """One entry point in the ``gleitzeit.plugins`` group."""

    name: str
    value: str
    distribution: str | None
    version: str | None


def installed_plugins() -> list[InstalledPlugin]:
    """Every plugin entry point installed in this environment, first one per name."""
    seen: dict[str, InstalledPlugin] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        if ep.name in seen:
            continue
        dist = getattr(ep, "dist", None)
        seen[ep.name] = InstalledPlugin(
            name=ep.name,
            value=ep.value,
            distribution=dist.metadata["Name"] if dist is not None else None,
            version=dist.version if dist is not None else None,
        )
    return list(seen.values())


def import_plugin(name: str) -> Any:
    """Import the object behind entry point ``name``; raise whatever the import raised."""
    from stevedore import NamedExtensionManager

    failure: list[BaseException] = []
    manager: NamedExtensionManager = NamedExtensionManager(
        GROUP,
        names=[name],
        on_load_failure_callback=lambda _mgr, _ep, exc: failure.append(exc),
        on_missing_entrypoints_callback=None,
    )
    if failure:
        raise failure[0]
    if name not in manager.names():
        raise LookupError(f"no entry point named {name!r} in group {GROUP!r}")
    return manager[name].plugin
