"""``gleitzeit ollama ...``: commands the ollama plugin adds to the CLI."""

from __future__ import annotations

import click


@click.group("ollama")
def ollama_group() -> None:
    """Ollama plugin commands."""


@ollama_group.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List the models the Ollama server has (GET /api/tags)."""
    import asyncio  # here: `gleitzeit --help` imports this module, and needs no loop

    from gleitzeit.cli.output import echo_json, table
    from gleitzeit.cli.state import state_of
    from gleitzeit_ollama.provider import OllamaProvider

    record = state_of(ctx).plugins.records.get("ollama")
    provider = OllamaProvider(record.settings if record else None)

    async def go() -> list[dict]:
        await provider.start()
        try:
            return await provider.list_models()
        finally:
            await provider.stop()

    found = asyncio.run(go())
    if as_json:
        echo_json(found)
        return
    rows = []
    for m in found:
        details = m.get("details") or {}
        size = m.get("size")
        rows.append(
            [
                m.get("model") or m.get("name"),
                f"{size / 1e9:.1f} GB" if isinstance(size, (int, float)) else "",
                details.get("family"),
                details.get("parameter_size"),
                details.get("quantization_level"),
            ]
        )
    click.echo(table(["NAME", "SIZE", "FAMILY", "PARAMETERS", "QUANTIZATION"], rows))
