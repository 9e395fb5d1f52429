"""Building provider objects from configuration: one place for the host (every
registered type and every ``providers:`` entry) and for ``gleitzeit provider run``.

Settings are validated here, once, into the provider's declared model; a provider that
cannot be built is reported by name with the reason, and the others are built.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from gleitzeit._validation import describe_errors, suggest
from gleitzeit.config import Config
from gleitzeit.config.models import ProviderInstanceConfig
from gleitzeit.errors import ConfigError, GleitzeitError, PluginError
from gleitzeit.plugins import Plugins
from gleitzeit.provider import Provider

log = logging.getLogger("gleitzeit.host")

__all__ = ["Built", "build_provider", "build_providers", "import_provider_class"]


@dataclass
class Built:
    """A provider built from configuration, and where its definition came from."""

    provider: Provider
    origin: str
    #: Why the provider may not serve (its plugin's settings miss a variable).
    held: str | None = None


def import_provider_class(path: str) -> type[Provider]:
    """``module:Class`` (or ``module.Class``) of a :class:`gleitzeit.Provider` subclass.

    Modules in the working directory are found as ``python -m`` and uvicorn find them:
    ``myprov:Shout`` loads ``./myprov.py`` without ``PYTHONPATH=.``.
    """
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    here = os.getcwd()
    if here not in sys.path:
        sys.path.append(here)  # after installed packages: a local file never shadows one
    module = importlib.import_module(module_name)
    obj = getattr(module, attr)
    if not (isinstance(obj, type) and issubclass(obj, Provider)):
        raise TypeError(f"{path} is not a gleitzeit.Provider subclass")
    return obj


def build_providers(config: Config, plugins: Plugins, errors: dict[str, str]) -> list[Built]:
    """One provider per registered provider type (with its plugin's settings) and one
    per enabled ``providers:`` entry. What cannot be built is recorded in ``errors``
    (by provider name or config path) and left out."""
    plugins.settle()  # provider classes imported, settings validated: failures recorded
    out: list[Built] = []
    for name, ptype in plugins.provider_types.items():
        record = plugins.records[ptype.plugin]
        built = _create(ptype.cls, record.settings, name, f"plugin {ptype.plugin}", errors)
        if built is not None:
            built.held = record.held
            out.append(built)
    for name, entry in config.providers.items():
        clash = entry_problem(plugins, name)
        if clash is not None:
            errors[f"providers.{name}"] = clash
            log.debug(clash)
            continue
        if entry.enabled:
            built = _from_entry(plugins, name, entry, errors)
            if built is not None:
                out.append(built)
    return out


def entry_problem(plugins: Plugins, name: str) -> str | None:
    """Why ``providers.<name>`` cannot be, if it cannot: its name is a plugin's provider."""
    owner = plugins.provider_types.get(name)
    if owner is None:
        return None
    return (
        f"providers.{name}: {name!r} is the name of the {owner.plugin} plugin's provider; "
        f"give this entry another name (configure the plugin's own under plugins.{owner.plugin})"
    )


def check_entries(plugins: Plugins, config: Config) -> list[str]:
    """Every problem of the ``providers:`` entries that loading would meet: a name that
    clashes with a plugin's provider, an unknown type, a class that does not import."""
    plugins.settle()
    problems = []
    for name, entry in config.providers.items():
        clash = entry_problem(plugins, name)
        if clash is not None:
            problems.append(_at(config, ("providers", name), clash))
            continue
        if entry.type is not None and entry.type not in plugins.provider_types:
            problems.append(
                _at(
                    config,
                    ("providers", name, "type"),
                    f"providers.{name}.type: no provider type {entry.type!r}; available: "
                    f"{', '.join(sorted(plugins.provider_types)) or '(none)'}",
                )
            )
        if entry.class_ is not None:
            try:
                import_provider_class(entry.class_)
            except Exception as exc:
                problems.append(
                    _at(
                        config,
                        ("providers", name, "class"),
                        f"providers.{name}.class: cannot import {entry.class_!r}: "
                        f"{type(exc).__name__}: {exc}",
                    )
                )
    return problems


def _at(config: Config, loc: tuple[str, ...], text: str) -> str:
    line = config.locate(loc) if config.source is not None else None
    where = f"{config.source}:{line}: " if line else (f"{config.source}: " if config.source else "")
    return where + text


def build_provider(
    plugins: Plugins, target: str, *, name: str | None = None, settings: Any = None
) -> Provider:
    """The provider ``gleitzeit provider run TARGET`` serves: an installed provider type
    (with its plugin's settings unless ``settings`` are given) or ``module:Class``."""
    if ":" in target:
        try:
            cls = import_provider_class(target)
        except Exception as exc:
            raise ConfigError(
                f"Cannot load provider class {target!r}: {type(exc).__name__}: {exc}",
                hint="give module:Class of a gleitzeit.Provider subclass",
            ) from None
        schema = cls.Settings
    else:
        plugins.settle()
        ptype = plugins.provider_types.get(target)
        if ptype is None:
            known = sorted(plugins.provider_types)
            near = suggest(target, known)
            raise ConfigError(
                f"No provider type {target!r}" + (f"; did you mean {near!r}?" if near else ""),
                hint=f"installed: {', '.join(known) or '(none)'}; or give module:Class",
            )
        cls = ptype.cls
        record = plugins.records[ptype.plugin]
        schema = record.settings_schema
        if settings is None:
            settings = record.settings
    if settings is not None and schema is not None and not isinstance(settings, BaseModel):
        settings = _validate(schema, settings, ("settings",))
    try:
        return cls(settings, name=name)
    except GleitzeitError:
        raise
    except Exception as exc:
        raise PluginError(
            f"could not create provider {name or cls.name!r}: {type(exc).__name__}: {exc}",
            hint=f"{cls.__module__}.{cls.__qualname__}.__init__ raised; --debug shows where",
        ) from exc


def _validate(schema: type[BaseModel], raw: Any, prefix: tuple[str, ...]) -> BaseModel:
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            "Invalid provider settings",
            problems=describe_errors(exc, model=schema, prefix=prefix),
        ) from None


