"""Loading plugins into one pluggy manager, each in isolation, and collecting what
they register.

A plugin goes through: import (only if enabled) -> pluggy registration and hook
validation -> settings validation -> registration hooks. A failure at any step marks
that plugin ``failed`` with its reason, removes whatever it registered, and the host
goes on with the rest; ``GLEITZEIT_STRICT_PLUGINS=1`` turns failures into an error.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import os
import sys
import time
import types
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import pluggy

from gleitzeit import hookspecs
from gleitzeit._discovery import installed_plugins
from gleitzeit._validation import describe_errors, short_repr, suggest
from gleitzeit.config.plugin_view import DefaultPluginConfig, PluginConfig
from gleitzeit.errors import PluginError
from gleitzeit.kinds import KINDS

if TYPE_CHECKING:  # pydantic and the provider classes load when a provider is needed
    from pydantic import BaseModel

    from gleitzeit.health import HealthCheck
    from gleitzeit.provider import Provider
    from gleitzeit.routing import Router
    from gleitzeit.transport import Transport

STRICT_ENV = "GLEITZEIT_STRICT_PLUGINS"
ONLY_ENV = "GLEITZEIT_PLUGINS"
TRACE_ENV = "GLEITZEIT_TRACE_HOOKS"

#: The test kit's module: while a test registers plugins with
#: ``gleitzeit.testing.registered_plugin``, every load adds them. The list lives there;
#: nothing is looked up unless the test kit was imported.
_TEST_KIT = "gleitzeit.testing.helpers"

_REGISTRATION_HOOKS = (
    "gleitzeit_register_providers",
    "gleitzeit_register_transports",
    "gleitzeit_register_routers",
    "gleitzeit_register_health_checks",
)


#: The hook specifications alone: each plugin gets a manager of its own, and pluggy reads
#: every attribute of what it is given (the module's imports too) to find them.
_SPECS = types.ModuleType(hookspecs.__name__, hookspecs.__doc__)
_SPEC_NAMES = frozenset(n for n in dir(hookspecs) if n.startswith("gleitzeit_"))
for _name in _SPEC_NAMES:
    setattr(_SPECS, _name, getattr(hookspecs, _name))


class _Manager(pluggy.PluginManager):
    """pluggy's manager, finding the hooks of a module plugin with a look into the
    module's namespace: pluggy's own search reads every attribute through
    ``inspect.getattr_static``, which is most of what registering a plugin costs."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self._marker = hookspecs.PROJECT + "_impl"

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        if type(plugin) is types.ModuleType:
            value = plugin.__dict__.get(name)
            if inspect.isfunction(value):  # a module's def: what getattr_static finds
                opts = getattr(value, self._marker, None)
                return opts if isinstance(opts, dict) else None
            if not isinstance(value, (staticmethod, classmethod, types.MethodType)):
                return None  # data, classes, modules: never hooks
        return super().parse_hookimpl_opts(plugin, name)


TRUTHY = frozenset({"1", "true", "yes", "on"})


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in TRUTHY


def _only_from_env() -> set[str] | None:
    value = os.environ.get(ONLY_ENV)
    if value is None:
        return None
    return {n.strip() for n in value.split(",") if n.strip()}


