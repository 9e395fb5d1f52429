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
    walked = root
    for part in parse_path(path):
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
