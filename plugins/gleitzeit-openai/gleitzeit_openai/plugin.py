"""Entry module of the openai plugin: hook implementations only. The provider module
(and aiohttp, when it starts) are imported only when needed, so listing plugins stays
fast."""

from __future__ import annotations

from gleitzeit import hookimpl


@hookimpl
def gleitzeit_config_schema():
    from gleitzeit_openai.settings import OpenAISettings

    return OpenAISettings


@hookimpl
def gleitzeit_register_providers(register):
    # By reference: the provider module (pydantic models, the SDK) is imported only
    # when the host builds the provider, not when plugins are listed.
    register("gleitzeit_openai.provider:OpenAIProvider", name="openai")