class PluginRecord:
    """What the host knows of one plugin, loaded or not.

    A plain class, not a dataclass: a dataclass's methods are generated and compiled
    at every import, which every ``gleitzeit`` command would pay for."""

    def __init__(
        self,
        name: str,
        *,
        distribution: str | None = None,
        version: str | None = None,
        status: str = "disabled",
        builtin: bool = False,
        entry_point: str | None = None,
        error: str | None = None,
        config_error: bool = False,
    ) -> None:
        self.name = name
        self.distribution = distribution
        self.version = version
        self.status = status  # loaded | disabled | failed
        self.builtin = builtin
        self.entry_point = entry_point
        self.error = error
        #: True when the failure comes from the plugin's settings in gleitzeit.yaml.
        self.config_error = config_error
        #: One line per problem in the plugin's settings (file:line: field: what).
        self.config_problems: list[str] = []
        #: Problems that did not stop the plugin from loading.
        self.warnings: list[str] = []
        #: Why this plugin's providers cannot serve (an unset ${VAR} in its settings):
        #: they are created, but held down with this reason until it is fixed.
        self.held: str | None = None
        self.hooks: list[str] = []
        self.providers: list[str] = []
        self.transports: list[str] = []
        self.routers: list[str] = []
        self.health_checks: list[str] = []
        self.obj: Any = None
        #: This plugin alone in a pluggy manager of its own: its hooks are called through
        #: it, so a plugin that raises cannot stop another's implementation.
        self.caller: pluggy.PluginManager | None = None
        self._settings: Any = None
        self._settings_schema: type[BaseModel] | None = None
        #: Set while this plugin's provider classes are imported and its settings
        #: validated only when first needed (see :meth:`Plugins.settle`).
        self._settle: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return (
            f"PluginRecord(name={self.name!r}, distribution={self.distribution!r}, "
            f"version={self.version!r}, status={self.status!r}, error={self.error!r})"
        )

    @property
    def settings(self) -> Any:
        """The plugin's validated settings (its ``plugins:`` section), or ``None``."""
        if self._settle is not None:
            self._settle()
        return self._settings

    @settings.setter
    def settings(self, value: Any) -> None:
        self._settings = value

    @property
    def settings_schema(self) -> type[BaseModel] | None:
        """The pydantic model of the plugin's settings, when it declares one."""
        if self._settle is not None:
            self._settle()
        return self._settings_schema

    @settings_schema.setter
    def settings_schema(self, value: type[BaseModel] | None) -> None:
        self._settings_schema = value

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "builtin": self.builtin,
            "hooks": list(self.hooks),
            "providers": list(self.providers),
            "transports": list(self.transports),
            "routers": list(self.routers),
            "health_checks": list(self.health_checks),
            "error": self.error,
            "warnings": list(self.warnings),
        }


