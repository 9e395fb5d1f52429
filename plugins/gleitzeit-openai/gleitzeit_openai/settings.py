"""Settings of the openai plugin (``plugins: openai:`` in gleitzeit.yaml)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from gleitzeit.httpllm.settings import HttpLLMSettings

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAISettings(HttpLLMSettings):
    """Where the OpenAI-compatible server is, its key, timeouts and model defaults.

    ``OPENAI_BASE_URL`` is deliberately not read: clients of ``gleitzeit serve``'s own
    ``/v1`` API export it to point at Gleitzeit, and the plugin would then send its
    upstream requests to the server it runs in.
    """

    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    base_url_env: ClassVar[str | None] = "GLEITZEIT_OPENAI_BASE_URL"
    api_key_env: ClassVar[str | None] = "OPENAI_API_KEY"

    api_key: SecretStr | None = Field(None, description="API key; defaults to $OPENAI_API_KEY")
    base_url: str | None = Field(
        None,
        description="any OpenAI-compatible server, ending in /v1; defaults to "
        "$GLEITZEIT_OPENAI_BASE_URL, then https://api.openai.com/v1",
    )
    organization: str | None = Field(None, description="OpenAI organization id")
    require_api_key: bool = Field(
        True, description="false for local OpenAI-compatible servers that take no key"
    )
    embedding_model: str | None = Field(
        "text-embedding-3-small", description="model for llm/embed when a request names none"
    )
