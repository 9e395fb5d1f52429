"""Entry module of the ollama plugin: hook implementations only. The provider module
(and aiohttp, when it starts) are imported only when needed, so listing plugins stays
fast."""

from __future__ import annotations

from gleitzeit import hookimpl


@hookimpl
def gleitzeit_config_schema():
    from gleitzeit_ollama.settings import OllamaSettings

    return OllamaSettings


@hookimpl
def gleitzeit_register_providers(register):
    # By reference: the provider module (pydantic models, the SDK) is imported only
    # when the host builds the provider, not when plugins are listed.
    register("gleitzeit_ollama.provider:OllamaProvider", name="ollama")


@hookimpl
def gleitzeit_register_commands(cli):
    from gleitzeit_ollama.commands import ollama_group

    cli.add_command(ollama_group)
