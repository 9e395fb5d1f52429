"""The provider base class: one async class, run in-process or as a remote process.

A provider declares its methods with :func:`method`::

    class Weather(gleitzeit.Provider):
        name = "weather"
        kind = "tool"

        @gleitzeit.method("weather/today", params=City)
        async def today(self, params: City) -> dict:
            return {"result": ...}

An ``async def`` handler answers ``invoke``; an ``async def`` *generator* handler of
the same method name answers ``stream``. A method with only a stream handler can still
be invoked (the stream is collected into one result).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from gleitzeit._validation import describe_errors, suggest
from gleitzeit.errors import (
    ConfigError,
    GleitzeitError,
    InvalidParamsError,
    MethodNotFoundError,
    PluginError,
    ProviderError,
)
from gleitzeit.methods import Kind, MethodDescription, MethodIndex
from gleitzeit.results import collect_stream

_MARK = "__gleitzeit_method__"


def awaited(provider: Provider, hook: str) -> Awaitable[Any]:
    """``provider.<hook>()`` (start, stop, health, on_connected, on_disconnected), which
    the host awaits: one written without ``async`` is named, not a bare TypeError."""
    result = getattr(provider, hook)()
    if not inspect.isawaitable(result):
        raise PluginError(
            f"{type(provider).__qualname__}.{hook} must be 'async def' (the host awaits "
            f"it); it returned {type(result).__name__}"
        )
    return result


def _param_path(loc: tuple[int | str, ...]) -> str:
    """A field's place as a caller writes it: ``messages[0].role``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


@dataclass
class MethodSpec:
    """What a provider says about one of its methods."""

    name: str
    description: str = ""
    params: type[BaseModel] | None = None
    invoke_handler: str | None = None
    stream_handler: str | None = None

    @property
    def streaming(self) -> bool:
        return self.stream_handler is not None

    def schema(self) -> dict[str, Any]:
        """JSON Schema of the method's parameters."""
        if self.params is None:
            return {"type": "object"}
        try:
            return self.params.model_json_schema()
        except Exception as exc:
            raise PluginError(
                f"method {self.name!r}: its params model {self.params.__name__} has no "
                f"JSON Schema ({type(exc).__name__}: {str(exc).splitlines()[0]})",
                hint="give every field a type pydantic can describe in JSON Schema, or "
                "leave params out and validate the dict in the method",
            ) from exc

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "streaming": self.streaming,
            "params_schema": self.schema(),
        }

    def description_model(self) -> MethodDescription:
        """The method as instances advertise it and the wire carries it."""
        return MethodDescription(
            streaming=self.streaming,
            description=self.description[:2000],
            params_schema=self.schema(),
        )


