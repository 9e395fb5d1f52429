"""The contract every way of calling Gleitzeit keeps: in-process (:class:`gleitzeit.Host`),
over the network (:class:`gleitzeit.Client`), or both (a workflow's hybrid).

Code written against :class:`Api` runs against any of them; mypy checks that each
implementation keeps the contract.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from typing_extensions import Self

__all__ = ["Api"]


@runtime_checkable
class Api(Protocol):
    """Invoke and stream methods, list providers, check health."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        et: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def invoke(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        capability: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Route one request and return its result."""
        ...

    def stream(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        capability: str | None = None,
        chunk_timeout: float | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Route one request and yield its chunks; the last has ``done: true``."""
        ...

    async def providers(self, *, check: bool = False) -> list[dict[str, Any]]:
        """Every reachable instance (``providers list --json`` rows, with method
        schemas); ``check`` runs the health checks first."""
        ...

    async def health(self, name: str | None = None) -> list[dict[str, Any]]:
        """Run the health checks now, for every provider or the one named."""
        ...
