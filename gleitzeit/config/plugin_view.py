"""What loading plugins reads from the configuration, and that view of the built-in
defaults: with no ``gleitzeit.yaml``, plugins load without a config model being built."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path


class PluginConfig(Protocol):
    """The part of :class:`gleitzeit.config.Config` that plugin loading uses."""

    @property
    def plugins(self) -> dict[str, Any]: ...

    @property
    def source(self) -> Path | None: ...

    def locate(self, loc: tuple) -> int | None: ...

    def plugin_problems(self, name: str) -> list[str]: ...

    def plugin_section(self, name: str) -> dict | None: ...

    def plugin_enabled(self, name: str) -> bool: ...


class DefaultPluginConfig:
    """What ``Config()`` says about plugins: no sections, every plugin enabled."""

    @property
    def plugins(self) -> dict[str, Any]:
        return {}

    @property
    def source(self) -> Path | None:
        return None

    def locate(self, loc: tuple) -> int | None:
        return None

    def plugin_problems(self, name: str) -> list[str]:
        return []

    def plugin_section(self, name: str) -> dict | None:
        return None

    def plugin_enabled(self, name: str) -> bool:
        return True