def method(
    name: str, *, params: type[BaseModel] | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a provider method named ``name`` (protocol-prefixed, e.g. ``llm/chat``).

    ``params`` is a pydantic model that validates the request's parameters; the handler
    receives the validated model instance (or the raw dict when ``params`` is None).
    """
    if "/" not in name:
        raise ValueError(f"method name {name!r} needs a protocol prefix, like 'tool/{name}'")

    if params is not None and not (
        isinstance(params, type) and hasattr(params, "model_json_schema")
    ):
        raise TypeError(
            f"@method({name!r}, params=...) takes a pydantic model class (or None for the "
            f"raw dict), got {type(params).__name__}: write the parameters as a model "
            "(class Params(pydantic.BaseModel): ...); its JSON Schema is made from it"
        )

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)):
            raise TypeError(
                f"@method({name!r}) needs an 'async def' function or async generator, "
                f"got {fn.__qualname__}"
            )
        doc = description if description is not None else (inspect.getdoc(fn) or "")
        setattr(fn, _MARK, (name, params, doc.split("\n\n")[0].strip()))
        return fn

    return mark


_RESERVED = frozenset(
    {
        "start",
        "stop",
        "health",
        "invoke",
        "stream",
        "describe",
        "registration",
        "resolve_method",
        "method_specs",
        "method_names",
        "on_connected",
        "on_disconnected",
        "methods_changed",
    }
)


class Provider:
    """Base class of every provider.

    Class attributes describe the provider; subclasses set at least ``name`` and
    ``kind``. ``models`` and ``capabilities`` may be replaced per instance (for example
    after discovering models in :meth:`start`).
    """

    name: str = ""
    kind: ClassVar[Kind] = "tool"
    description: ClassVar[str] = ""
    version: ClassVar[str] = ""
    models: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    #: Methods that cannot run without a ``model`` in the request (for example an LLM
    #: provider with no default model). Routing skips this provider for such requests.
    model_required: tuple[str, ...] = ()
    #: Optional pydantic model of the provider's settings: ``None`` or a dict given to
    #: the constructor is validated into it (so ``self.settings`` is always the model).
    Settings: ClassVar[type[BaseModel] | None] = None
    #: True for a provider that learns some of its methods only in :meth:`start` (an
    #: MCP server's tools, say): the host then starts it for a request whose method no
    #: other instance offers, re-reads ``method_specs()`` once it has started, and again
    #: whenever the provider calls :meth:`methods_changed`.
    dynamic_methods: ClassVar[bool] = False
    #: False for a provider whose failures are its callers' own work (the functions of
    #: ``@gleitzeit.task``): they are counted, but never take the provider out of
    #: routing (``routing.failure_threshold`` and ``cooldown`` do not apply to it).
    cools_down: ClassVar[bool] = True

    __methods__: ClassVar[dict[str, MethodSpec]] = {}
    __method_index__: ClassVar[MethodIndex] = MethodIndex()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        specs: dict[str, MethodSpec] = {}
        for base in reversed(cls.__mro__[1:]):
            for spec in getattr(base, "__methods__", {}).values():
                specs[spec.name] = MethodSpec(**spec.__dict__)
        for attr, fn in cls.__dict__.items():
            mark = getattr(fn, _MARK, None)
            if mark is None:
                continue
            if attr in _RESERVED:
                raise TypeError(
                    f"{cls.__qualname__}.{attr}: a method handler may not be named {attr!r}, "
                    f"which Provider itself uses; rename the function (the method name "
                    f"{mark[0]!r} stays as it is)"
                )
            mname, params, doc = mark
            spec = specs.setdefault(mname, MethodSpec(name=mname))
            if params is not None:
                spec.params = params
            if doc and not spec.description:
                spec.description = doc
            if inspect.isasyncgenfunction(fn):
                spec.stream_handler = attr
            else:
                spec.invoke_handler = attr
        cls.__methods__ = specs
        cls.__method_index__ = MethodIndex(specs)

    def __init__(self, settings: Any = None, *, name: str | None = None) -> None:
        schema = type(self).Settings
        if schema is not None and (settings is None or isinstance(settings, dict)):
            # One place turns missing or raw settings into the declared model.
            try:
                settings = schema.model_validate(settings or {})
            except ValidationError as exc:
                raise ConfigError(
                    f"Invalid settings for provider {name or type(self).name!r}",
                    problems=describe_errors(exc, model=schema),
                ) from None
        self.settings = settings
        #: Called by :meth:`methods_changed`; set by the transport serving a provider
        #: with ``dynamic_methods``.
        self.methods_listener: Callable[[], None] | None = None
        # Instance attributes shadow the class defaults so each instance can differ.
        self.name = name or type(self).name
        self.models = tuple(type(self).models)
        self.capabilities = tuple(type(self).capabilities)
        self.model_required = tuple(type(self).model_required)

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Prepare the provider (open clients, discover models). Called once per start."""

    async def stop(self) -> None:
        """Release what :meth:`start` acquired. May be called more than once."""

    async def on_connected(self) -> None:
        """Called when this provider, run remotely, has (re)registered with a server."""

    async def on_disconnected(self) -> None:
        """Called when this provider, run remotely, lost its server connection."""

    async def health(self) -> dict[str, Any]:
        """Report health: ``{"status": "healthy"|"degraded"|"unhealthy", "detail": ...}``."""
        return {"status": "healthy"}

    def methods_changed(self) -> None:
        """Tell whoever serves this provider that ``method_specs()`` changed."""
        listener = self.methods_listener
        if listener is not None:
            listener()

    # -- metadata --------------------------------------------------------------------

    @classmethod
    def method_specs(cls) -> dict[str, MethodSpec]:
        return dict(cls.__methods__)

    @classmethod
    def method_names(cls) -> list[str]:
        return sorted(cls.__methods__)

    def resolve_method(self, method: str) -> MethodSpec:
        """The spec for ``method``; an unprefixed name works where it is unambiguous."""
        specs = self.__methods__
        spec = specs.get(method)
        if spec is not None:
            return spec
        full = self.__method_index__.resolve(method, owner=self.name)
        if full is not None:
            return specs[full]
        near = suggest(method, list(specs))
        raise MethodNotFoundError(
            f"Provider {self.name!r} has no method {method!r}"
            + (f"; did you mean {near!r}?" if near else ""),
            hint=f"its methods are: {', '.join(sorted(specs)) or '(none)'}",
        )

    def registration(self) -> dict[str, Any]:
        """The ``register`` payload of the wire protocol for this provider."""
        return {
            "name": self.name,
            "kind": self.kind,
            "methods": {n: s.description_model().model_dump() for n, s in self.__methods__.items()},
            "models": list(self.models),
            "capabilities": list(self.capabilities),
            "model_required": list(self.model_required),
            "description": self.description,
            "version": self.version,
        }

    def describe(self) -> dict[str, Any]:
        """Metadata as sent on registration and shown by ``providers list``."""
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "version": self.version,
            "methods": sorted(self.__methods__),
            "streaming_methods": sorted(n for n, s in self.__methods__.items() if s.streaming),
            "models": list(self.models),
            "capabilities": list(self.capabilities),
        }

    # -- calls -----------------------------------------------------------------------

    def _validate(self, spec: MethodSpec, params: Any) -> Any:
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InvalidParamsError(
                f"{spec.name}: parameters must be a JSON object, got {type(params).__name__}"
            )
        if spec.params is None:
            return params
        try:
            return spec.params.model_validate(params)
        except ValidationError as exc:
            lines = describe_errors(exc, model=spec.params)
            raise InvalidParamsError(
                f"Invalid parameters for {spec.name}: " + "; ".join(lines),
                hint=f"see `gleitzeit providers list --json` for the schema of {spec.name}",
                param=_param_path(exc.errors()[0]["loc"]),
            ) from None

    async def invoke(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run ``method`` with ``params`` and return its result dict."""
        spec = self.resolve_method(method)
        value = self._validate(spec, params)
        if spec.invoke_handler:
            result = await getattr(self, spec.invoke_handler)(value)
            if type(result) is not dict and not isinstance(result, dict):
                if result is None:  # nothing to say: an empty result, as over the wire
                    return {}
                # The wire carries a JSON object: in-process, the same contract holds.
                raise ProviderError(
                    f"{spec.name} returned {type(result).__name__}; a method returns a dict "
                    f"(a JSON object)",
                    hint=f"return it as a field: {{'result': ...}} in "
                    f"{type(self).__qualname__}.{spec.invoke_handler}",
                )
            return result
        if spec.stream_handler:
            chunks = [c async for c in self._run_stream(spec, value)]
            return collect_stream(chunks)
        raise MethodNotFoundError(f"{spec.name} has no handler on provider {self.name!r}")

    async def stream(
        self, method: str, params: dict[str, Any] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Run ``method`` and yield ``{"token", "done"}`` chunks; the last has
        ``done: true``."""
        spec = self.resolve_method(method)
        if not spec.streaming:
            raise MethodNotFoundError(
                f"{spec.name} on provider {self.name!r} does not stream",
                hint="call it without --stream",
            )
        value = self._validate(spec, params)
        # Normalising inline rather than through a nested generator: one layer less per
        # chunk on the hot path of every stream.
        gen = getattr(self, spec.stream_handler)(value)  # type: ignore[arg-type]
        try:
            async for chunk in gen:
                if type(chunk) is not dict:
                    chunk = self._coerce_chunk(spec, chunk)
                if chunk.get("done"):
                    yield chunk
                    return
                if "done" not in chunk:
                    chunk["done"] = False
                yield chunk
            yield {"token": "", "done": True}
        finally:
            await gen.aclose()

    def _coerce_chunk(self, spec: MethodSpec, chunk: Any) -> dict[str, Any]:
        if isinstance(chunk, str):
            return {"token": chunk, "done": False}
        if isinstance(chunk, dict):
            return chunk
        raise GleitzeitError(
            f"{spec.name} on {self.name!r} yielded {type(chunk).__name__}, "
            "expected a dict chunk or a str token"
        )

    async def _run_stream(self, spec: MethodSpec, value: Any) -> AsyncIterator[dict[str, Any]]:
        gen = getattr(self, spec.stream_handler)(value)  # type: ignore[arg-type]
        try:
            async for chunk in gen:
                if isinstance(chunk, str):
                    chunk = {"token": chunk, "done": False}
                elif not isinstance(chunk, dict):
                    raise GleitzeitError(
                        f"{spec.name} on {self.name!r} yielded {type(chunk).__name__}, "
                        "expected a dict chunk or a str token"
                    )
                if chunk.get("done"):
                    yield chunk
                    return
                chunk.setdefault("done", False)
                yield chunk
            yield {"token": "", "done": True}
        finally:
            await gen.aclose()
