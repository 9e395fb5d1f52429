"""Configuration: ``gleitzeit.yaml`` found, substituted and validated.

The names below load on first use: finding the file (``gleitzeit.config.paths``) needs
neither YAML nor the models, so a command that finds no file never imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gleitzeit.config.loader import load_config, parse_config
    from gleitzeit.config.models import (
        Config,
        FilesConfig,
        HealthConfig,
        ProviderInstanceConfig,
        RoutingConfig,
        ServerConfig,
    )
    from gleitzeit.config.paths import find_config_path

_WHERE = {
    "Config": "gleitzeit.config.models",
    "FilesConfig": "gleitzeit.config.models",
    "HealthConfig": "gleitzeit.config.models",
    "ProviderInstanceConfig": "gleitzeit.config.models",
    "RoutingConfig": "gleitzeit.config.models",
    "ServerConfig": "gleitzeit.config.models",
    "find_config_path": "gleitzeit.config.paths",
    "load_config": "gleitzeit.config.loader",
    "parse_config": "gleitzeit.config.loader",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'gleitzeit.config' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Config",
    "FilesConfig",
    "HealthConfig",
    "ProviderInstanceConfig",
    "RoutingConfig",
    "ServerConfig",
    "find_config_path",
    "load_config",
    "parse_config",
]
