"""Model aliases and fallback chains, and method aliases such as ``llm/vision``.

```yaml
models:
  aliases:
    llama3.2: echo                      # a model name
    gpt: openai/gpt-4o-mini             # provider/model
    smart: [openai/gpt-4o, ollama/llama3.2, echo]   # a fallback chain, tried in order
    odd: {provider: hf, model: org/name-with/slashes}
```

:func:`resolve` turns the model a request names into the targets to try, and
:func:`resolve_method` a method alias into its method and capability. The dispatcher
applies both to every request (CLI, workflows, the HTTP gateway, Socket.IO clients), and
:func:`falls_through` says when a chain moves on to its next target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gleitzeit.errors import (
    ContextWindowError,
    GleitzeitError,
    ModelNotFoundError,
    RoutingError,
)

#: A method that is another method plus a required capability.
METHOD_ALIASES: dict[str, tuple[str, str]] = {"llm/vision": ("llm/chat", "vision")}


class AliasTarget(BaseModel):
    """One target of an alias written as a mapping (for model names with a slash)."""

    model_config = ConfigDict(extra="forbid")

    provider: str | None = None
    model: str = Field(min_length=1)


AliasValue = str | AliasTarget | list[str | AliasTarget]


class ModelsConfig(BaseModel):
    """The ``models:`` section of ``gleitzeit.yaml``."""

    model_config = ConfigDict(extra="forbid")

    aliases: dict[str, AliasValue] = Field(
        default_factory=dict,
        description="name: model | provider/model | [fallback, chain] | {provider, model}",
    )

    @field_validator("aliases")
    @classmethod
    def _not_empty(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, target in value.items():
            if target == [] or target == "":
                raise ValueError(f"alias {name!r} names no model")
        return value


@dataclass(frozen=True)
class Target:
    """Where an aliased request goes: a model, optionally on a named provider."""

    provider: str | None
    model: str


def _target(value: str | AliasTarget) -> Target:
    if isinstance(value, AliasTarget):
        return Target(value.provider, value.model)
    provider, sep, model = value.partition("/")
    if sep and provider and model:
        return Target(provider, model)
    return Target(None, value)


def resolve(model: str | None, config: ModelsConfig | None) -> list[Target]:
    """The targets to try, in order, for ``model``.

    An unaliased model is its own single target. ``name:latest`` falls back to the
    alias of ``name`` (Ollama treats the two as one model).
    """
    if model is None:
        return []
    aliases = config.aliases if config is not None else {}
    value = aliases.get(model)
    if value is None and model.endswith(":latest"):
        value = aliases.get(model.removesuffix(":latest"))
    if value is None:
        return [Target(None, model)]
    values = value if isinstance(value, list) else [value]
    return [_target(v) for v in values]


def resolve_method(
    method: str, params: Mapping[str, Any]
) -> tuple[str, dict[str, Any], str | None]:
    """A method alias as (method, params, required capability).

    ``llm/vision`` is ``llm/chat`` on a provider with the ``vision`` capability; its
    ``prompt`` (when there are no messages) becomes a user message, and ``images``
    (base64 strings) are attached to the last user message.
    """
    alias = METHOD_ALIASES.get(method)
    if alias is None:
        return method, dict(params), None
    target, capability = alias
    params = dict(params)
    messages = [
        dict(m) if isinstance(m, Mapping) else m for m in params.pop("messages", None) or []
    ]
    prompt = params.pop("prompt", None)
    if prompt is not None:
        messages.append({"role": "user", "content": prompt})
    images = params.pop("images", None)
    if images:
        users = [
            i
            for i, m in enumerate(messages)
            if isinstance(m, dict) and m.get("role", "user") == "user"
        ]
        if not users:
            messages.append({"role": "user", "content": ""})
            users = [len(messages) - 1]
        last = messages[users[-1]]
        last["images"] = list(last.get("images") or []) + list(images)
    if not messages:
        messages.append({"role": "user", "content": "Describe this image."})
    params["messages"] = messages
    return target, params, capability


def falls_through(exc: GleitzeitError) -> bool:
    """Whether a fallback chain moves on to its next target after this failure: a
    retryable one, a model nothing serves, or a conversation too long for the model."""
    return exc.retryable or isinstance(exc, (RoutingError, ModelNotFoundError, ContextWindowError))


__all__ = [
    "METHOD_ALIASES",
    "ModelsConfig",
    "Target",
    "falls_through",
    "resolve",
    "resolve_method",
]
