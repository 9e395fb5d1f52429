"""Settings of the openai plugin (``plugins: openai:`` in gleitzeit.yaml)."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAISettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = Field(None, description="API key; defaults to $OPENAI_API_KEY")
    base_url: str | None = Field(
        None,
        description="any OpenAI-compatible server, ending in /v1; defaults to "
        "$OPENAI_BASE_URL, then https://api.openai.com/v1",
    )
    organization: str | None = Field(None, description="OpenAI organization id")
    require_api_key: bool = Field(
        True, description="false for local OpenAI-compatible servers that take no key"
    )
    timeout: float = Field(60.0, gt=0, description="seconds to wait for a byte from the server")
    connect_timeout: float = Field(5.0, gt=0, description="seconds to wait for a connection")
    health_timeout: float = Field(3.0, gt=0, description="seconds the health probe may take")
    models: list[str] | None = Field(
        None, description="fixed model list, for servers without GET /v1/models"
    )
    default_model: str | None = Field(None, description="model used when a request names none")
    embedding_model: str = Field(
        "text-embedding-3-small", description="model for llm/embed when a request names none"
    )

    def resolved_api_key(self) -> str | None:
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        return os.environ.get("OPENAI_API_KEY") or None

    def resolved_base_url(self) -> str:
        return (self.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
