"""The settings every HTTP LLM provider takes, and how its base URL is found.

A plugin subclasses :class:`HttpLLMSettings`, sets the class variables that name its
default URL and environment variables, and redeclares a field to change its default::

    class MySettings(HttpLLMSettings):
        default_base_url: ClassVar[str] = "http://localhost:8080/v1"
        api_key_env: ClassVar[str | None] = "MY_API_KEY"

        timeout: float = Field(120.0, gt=0, description="seconds to wait for a byte")
"""

from __future__ import annotations

import os
from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from gleitzeit.errors import ConfigError

__all__ = ["HttpLLMSettings", "normalise_base_url"]


def normalise_base_url(raw: str) -> str:
    """``raw`` as a base URL: no trailing slash, ``http://`` added to a bare
    ``host:port`` (as ``OLLAMA_HOST`` is often written). Raises ValueError, saying what
    to write instead, for anything that is not an http(s) URL with a host."""
    url = raw.strip()
    if "://" not in url:
        url = f"http://{url}"
    url = url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{raw!r} is not an http(s) URL; write it as http://host:port or https://host/path"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{raw!r} has a query or fragment; a base URL has neither")
    return url


class HttpLLMSettings(BaseModel):
    """Base URL, key, timeouts and model defaults of an HTTP LLM provider."""

    # defer_build: the schema is built on first use, not when a plugin imports it.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    #: Where the upstream is when neither ``base_url`` nor ``base_url_env`` says.
    default_base_url: ClassVar[str] = "http://localhost:8080"
    #: An environment variable read when ``base_url`` is not set (None: none is read).
    base_url_env: ClassVar[str | None] = None
    #: An environment variable read when ``api_key`` is not set (None: none is read).
    api_key_env: ClassVar[str | None] = None

    base_url: str | None = Field(None, description="the upstream server's base URL")
    api_key: SecretStr | None = Field(None, description="API key, sent as a bearer token")
    timeout: float = Field(60.0, gt=0, description="seconds to wait for a byte from the server")
    connect_timeout: float = Field(5.0, gt=0, description="seconds to wait for a connection")
    health_timeout: float = Field(3.0, gt=0, description="seconds the health probe may take")
    models: list[str] | None = Field(
        None, description="fixed model list instead of discovering it from the server"
    )
    default_model: str | None = Field(None, description="model used when a request names none")
    embedding_model: str | None = Field(
        None, description="model for llm/embed when a request names none"
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else normalise_base_url(value)

    def resolved_base_url(self) -> str:
        """``base_url``, else ``$base_url_env``, else ``default_base_url``, normalised."""
        if self.base_url:
            return self.base_url
        env = self.base_url_env
        raw = os.environ.get(env) if env else None
        if not raw:
            return normalise_base_url(self.default_base_url)
        try:
            return normalise_base_url(raw)
        except ValueError as exc:
            raise ConfigError(
                f"The environment variable {env} is not a usable base URL: {exc}",
                hint=f"fix or unset {env}, or set base_url in gleitzeit.yaml",
            ) from None

    def resolved_api_key(self) -> str | None:
        """``api_key``, else ``$api_key_env``; None when neither is set."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        env = self.api_key_env
        return (os.environ.get(env) if env else None) or None