def _create(
    cls: type[Provider], settings: Any, name: str, origin: str, errors: dict[str, str]
) -> Built | None:
    try:
        return Built(cls(settings, name=name), origin)
    except Exception as exc:
        errors[name] = f"could not create provider: {type(exc).__name__}: {exc}"
        log.debug("provider %s: %s", name, errors[name])
        return None


def _from_entry(
    plugins: Plugins, name: str, entry: ProviderInstanceConfig, errors: dict[str, str]
) -> Built | None:
    where = f"providers.{name}"
    schema: type[BaseModel] | None
    if entry.type is not None:
        ptype = plugins.provider_types.get(entry.type)
        if ptype is None:
            near = suggest(entry.type, list(plugins.provider_types))
            errors[where] = f"{where}.type: no provider type {entry.type!r}" + (
                f"; did you mean {near!r}?" if near else ""
            )
            log.debug(errors[where])
            return None
        cls = ptype.cls
        schema = plugins.records[ptype.plugin].settings_schema
    else:
        assert entry.class_ is not None  # the config model requires type or class
        try:
            cls = import_provider_class(entry.class_)
        except Exception as exc:
            errors[where] = f"{where}.class: cannot import {entry.class_!r}: {exc}"
            log.debug(errors[where])
            return None
        schema = cls.Settings
    settings: Any = entry.settings
    if schema is not None:
        try:
            settings = schema.model_validate(entry.settings)
        except ValidationError as exc:
            errors[where] = "; ".join(
                describe_errors(exc, model=schema, prefix=("providers", name, "settings"))
            )
            log.debug(errors[where])
            return None
    return _create(cls, settings, name, f"config {where}", errors)
