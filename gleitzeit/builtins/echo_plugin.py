"""Built-in plugin ``echo``: the offline demo provider of :mod:`gleitzeit.builtins.echo`,
registered by reference so that listing plugins does not import it (nor pydantic)."""

from __future__ import annotations

from gleitzeit.hookspecs import RegisterProvider, hookimpl


@hookimpl
def gleitzeit_register_providers(register: RegisterProvider) -> None:
    register("gleitzeit.builtins.echo:EchoProvider", name="echo")
