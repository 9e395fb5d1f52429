"""Which configuration values are secret, and which come from the environment.

A value is secret because its field says so — typed ``pydantic.SecretStr`` (as
``server.token``, ``server.secret`` and plugins' API keys are) — never because of its
name: ``require_api_key`` is a boolean, ``token_roles`` a list of roles. Only settings no
model describes (a plugin that is not installed) fall back to masking keys whose names
look secret, so that nothing leaks from a plugin we cannot see into.

A field that falls back to an environment variable when unset names it in its
``json_schema_extra`` (``{"env": "GLEITZEIT_TOKEN"}``); ``config show`` says where such a
value comes from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["env_sources", "looks_secret", "secret_values"]

_SECRET_NAME = re.compile(r"key|token|secret|password|passwd|credential", re.IGNORECASE)


def secret_values(value: Any) -> Iterator[str]:
    """Every secret held by ``value``: its ``SecretStr`` fields, however deep."""
    from pydantic import BaseModel, SecretStr

    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if secret:
            yield secret
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from secret_values(getattr(value, name, None))
    elif isinstance(value, dict):
        for item in value.values():
            yield from secret_values(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from secret_values(item)


def env_sources(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, str, bool]]:
    """``(dotted path, variable, secret)`` for each unset field of ``model`` (and its
    nested models) that an environment variable set now supplies."""
    from pydantic import BaseModel

    for name, field in type(model).model_fields.items():
        value = getattr(model, name, None)
        path = f"{prefix}{field.alias or name}"
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        var = extra.get("env")
        if value is None and isinstance(var, str) and os.environ.get(var):
            yield path, var, _is_secret_field(field.annotation)
        elif isinstance(value, BaseModel):
            yield from env_sources(value, path + ".")


def _is_secret_field(annotation: Any) -> bool:
    return "SecretStr" in repr(annotation)


def looks_secret(key: str) -> bool:
    """The fallback for settings no model describes: a key whose name looks secret."""
    return bool(key) and _SECRET_NAME.search(key) is not None
