"""Built-in plugins. They register through the same hooks as any installed plugin."""

from __future__ import annotations

from typing import Any


def builtin_plugins() -> list[tuple[str, Any]]:
    """(name, plugin object) of every built-in plugin, in load order."""
    from gleitzeit.builtins import (
        echo_plugin,
        health_checks,
        inprocess,
        python_execute,
        python_tasks,
        routers,
    )

    return [
        ("inprocess-transport", inprocess),
        ("default-routers", routers),
        ("default-health", health_checks),
        ("echo", echo_plugin),
        ("python-tasks", python_tasks),
        ("python-execute", python_execute),
    ]
