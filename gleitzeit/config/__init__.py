"""Configuration: ``gleitzeit.yaml`` found, substituted and validated."""

from gleitzeit.config.loader import find_config_path, load_config, parse_config
from gleitzeit.config.models import (
    Config,
    FilesConfig,
    HealthConfig,
    ProviderInstanceConfig,
    RoutingConfig,
    ServerConfig,
)

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
