"""``${task_id.field.sub[0]}``, ``${inputs.name}`` and ``${item}`` references.

A parameter that is exactly one reference keeps the referenced value's type (a number
stays a number, a list a list); a reference inside a longer string is rendered as text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from gleitzeit.errors import TaskReferenceError

#: ``$${`` writes a literal ``${``: a reference is never preceded by another ``$``.
REF = re.compile(r"(?<!\$)\$\{\s*([A-Za-z_][A-Za-z0-9_-]*)((?:\.[A-Za-z0-9_-]+|\[\d+\])*)\s*\}")
ESCAPE = "$${"
WHOLE = re.compile(r"^\s*" + REF.pattern + r"\s*$")
_PART = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")
SPECIAL = ("inputs", "item", "item_index", "env")


def parse_path(path: str) -> list[str | int]:
    return [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _PART.finditer(path)]


def marked_strings(value: Any) -> list[str]:
    """Every string inside ``value`` that holds ``${`` (a reference, or an escaped
    ``$${``): a value without any needs no :func:`substitute`."""
    found: list[str] = []
    _collect(value, found)
    return found


def _collect(value: Any, found: list[str]) -> None:
    if isinstance(value, str):
        if "${" in value:
            found.append(value)
    elif isinstance(value, Mapping):
        for v in value.values():
            _collect(v, found)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _collect(v, found)


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"its fields are: {', '.join(map(str, value)) or '(none)'}"
    if isinstance(value, list):
        return f"it is a list of {len(value)}"
    return f"it is {type(value).__name__} {json.dumps(value, default=str)[:60]}"


def lookup(root: str, path: str, scope: Mapping[str, Any], task_id: str) -> Any:
    """The value at ``root`` + ``path``; an error names the task, the path and what exists."""
    return _walk(root, path, None, scope, task_id)


def _walk(
    root: str,
    path: str,
    parts: tuple[str | int, ...] | None,
    scope: Mapping[str, Any],
    task_id: str,
) -> Any:
    """:func:`lookup`, with ``path`` already split into ``parts`` when compiled."""
    if root == "env":
        # Never list the environment in an error: it may hold secrets.
        name = path.lstrip(".")
        env = scope.get("env", {})
        if name not in env:
            raise TaskReferenceError(
                f"task {task_id!r}: ${{env.{name}}}: environment variable {name!r} is not set",
                hint=f"set {name} before running the workflow",
            )
        return env[name]
    if root not in scope:
        raise TaskReferenceError(
            f"task {task_id!r}: ${{{root}{path}}} refers to {root!r}, which has no value here"
        )
    value = scope[root]
    if not path:
        return value
    walked = root
    for part in parse_path(path) if parts is None else parts:
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                raise TaskReferenceError(
                    f"task {task_id!r}: ${{{root}{path}}}: {walked} has no item [{part}]; "
                    + _describe(value)
                )
            value = value[part]
            walked += f"[{part}]"
        else:
            if not isinstance(value, Mapping) or part not in value:
                raise TaskReferenceError(
                    f"task {task_id!r}: ${{{root}{path}}}: {walked} has no field {part!r}; "
                    + _describe(value)
                )
            value = value[part]
            walked += f".{part}"
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def substitute(value: Any, scope: Mapping[str, Any], task_id: str) -> Any:
    """Resolve every reference inside ``value``."""
    kind = type(value)
    if kind is dict:  # exact-type checks first: this runs for every task of every run
        return {k: substitute(v, scope, task_id) for k, v in value.items()}
    if kind is list:
        return [substitute(v, scope, task_id) for v in value]
    if kind in (int, float, bool) or value is None:
        return value
    if isinstance(value, str):
        if "${" not in value:
            return value
        whole = WHOLE.match(value)
        if whole:
            return lookup(whole.group(1), whole.group(2), scope, task_id)
        text = REF.sub(lambda m: _text(lookup(m.group(1), m.group(2), scope, task_id)), value)
        return text.replace(ESCAPE, "${") if ESCAPE in text else text
    if isinstance(value, Mapping):
        return {k: substitute(v, scope, task_id) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, scope, task_id) for v in value]
    return value


# -- compiled once, rendered per run ---------------------------------------------------


class Template:
    """A value whose references are found once (when the workflow is read) and filled in
    for each run: :meth:`render` gives what :func:`substitute` gives, without walking
    the parts that hold no reference or matching any string again."""

    __slots__ = ()

    def render(self, scope: Mapping[str, Any], task_id: str) -> Any:
        raise NotImplementedError


_PATHS: dict[str, tuple[str, tuple[str | int, ...], tuple[str | int, ...] | None]] = {}
_ABSENT = object()


class _Whole(Template):
    """A string that is exactly one reference: the value, its type kept."""

    __slots__ = ("root", "path", "parts", "fields")

    def __init__(self, root: str, path: str) -> None:
        self.root = root
        # Thousands of tasks read the same path (".result"): one copy of it serves all.
        shared = _PATHS.get(path)
        if shared is None:
            parts = tuple(parse_path(path))
            names = parts if all(type(part) is str for part in parts) else None
            shared = _PATHS[path] = (path, parts, names)
        self.path, self.parts, names = shared
        #: The path's parts when all are field names (``.result``, ``.a.b``) and the
        #: root is not ``env``: then a walk through plain dicts takes the short way.
        self.fields = names if root != "env" else None

    def render(self, scope: Mapping[str, Any], task_id: str) -> Any:
        fields = self.fields
        if fields is not None:
            value = scope.get(self.root, _ABSENT)
            for name in fields:
                if type(value) is not dict or name not in value:
                    break
                value = value[name]
            else:
                if value is not _ABSENT:
                    return value
        # Anything else (a list index, env, another Mapping) and every error: the walk.
        return _walk(self.root, self.path, self.parts, scope, task_id)


class _Text(Template):
    """A string with references inside: rendered as text."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: tuple[str | _Whole, ...]) -> None:
        self.pieces = pieces

    def render(self, scope: Mapping[str, Any], task_id: str) -> Any:
        text = "".join(
            p if isinstance(p, str) else _text(p.render(scope, task_id)) for p in self.pieces
        )
        return text.replace(ESCAPE, "${") if ESCAPE in text else text


class _Dict(Template):
    """A mapping: a copy of it with the templated items filled in."""

    __slots__ = ("base", "filled")

    def __init__(self, base: dict[Any, Any], filled: tuple[tuple[Any, Template], ...]) -> None:
        self.base = base  # shared with the workflow's task, never changed
        self.filled = filled

    def render(self, scope: Mapping[str, Any], task_id: str) -> Any:
        out = dict(self.base)
        for key, template in self.filled:
            out[key] = template.render(scope, task_id)
        return out


class _DictOne(Template):
    """A mapping with one templated item (the usual ``{a: ${task.result}, ...}``)."""

    __slots__ = ("base", "key", "template")

    def __init__(self, base: dict[Any, Any], key: Any, template: Template) -> None:
        self.base = base  # shared with the workflow's task, never changed
        self.key = key
        self.template = template

    def render(self, scope: Mapping[str, Any], task_id: str) -> Any:
        out = dict(self.base)
        out[self.key] = self.template.render(scope, task_id)
        return out


class _List(Template):
    __slots__ = ("base", "filled")

    def __init__(self, base: list[Any], filled: tuple[tuple[int, Template], ...]) -> None:
        self.base = base
        self.filled = filled

    def render(self, scope: Mapping[str, Any], task_id: str) -> Any:
        out = list(self.base)
        for index, template in self.filled:
            out[index] = template.render(scope, task_id)
        return out


class _Later(Template):
    """A value of another type: substituted as :func:`substitute` does, when rendered."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def render(self, scope: Mapping[str, Any], task_id: str) -> Any:
        return substitute(self.value, scope, task_id)


def compile_refs(value: Any) -> Template:
    """``value`` as a :class:`Template`; its :meth:`~Template.render` equals
    ``substitute(value, scope, task_id)`` (values without references inside are
    shared, not copied, except dicts and lists: a copy of each, as substitute makes)."""
    template = _compile(value)
    return _Later(value) if template is None else template


def _compile(value: Any) -> Template | None:
    """None for a value that renders as itself (held by no template: it costs nothing)."""
    kind = type(value)
    if kind is dict:
        filled = tuple((k, t) for k, v in value.items() if (t := _compile(v)) is not None)
        if len(filled) == 1:
            return _DictOne(value, *filled[0])
        return _Dict(value, filled)
    if kind is list:
        return _List(
            value, tuple((i, t) for i, v in enumerate(value) if (t := _compile(v)) is not None)
        )
    if kind is str:
        if "${" not in value:
            return None
        whole = WHOLE.match(value)
        if whole:
            return _Whole(whole.group(1), whole.group(2))
        pieces: list[str | _Whole] = []
        at = 0
        for m in REF.finditer(value):
            if m.start() > at:
                pieces.append(value[at : m.start()])
            pieces.append(_Whole(m.group(1), m.group(2)))
            at = m.end()
        if at < len(value):
            pieces.append(value[at:])
        return _Text(tuple(pieces))
    if kind in (int, float, bool) or value is None:
        return None
    return _Later(value)
