"""Hook specifications: the contract between the host and its plugins.

pluggy is synchronous, so hooks *register* things — classes, factories, callables —
through a ``register`` callback, and the host runs the async work inside the
registered objects. A plugin implements any subset of these hooks with functions
marked ``@gleitzeit.hookimpl`` whose names match the specs below.

Every hook is called once per plugin (the host calls each plugin's implementation on
its own, so one broken plugin cannot stop the others).  ``docs/hooks.md`` has a
worked example for each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:  # the hookspecs module itself stays cheap to import
    import click
    from pydantic import BaseModel

    from gleitzeit.health import HealthCheck
    from gleitzeit.host import Host
    from gleitzeit.provider import Provider
    from gleitzeit.routing import Router
    from gleitzeit.transport import Transport

PROJECT = "gleitzeit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class RegisterProvider(Protocol):
    """The ``register`` callback of :func:`gleitzeit_register_providers`."""

    def __call__(self, provider: type[Provider] | str, /, *, name: str | None = None) -> None:
        """``register(ProviderClass)``, or ``register("module:Class", name="...")``:
        the class is imported only when the host needs it, and must be named ``name``."""


@hookspec
def gleitzeit_register_providers(register: RegisterProvider, settings: BaseModel | None) -> None:
    """Register the providers this plugin offers.

    Called once when the plugin is loaded, before any provider starts. For each
    :class:`gleitzeit.Provider` subclass, call either

    * ``register("package.module:ProviderClass", name="myprovider")`` — by reference:
      the module is imported only when the host builds the provider or needs its
      methods or settings, so ``gleitzeit plugins list`` stays quick. The module must
      exist when the plugin loads; when the class is imported, its ``name`` must be
      ``name``. A class that cannot be imported then marks the plugin failed with the
      reason. Use this form for providers in a module of their own (the usual case);
    * ``register(ProviderClass)`` — a class already imported (defined in the entry
      module, or made at run time, e.g. from the plugin's settings).

    The host creates one instance named ``ProviderClass.name`` with this plugin's
    settings, plus any instances named in the ``providers:`` section of
    ``gleitzeit.yaml``.

    ``settings`` is the plugin's section of ``plugins:`` in ``gleitzeit.yaml``,
    validated against :func:`gleitzeit_config_schema` (an instance of that model), or
    ``None`` when the plugin declares no schema.

    Return value is ignored.
    """


@hookspec
def gleitzeit_register_transports(register: Callable[[type[Transport]], None]) -> None:
    """Register transports: the ways the host reaches provider instances.

    Call ``register(TransportClass)`` where ``TransportClass`` subclasses
    :class:`gleitzeit.Transport` and has a unique ``name``. The host creates one
    instance per transport with the host as argument and starts it with the host.
    The built-in ``inprocess`` transport runs providers inside the host's event loop.
    """


@hookspec
def gleitzeit_register_routers(register: Callable[[type[Router]], None]) -> None:
    """Register routing strategies that pick one provider instance per request.

    Call ``register(RouterClass)`` where ``RouterClass`` subclasses
    :class:`gleitzeit.Router` and has a unique ``name``; ``routing.strategy`` in
    ``gleitzeit.yaml`` selects one by that name. Built-ins: ``least-in-flight``
    (default) and ``round-robin``.
    """


@hookspec
def gleitzeit_register_health_checks(register: Callable[[str, HealthCheck], None]) -> None:
    """Register health checks that run against every provider instance.

    Call ``register(name, check)`` where ``check`` is an ``async`` callable taking a
    :class:`gleitzeit.ProviderInstance` and returning a :class:`gleitzeit.HealthReport`
    (or a dict of its fields). Each check runs with the timeout of ``health.timeout``;
    an instance is healthy only when every check says so. The built-in ``provider``
    check asks the provider's own ``health()``.
    """


@hookspec
def gleitzeit_config_schema() -> type[BaseModel] | None:
    """Return the pydantic model that validates this plugin's settings.

    The ``plugins: <name>:`` section of ``gleitzeit.yaml`` is validated against it when
    the plugin loads; a wrong setting marks the plugin ``failed`` with the file, field
    path and value at fault. The validated model instance is handed to
    :func:`gleitzeit_register_providers` as ``settings``.

    Optional: without this hook, the ``Settings`` model of the provider class the
    plugin registers is its schema (settings are declared once, on the class), and
    :func:`gleitzeit_register_providers` gets ``settings=None``.
    """


@hookspec
def gleitzeit_startup(host: Host) -> Awaitable[None] | None:
    """Called after the host has started its transports and providers.

    May return an awaitable, which the host awaits. An exception is logged and
    recorded against the plugin; it does not stop the host.
    """


@hookspec
def gleitzeit_shutdown(host: Host) -> Awaitable[None] | None:
    """Called when the host stops, before providers and transports stop.

    May return an awaitable, which the host awaits.
    """


@hookspec
def gleitzeit_register_commands(cli: click.Group) -> None:
    """Add commands to the ``gleitzeit`` command line.

    ``cli`` is the top-level ``click.Group``; call ``cli.add_command(...)`` or use
    ``@cli.command()`` / ``@cli.group()``. Only called for enabled plugins, when the
    command line starts.
    """