class ProviderType:
    """A provider type: its class, or the ``module:Class`` it is imported from when
    first needed, and the plugin that registered it."""

    __slots__ = ("_cls", "_load", "plugin", "ref")

    def __init__(
        self,
        plugin: str,
        *,
        cls: type[Provider] | None = None,
        ref: str | None = None,
        load: Callable[[], type[Provider]] | None = None,
    ) -> None:
        self.plugin = plugin
        #: ``module:Class`` when the plugin registered the provider by reference.
        self.ref = ref
        self._cls = cls
        self._load = load

    @property
    def cls(self) -> type[Provider]:
        """The provider class, imported (and checked) on first use; raises
        :class:`PluginError` when it cannot be."""
        if self._cls is None:
            assert self._load is not None
            self._cls = self._load()
        return self._cls

    @property
    def imported(self) -> bool:
        return self._cls is not None


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _prints_to_stderr(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """What plugin code prints while ``fn`` runs (at import, in a hook) goes to stderr:
    stdout carries the commands' own output (``--json``, ``mcp serve``'s protocol)."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with contextlib.redirect_stdout(sys.stderr):
            return fn(*args, **kwargs)

    return wrapper


class Plugins:
    """The plugins of one host: records, the pluggy manager, and what they registered."""

    def __init__(self, config: PluginConfig | None = None, *, lazy: bool = False) -> None:
        #: The configuration's plugin sections (the defaults when there is no file).
        self.config: PluginConfig = config if config is not None else DefaultPluginConfig()
        #: False: each plugin's provider classes are imported and its settings validated
        #: as it loads. True: that waits until they are needed (:meth:`settle`), for a
        #: plugin with no ``plugins:`` section, so listing plugins imports no provider.
        self.lazy = lazy
        #: The hook specifications. Each plugin is checked against them here and then
        #: unregistered (it is called through a manager of its own), so that adding a
        #: plugin does not walk the implementations of every plugin added before it.
        self.pm: pluggy.PluginManager = _Manager()
        self.pm.add_hookspecs(_SPECS)
        #: name -> plugin object, and id(object) -> name, of every plugin that passed that
        #: check and has not failed since: a name, or an object, is added once.
        self._registered: dict[str, Any] = {}
        self._registered_ids: dict[int, str] = {}
        self.records: dict[str, PluginRecord] = {}
        self.provider_types: dict[str, ProviderType] = {}
        self.transports: dict[str, type[Transport]] = {}
        self.routers: dict[str, type[Router]] = {}
        self.health_checks: dict[str, HealthCheck] = {}
        self.trace = _truthy(os.environ.get(TRACE_ENV))

    # -- loading ---------------------------------------------------------------------

    @classmethod
    @_prints_to_stderr
    def load(
        cls,
        config: PluginConfig | None = None,
        *,
        builtins: bool = True,
        installed: bool = True,
        extra: list[tuple[str, Any]] | None = None,
        strict: bool | None = None,
        lazy: bool = False,
    ) -> Plugins:
        """Load the built-in plugins, the enabled installed ones, and ``extra``
        ``(name, object)`` pairs (for tests and scripts). ``lazy``: see :attr:`lazy`."""
        strict = strict if strict is not None else _truthy(os.environ.get(STRICT_ENV))
        self = cls(config, lazy=lazy and not strict)
        only = _only_from_env()
        if builtins:
            from gleitzeit.builtins import builtin_plugins

            for name, obj in builtin_plugins():
                rec = PluginRecord(name=name, distribution="gleitzeit", builtin=True)
                from gleitzeit._version import __version__

                rec.version = __version__
                if name == "echo" and not self.config.plugin_enabled(name):
                    self.records[name] = rec  # the demo provider can be switched off
                    continue
                self.add(rec, obj)
        if installed:
            for ep in installed_plugins():
                rec = PluginRecord(
                    name=ep.name,
                    distribution=ep.distribution,
                    version=ep.version,
                    entry_point=ep.value,
                )
                if ep.name in self.records:
                    rec.status, rec.error = (
                        "failed",
                        (
                            f"the name {ep.name!r} is taken by another plugin; "
                            f"uninstall one of them ({ep.distribution})"
                        ),
                    )
                    self.records[f"{ep.name} ({ep.distribution})"] = rec
                    continue
                enabled = (
                    (ep.name in only) if only is not None else self.config.plugin_enabled(ep.name)
                )
                if not enabled:
                    self.records[ep.name] = rec
                    continue
                try:
                    obj = ep.load()
                except BaseException as exc:
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    self._fail(rec, f"import failed: {type(exc).__name__}: {exc}")
                    self.records[ep.name] = rec
                    continue
                self.add(rec, obj)
        kit = sys.modules.get(_TEST_KIT)
        registered = kit.registered_plugins() if kit is not None else []
        for name, obj in [*(extra or []), *registered]:
            self.add(PluginRecord(name=name), obj)
        if installed and only:
            self._note_unknown_only(only)
        self._note_unknown_sections()
        if strict:
            failed = self.failed()
            if failed:
                raise PluginError(
                    "Plugins failed to load (strict mode): "
                    + "; ".join(f"{r.name}: {r.error}" for r in failed),
                    hint=f"fix or uninstall them, or unset {STRICT_ENV}",
                )
        return self

    def _note_unknown_sections(self) -> None:
        """A ``plugins:`` section for a plugin that is not installed is a failure to show."""
        for name in self.config.plugins:
            if name in self.records or not self.config.plugin_enabled(name):
                continue
            near = suggest(name, list(self.records))
            rec = PluginRecord(name=name, status="failed", config_error=True)
            where = self._where(("plugins", name))
            rec.error = f"configured in {self.config.source or 'the config'} but not installed" + (
                f"; did you mean {near!r}?" if near else f"; try `pip install gleitzeit-{name}`"
            )
            rec.config_problems = [f"{where}plugins.{name}: {rec.error}"]
            self.records[name] = rec

    def _note_unknown_only(self, only: set[str]) -> None:
        """A name in GLEITZEIT_PLUGINS that no plugin has is shown, with a suggestion,
        rather than silently enabling nothing."""
        known = [n for n, r in self.records.items() if not r.builtin]
        for name in sorted(only - set(self.records)):
            near = suggest(name, known)
            self.records[name] = PluginRecord(
                name=name,
                status="failed",
                error=f"{ONLY_ENV} names {name!r}, which is not installed"
                + (f"; did you mean {near!r}?" if near else ""),
            )

    def _fail(self, rec: PluginRecord, reason: str) -> None:
        rec.status, rec.error = "failed", reason
        if rec.obj is not None and self._registered.get(rec.name) is rec.obj:
            del self._registered[rec.name]
            del self._registered_ids[id(rec.obj)]
        rec.caller = None
        self._forget(rec)

    def _own_manager(self, name: str, obj: Any) -> pluggy.PluginManager:
        # No specifications here: self.pm checked the plugin's implementations against
        # them already (and none has options), and this manager only calls them.
        own = _Manager()
        own.register(obj, name=name)
        if self.trace:
            _trace_calls(own, name)
        return own

    def _forget(self, rec: PluginRecord) -> None:
        for table, names in (
            (self.provider_types, rec.providers),
            (self.transports, rec.transports),
            (self.routers, rec.routers),
            (self.health_checks, rec.health_checks),
        ):
            for n in names:
                table.pop(n, None)
            names.clear()

    def add(self, rec: PluginRecord, obj: Any) -> PluginRecord:
        """Register one plugin object; on any failure the record says why."""
        self.records[rec.name] = rec
        rec.obj = obj
        if rec.name in self._registered:
            self._fail(rec, f"Plugin name already registered: {rec.name}={obj!r}")
            return rec
        if id(obj) in self._registered_ids:
            self._fail(rec, f"Plugin already registered under a different name: {rec.name}={obj!r}")
            return rec
        try:
            self.pm.register(obj, name=rec.name)  # checks the implementations' arguments
        except ValueError as exc:
            self._fail(rec, str(exc))
            return rec
        except pluggy.PluginValidationError as exc:
            self._fail(rec, f"invalid hook implementation: {exc}")
            return rec
        self.pm.unregister(obj)
        self._registered[rec.name] = obj
        self._registered_ids[id(obj)] = rec.name
        # The plugin's hooks, read from its own manager: asking the host's manager
        # walks every plugin's implementations, which grows with the plugins installed.
        rec.caller = self._own_manager(rec.name, obj)
        callers = rec.caller.get_hookcallers(obj) or []
        unknown = [hc.name for hc in callers if hc.name not in _SPEC_NAMES]
        if unknown:
            specs = sorted(_SPEC_NAMES)
            parts = []
            for n in unknown:
                near = suggest(n, specs)
                parts.append(f"{n!r}" + (f" (did you mean {near!r}?)" if near else ""))
            self._fail(rec, f"unknown hook {', '.join(parts)}; see docs/hooks.md for the hooks")
            return rec
        wrapped = [
            hc.name
            for hc in callers
            for impl in hc.get_hookimpls()
            if impl.wrapper or impl.hookwrapper
        ]
        if wrapped:
            self._fail(
                rec,
                f"hook {', '.join(sorted(wrapped))}: wrapper=True and hookwrapper=True are not "
                "supported — Gleitzeit calls each plugin's implementation on its own, so that "
                "one failing plugin cannot stop the others; drop the option (tryfirst and "
                "trylast work)",
            )
            return rec
        rec.hooks = sorted(hc.name for hc in callers)
        # A plugin declares its settings once: through the config-schema hook, or as
        # the Settings model of the provider class it registers. In the second case
        # the classes are registered first (their hook gets settings=None) and the
        # section is validated against the class's model afterwards.
        declared = self._impl_for(rec, "gleitzeit_config_schema") is not None
        # Loading lazily, a plugin with no section to validate has its settings
        # validated (and its provider classes imported) when they are first needed,
        # unless its register hook takes the settings.
        wait = (
            self.lazy
            and not self.config.plugin_section(rec.name)
            and not (declared and self._takes_settings(rec))
        )
        try:
            if not declared or wait:
                self._run_registrations(rec)
            # Unset ${VARS} were left out of the section; report them, and let the
            # plugin load so that its provider can say what is missing when it starts.
            rec.config_problems = self.config.plugin_problems(rec.name)
            rec.warnings = list(rec.config_problems)
            rec.held = "; ".join(rec.config_problems) or None
            if not wait:
                self._import_providers(rec)
                self._validate_settings(rec)
            if declared and not wait:
                self._run_registrations(rec)
        except PluginError as exc:
            self._fail(rec, str(exc))
            return rec
        rec.status = "loaded"
        if wait:
            rec._settle = lambda: self.settle(rec)
        return rec

    @_prints_to_stderr
    def settle(self, rec: PluginRecord | None = None) -> None:
        """Finish loading ``rec`` (every loaded plugin when ``None``) where :attr:`lazy`
        left it: import its provider classes and validate its settings. A plugin that
        fails here is marked ``failed`` with the reason, as if it had failed to load."""
        for r in [rec] if rec is not None else list(self.records.values()):
            if r._settle is None:
                continue
            r._settle = None
            if r.status != "loaded":
                continue
            try:
                self._import_providers(r)
                self._validate_settings(r)
            except PluginError as exc:
                self._fail(r, str(exc))

    def _takes_settings(self, rec: PluginRecord) -> bool:
        impl = self._impl_for(rec, "gleitzeit_register_providers")
        return impl is not None and "settings" in impl.argnames

    def _import_providers(self, rec: PluginRecord) -> None:
        """Import the provider classes ``rec`` registered by reference (raises
        PluginError naming the first that cannot be)."""
        for name in list(rec.providers):
            self.provider_types[name].cls  # noqa: B018 (imports and checks the class)

    def _validate_settings(self, rec: PluginRecord) -> None:
        try:
            rec.settings = self._settings_for(rec)
        except PluginError:
            rec.config_error = True
            raise

    def _settings_for(self, rec: PluginRecord) -> Any:
        section = self.config.plugin_section(rec.name) or {}
        schema = self._call_one(rec, "gleitzeit_config_schema", {})
        if schema is None:
            schema = self._provider_settings(rec)
        if schema is None:
            if section:
                rec.config_problems += [
                    f"{self._where(('plugins', rec.name))}plugins.{rec.name}: this plugin "
                    f"takes no settings, got {', '.join(sorted(section))}"
                ]
                raise PluginError(rec.config_problems[-1])
            return None
        from pydantic import BaseModel, ValidationError

        if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
            raise PluginError(
                f"gleitzeit_config_schema returned {short_repr(schema)}, expected a pydantic "
                "model class"
            )
        rec.settings_schema = schema
        try:
            return schema.model_validate(section)
        except ValidationError as exc:
            source = str(self.config.source) if self.config.source else "<config>"
            lines = describe_errors(
                exc,
                model=schema,
                prefix=("plugins", rec.name),
                source=source,
                locate=self.config.locate,
            )
            rec.config_problems += lines
            raise PluginError("invalid settings: " + "; ".join(lines)) from None

    def _provider_settings(self, rec: PluginRecord) -> type[BaseModel] | None:
        """The Settings model of the provider classes ``rec`` registered, when they
        declare one (several classes must agree on it)."""
        models = {
            cls.Settings
            for cls in (self.provider_types[n].cls for n in rec.providers)
            if cls.Settings is not None
        }
        if len(models) > 1:
            names = ", ".join(sorted(m.__qualname__ for m in models))
            raise PluginError(
                f"its providers declare different Settings models ({names}); "
                "return the plugin's one model from gleitzeit_config_schema"
            )
        return next(iter(models), None)

    def _where(self, loc: tuple[Any, ...]) -> str:
        if self.config.source is None:
            return ""
        line = self.config.locate(loc)
        return f"{self.config.source}:{line}: " if line else f"{self.config.source}: "

    # -- registration callbacks ------------------------------------------------------

    def _run_registrations(self, rec: PluginRecord) -> None:
        registers: dict[str, Callable[..., Any]] = {
            "gleitzeit_register_providers": lambda provider, *, name=None: self._register_provider(
                rec, provider, name
            ),
            "gleitzeit_register_transports": lambda cls: self._register_named(
                rec, cls, "transport", self.transports, rec.transports
            ),
            "gleitzeit_register_routers": lambda cls: self._register_named(
                rec, cls, "router", self.routers, rec.routers
            ),
            "gleitzeit_register_health_checks": lambda name, check: self._register_check(
                rec, name, check
            ),
        }
        for hook in _REGISTRATION_HOOKS:
            kwargs: dict[str, Any] = {"register": registers[hook]}
            if hook == "gleitzeit_register_providers":
                kwargs["settings"] = rec._settings
            self._call_one(rec, hook, kwargs)

    def _register_provider(self, rec: PluginRecord, provider: Any, name: Any) -> None:
        """``register(ProviderClass)``, or ``register("module:Class", name=...)``: the
        class imported only when first needed, the declared name checked then."""
        if isinstance(provider, str):
            _check_reference(provider)
            if not name or not isinstance(name, str):
                raise PluginError(
                    f"register({provider!r}) needs the provider's name: "
                    f"register({provider!r}, name=...)"
                )
            self._add_provider_type(
                rec,
                name,
                ProviderType(
                    rec.name, ref=provider, load=lambda: self._import_class(provider, name)
                ),
            )
            return
        if name is not None and name != getattr(provider, "name", None):
            raise PluginError(
                f"register() got name={name!r} with {short_repr(provider)}; name= goes with "
                "a 'module:Class' reference (a class names itself)"
            )
        cls = _checked_provider_class(provider, None)
        self._add_provider_type(rec, cls.name, ProviderType(rec.name, cls=cls))

    def _add_provider_type(self, rec: PluginRecord, name: str, ptype: ProviderType) -> None:
        owner = self.provider_types.get(name)
        if owner is not None:
            raise PluginError(f"provider name {name!r} is already registered by {owner.plugin!r}")
        self.provider_types[name] = ptype
        rec.providers.append(name)

    @staticmethod
    def _import_class(ref: str, name: str) -> type[Provider]:
        module_name, _, qualname = ref.partition(":")
        obj: Any = None
        looking_for: str | None = None  # set once the module is imported
        try:
            obj = importlib.import_module(module_name)
            for looking_for in qualname.split("."):
                obj = getattr(obj, looking_for)
        except Exception as exc:
            hint = ""
            if isinstance(exc, AttributeError) and looking_for is not None:
                hint = _missing_class_hint(obj, looking_for)
            raise PluginError(
                f"provider {name!r}: cannot import {ref}: {type(exc).__name__}: {exc}{hint}"
            ) from exc
        return _checked_provider_class(obj, name)

    def _register_named(
        self,
        rec: PluginRecord,
        cls: Any,
        what: str,
        table: dict[str, Any],
        names: list[str],
    ) -> None:
        base: type[Transport] | type[Router]
        if what == "transport":
            from gleitzeit.transport import Transport as base
        else:
            from gleitzeit.routing import Router as base
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(
                f"register() got {short_repr(cls)}; expected a {base.__name__} subclass"
            )
        if not cls.name:
            raise PluginError(f"{what} class {cls.__qualname__} has no 'name'")
        if cls.name in table:
            raise PluginError(f"{what} name {cls.name!r} is already registered")
        table[cls.name] = cls
        names.append(cls.name)

    def _register_check(self, rec: PluginRecord, name: Any, check: Any) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(
                f"health check name must be a non-empty string, got {short_repr(name)}"
            )
        if not callable(check):
            raise PluginError(f"health check {name!r} is not callable")
        if name in self.health_checks:
            raise PluginError(f"health check name {name!r} is already registered")
        self.health_checks[name] = check
        rec.health_checks.append(name)

    # -- calling hooks ---------------------------------------------------------------

    def _impl_for(self, rec: PluginRecord, hook: str) -> pluggy.HookImpl | None:
        if rec.caller is None:
            return None
        caller = getattr(rec.caller.hook, hook, None)
        if caller is None:  # the plugin does not implement it
            return None
        impls = caller.get_hookimpls()
        return impls[0] if impls else None

    def _call_one(self, rec: PluginRecord, hook: str, kwargs: dict[str, Any]) -> Any:
        """Call ``rec``'s implementation of ``hook`` (through pluggy, alone); errors
        become PluginError."""
        if self._impl_for(rec, hook) is None:
            return None
        assert rec.caller is not None
        try:
            results = getattr(rec.caller.hook, hook)(**kwargs)
        except PluginError as exc:
            raise PluginError(f"{hook}: {exc.message}") from exc
        except Exception as exc:
            raise PluginError(f"{hook} raised {type(exc).__name__}: {exc}") from exc
        # pluggy collects the non-None results of the (here: one) implementation.
        return results[0] if results else None

    @_prints_to_stderr
    def call_each(self, hook: str, **kwargs: Any) -> list[tuple[PluginRecord, Any]]:
        """Call every loaded plugin's implementation of ``hook`` in isolation, in
        pluggy's order of precedence: ``tryfirst`` ones first, ``trylast`` ones last,
        the rest in load order.

        Returns ``(record, result)`` pairs; a plugin that raises gets ``(record, exc)``
        with the exception, so the caller decides what a failure means.
        """
        ranked: list[tuple[int, PluginRecord]] = []
        for rec in list(self.records.values()):
            impl = self._impl_for(rec, hook) if rec.status == "loaded" else None
            if impl is not None:
                ranked.append((0 if impl.tryfirst else 2 if impl.trylast else 1, rec))
        out: list[tuple[PluginRecord, Any]] = []
        for _, rec in sorted(ranked, key=lambda pair: pair[0]):
            try:
                out.append((rec, self._call_one(rec, hook, kwargs)))
            except PluginError as exc:
                out.append((rec, exc))
        return out

    # -- queries ---------------------------------------------------------------------

    def loaded(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status == "loaded"]

    def failed(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status == "failed"]

    def listing(self, *, include_builtins: bool = False) -> list[PluginRecord]:
        return [r for r in self.records.values() if include_builtins or not r.builtin]


def _missing_class_hint(owner: Any, missing: str) -> str:
    """For a reference to a name ``owner`` (a module or class) lacks: the provider
    class meant ("; did you mean 'Greeter'?"), or the ones it has."""
    import difflib

    from gleitzeit.provider import Provider

    classes = [
        key
        for key, value in getattr(owner, "__dict__", {}).items()
        if isinstance(value, type) and issubclass(value, Provider) and value is not Provider
    ]
    close = difflib.get_close_matches(missing, classes, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    if classes:
        return f"; its provider classes: {', '.join(sorted(classes))}"
    return f"; {getattr(owner, '__name__', owner)!s} has no provider class"


def _check_reference(ref: str) -> None:
    """A ``module:Class`` reference whose module can be found, without importing it
    (its parent packages are imported to look)."""
    module_name, sep, qualname = ref.partition(":")
    if not (
        sep
        and all(p.isidentifier() for p in module_name.split("."))
        and all(p.isidentifier() for p in qualname.split("."))
    ):
        raise PluginError(f"register() got {ref!r}; expected a provider class or 'module:Class'")
    try:
        found = importlib.util.find_spec(module_name)
    except Exception as exc:  # a parent package that fails to import, or is no package
        raise PluginError(
            f"register({ref!r}): cannot look for module {module_name!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if found is None:
        raise PluginError(f"register({ref!r}): no module named {module_name!r}")


def _checked_provider_class(cls: Any, declared: str | None) -> type[Provider]:
    """``cls`` when it is a usable provider class (named ``declared``, when given)."""
    from gleitzeit.provider import Provider

    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise PluginError(
            f"register() got {short_repr(cls)}; expected a gleitzeit.Provider subclass"
        )
    name = cls.name
    if not name or not isinstance(name, str):
        raise PluginError(f"provider class {cls.__qualname__} has no 'name'")
    if declared is not None and name != declared:
        raise PluginError(
            f"provider {declared!r} was registered as {cls.__module__}:{cls.__qualname__}, "
            f"whose name is {name!r}; register it with name={name!r}"
        )
    if cls.kind not in KINDS:
        raise PluginError(
            f"provider {name!r} has kind {cls.kind!r}; expected one of {', '.join(KINDS)}"
        )
    if not cls.__methods__:
        raise PluginError(f"provider {name!r} declares no methods (use @gleitzeit.method)")
    return cls


def _trace_calls(pm: pluggy.PluginManager, plugin: str) -> None:
    """GLEITZEIT_TRACE_HOOKS=1: print every hook call of ``pm`` through pluggy's hook-call
    monitoring — hook, plugin, arguments, result or error, and time taken."""
    started: list[float] = []

    def before(hook: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
        started.append(time.perf_counter())

    def after(
        outcome: pluggy.Result[Any],
        hook: str,
        impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, Any],
    ) -> None:
        ms = (time.perf_counter() - started.pop()) * 1000
        wanted = {a for impl in impls for a in impl.argnames}
        shown = ", ".join(f"{k}={_trace_repr(v)}" for k, v in kwargs.items() if k in wanted)
        error = outcome.exception
        result = (
            f"raised {type(error).__name__}: {error}"
            if error
            else f"-> {_trace_repr(outcome.get_result())}"
        )
        print(f"[hook] {hook} plugin={plugin} ({shown}) {result} [{ms:.2f} ms]", file=sys.stderr)

    pm.add_hookcall_monitoring(before, after)


def _trace_repr(value: Any) -> str:
    if callable(value) and getattr(value, "__name__", "") == "<lambda>":
        return "<register>"
    if inspect.isclass(value):
        return value.__qualname__
    return short_repr(value, 80)
