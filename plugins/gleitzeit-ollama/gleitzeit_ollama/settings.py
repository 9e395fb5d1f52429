"""Settings of the ollama plugin (``plugins: ollama:`` in gleitzeit.yaml)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from gleitzeit.httpllm.settings import HttpLLMSettings

DEFAULT_BASE_URL = "http://localhost:11434"


class OllamaSettings(HttpLLMSettings):
    """Where Ollama is, its timeouts and model defaults."""

    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    base_url_env: ClassVar[str | None] = "OLLAMA_HOST"

    base_url: str | None = Field(
        None, description="Ollama server; defaults to $OLLAMA_HOST, then http://localhost:11434"
    )
    api_key: SecretStr | None = Field(
        None, description="bearer token, for an Ollama behind an authenticating proxy"
    )
    timeout: float = Field(120.0, gt=0, description="seconds to wait for a byte from Ollama")
    health_timeout: float = Field(2.0, gt=0, description="seconds the health probe may take")
    keep_alive: str | float | None = Field(
        None, description="how long Ollama keeps a model loaded, e.g. '5m' or 0"
    )
    embedding_model: str | None = Field(
        "nomic-embed-text", description="model for llm/embed when a request names none"
    )
