"""Settings of the ollama plugin (``plugins: ollama:`` in gleitzeit.yaml)."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_BASE_URL = "http://localhost:11434"


class OllamaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(
        None, description="Ollama server; defaults to $OLLAMA_HOST, then http://localhost:11434"
    )
    timeout: float = Field(120.0, gt=0, description="seconds to wait for a byte from Ollama")
    connect_timeout: float = Field(5.0, gt=0, description="seconds to wait for a connection")
    health_timeout: float = Field(2.0, gt=0, description="seconds the health probe may take")
    keep_alive: str | float | None = Field(
        None, description="how long Ollama keeps a model loaded, e.g. '5m' or 0"
    )
    default_model: str | None = Field(None, description="model used when a request names none")
    embedding_model: str = Field(
        "nomic-embed-text", description="model for llm/embed when a request names none"
    )
    models: list[str] | None = Field(
        None, description="fixed model list instead of discovering it from /api/tags"
    )

    def resolved_base_url(self) -> str:
        raw = self.base_url or os.environ.get("OLLAMA_HOST") or DEFAULT_BASE_URL
        if "://" not in raw:  # OLLAMA_HOST is often host:port
            raw = f"http://{raw}"
        return raw.rstrip("/")
