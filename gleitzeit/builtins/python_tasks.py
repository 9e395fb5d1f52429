"""Built-in plugin: serves the functions registered with ``@gleitzeit.task``."""

from __future__ import annotations

from gleitzeit.hookspecs import hookimpl


@hookimpl
def gleitzeit_register_providers(register):
    from gleitzeit.tasks import REGISTRY, build_provider_class

    if REGISTRY:
        register(build_provider_class(dict(REGISTRY)))
