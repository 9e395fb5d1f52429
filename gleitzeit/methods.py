"""Methods: how one is described, and how a name is resolved to one.

One description type serves the provider (what it declares), the registry (what an
instance advertises) and the wire (what a remote provider registers); one resolver
turns an unprefixed name (``chat``) into the full one (``llm/chat``) wherever names are
looked up, with dictionary lookups only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gleitzeit.errors import MethodNotFoundError
from gleitzeit.kinds import KINDS, Kind

__all__ = ["KINDS", "Kind", "MethodDescription", "MethodIndex"]


class MethodDescription(BaseModel):
    """A method as a provider describes it, an instance advertises it, and a remote
    provider registers it on the wire."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    streaming: bool = False
    description: str = Field("", max_length=2000)
    params_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class MethodIndex:
    """A multiset of full method names (``llm/chat``) that resolves names in O(1).

    A multiset, because several instances may add the same method; a name leaves the
    index when the last one that added it removes it.
    """

    __slots__ = ("_count", "_by_suffix")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._count: Counter[str] = Counter()
        self._by_suffix: dict[str, Counter[str]] = {}
        for name in names:
            self.add(name)

    def add(self, name: str) -> None:
        self._count[name] += 1
        if self._count[name] == 1:
            suffix = name.split("/", 1)[-1]
            self._by_suffix.setdefault(suffix, Counter())[name] += 1

    def remove(self, name: str) -> None:
        left = self._count[name] - 1
        if left > 0:
            self._count[name] = left
            return
        self._count.pop(name, None)
        suffix = name.split("/", 1)[-1]
        names = self._by_suffix.get(suffix)
        if names is not None:
            names.pop(name, None)
            if not names:
                del self._by_suffix[suffix]

    def __contains__(self, name: object) -> bool:
        return name in self._count

    def __iter__(self) -> Iterator[str]:
        return iter(self._count)

    def __len__(self) -> int:
        return len(self._count)

    def resolve(self, method: str, *, owner: str | None = None) -> str | None:
        """The full name for ``method``, or ``None`` when there is none; an unprefixed
        name that fits several methods is an error naming them (``owner`` says whose
        methods those are, for the message)."""
        if method in self._count:
            return method
        if "/" in method:
            return None
        hits = self._by_suffix.get(method)
        if not hits:
            return None
        if len(hits) == 1:
            return next(iter(hits))
        where = f" for provider {owner!r}" if owner else ""
        raise MethodNotFoundError(
            f"Method {method!r} is ambiguous{where}: {', '.join(sorted(hits))}",
            hint="use the protocol-prefixed name",
        )
