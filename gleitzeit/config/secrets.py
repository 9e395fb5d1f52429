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
from typing import Any

from pydantic import BaseModel, SecretStr

__all__ = ["MASK", "env_sources", "mask_by_name", "secret_values"]

#: What a secret is shown as (pydantic's own rendering of a ``SecretStr``).
MASK = "**********"

_SECRET_NAME = re.compile(r"key|token|secret|password|passwd|credential", re.IGNORECASE)


def secret_values(value: Any) -> Iterator[str]:
    """Every secret held by ``value``: its ``SecretStr`` fields, however deep."""
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


def mask_by_name(data: Any, key: str = "") -> Any:
    """Settings no model describes: mask values under secret-looking keys."""
    if isinstance(data, dict):
        return {k: mask_by_name(v, str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [mask_by_name(v, key) for v in data]
    if key and isinstance(data, str) and data and _SECRET_NAME.search(key):
        return MASK
    return data
