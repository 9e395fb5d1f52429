"""Turn pydantic validation errors into lines a person can act on.

Each line names the field path and the offending value, and for an unknown key
suggests the nearest valid one.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: suggest() and short_repr() need no pydantic
    from pydantic import BaseModel, ValidationError

Loc = tuple[Any, ...]


def dotted(loc: Sequence[Any]) -> str:
    """``("providers", "x", "settings", 0)`` -> ``providers.x.settings[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unwrap(annotation: Any, key: Any) -> Any:
    """The annotation one step below ``annotation`` when indexing it with ``key``."""
    from pydantic import BaseModel

    annotation = _bare(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            found = _unwrap(arg, key)
            if found is not None:
                return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if key in (name, field.alias):
                return field.annotation
        return None
    if origin in (dict, typing.Dict) and len(args) == 2:  # noqa: UP006
        return args[1]
    if origin in (list, tuple, typing.List) and args:  # noqa: UP006
        return args[0]
    return None


def _bare(annotation: Any) -> Any:
    """``X`` of ``Annotated[X, ...]`` (validators attached to a type), else as given."""
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def _model_keys(annotation: Any) -> list[str]:
    from pydantic import BaseModel

    annotation = _bare(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        keys: list[str] = []
        for arg in typing.get_args(annotation):
            keys += _model_keys(arg)
        return keys
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or n for n, f in annotation.model_fields.items()]
    return []


def valid_keys(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The keys the model accepts at ``loc`` (the mapping that holds the bad key)."""
    annotation: Any = model
    for key in loc:
        annotation = _unwrap(annotation, key)
        if annotation is None:
            return []
    return _model_keys(annotation)


def suggest(word: str, choices: Sequence[str]) -> str | None:
    """The nearest of ``choices`` to ``word``, if one is close enough."""
    import difflib

    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def describe_errors(
    exc: ValidationError,
    *,
    model: type[BaseModel] | None = None,
    prefix: Loc = (),
    source: str | None = None,
    locate: Callable[[Loc], int | None] | None = None,
    skip: set[Loc] | None = None,
) -> list[str]:
    """One line per error: ``file:line: field.path: what is wrong (got value)``."""
    lines = []
    for err in exc.errors():
        # pydantic puts the union member's tag into loc (e.g. "function-after[...]");
        # drop such internal parts so the path is the user's.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        full = prefix + loc
        if skip and full in skip:
            continue  # already reported, e.g. as a missing environment variable
        if err["type"] == "extra_forbidden":
            key = loc[-1] if loc else "?"
            msg = f"unknown key {key!r}"
            if model is not None:
                keys = valid_keys(model, loc[:-1])
                near = suggest(str(key), keys)
                if near:
                    msg += f"; did you mean {near!r}?"
                elif keys:
                    msg += f"; valid keys: {', '.join(sorted(keys))}"
        else:
            msg = err["msg"]
            if err["type"] == "value_error":
                msg = msg.removeprefix("Value error, ")
            if err["type"] != "missing":
                msg += f" (got {short_repr(err.get('input'))})"
        where = ""
        if source:
            line = locate(full) if locate else None
            where = f"{source}:{line}: " if line else f"{source}: "
        lines.append(f"{where}{dotted(full)}: {msg}")
    return lines
