"""The dispatcher: one attempt loop for every request, invoke and stream alike.

For each attempt it picks an instance (router over the registry's candidates), counts
the call in flight, records the outcome, and decides by the one rule of
:mod:`gleitzeit.errors` whether to try another instance:

* a caller's error (``caller_error``) is raised at once and never counts against the
  instance;
* any other error counts against the instance (consecutive failures cool it down);
* a ``retryable`` error is tried on another instance while ``routing.retries`` and the
  request's deadline allow, and — for a stream — only before its first chunk.

An invoke has one deadline for all its attempts (one shared timer for every call, see
:mod:`gleitzeit.deadlines`); a stream has a stall timeout between chunks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

from gleitzeit.config.models import RoutingConfig
from gleitzeit.deadlines import Deadline, Deadlines
from gleitzeit.errors import GleitzeitError, ProviderTimeoutError
from gleitzeit.instance import ProviderInstance
from gleitzeit.registry import Registry
from gleitzeit.request import Request
from gleitzeit.routing import Router
from gleitzeit.stall import StallWatch

__all__ = ["Dispatcher"]


class Dispatcher:
    """Routes :class:`Request` objects to instances and runs them."""

    def __init__(self, registry: Registry, router: Router, routing: RoutingConfig) -> None:
        self.registry = registry
        self.router = router
        self.routing = routing
        self.deadlines = Deadlines()

    # -- picking ---------------------------------------------------------------------

    def _attempts(self, request: Request, deadline: Deadline | None) -> Iterator[_Attempt]:
        """The attempts of one request: each yielded attempt is entered by the caller;
        the loop goes on only when the attempt's exit asked for another try."""
        retries = self.routing.retries
        tried: set[str] | None = None
        last: GleitzeitError | None = None
        for n in range(retries + 1):
            inst = self._pick(request, tried, last)
            attempt = _Attempt(self, inst, deadline, final=n == retries)
            yield attempt
            if attempt.retry_error is None:
                return
            last = attempt.retry_error
            if tried is None:
                tried = set()
            tried.add(inst.id)

    def _pick(
        self, request: Request, tried: set[str] | None, last: GleitzeitError | None
    ) -> ProviderInstance:
        candidates = self.registry.candidates(
            request.method,
            provider=request.provider,
            model=request.model,
            capability=request.capability,
        )
        if tried:
            candidates = [c for c in candidates if c.id not in tried]
        if not candidates:
            if last is not None:  # the previous try's error says more than "none left"
                raise last
            raise self.registry.explain_no_candidate(
                request.method,
                provider=request.provider,
                model=request.model,
                capability=request.capability,
            )
        return self.router.pick(candidates, request)

    def failed(self, inst: ProviderInstance, exc: GleitzeitError) -> None:
        """Record a failed call of ``inst``, by the one rule."""
        if exc.caller_error:
            inst.errors += 1  # counted, but the caller's fault: no cool-down
            inst.last_error = str(exc)
            return
        inst.record_failure(
            exc, threshold=self.routing.failure_threshold, cooldown=self.routing.cooldown
        )

    # -- calls -----------------------------------------------------------------------

    async def invoke(self, request: Request) -> dict[str, Any]:
        """Run the request and return its result; the last error when no try succeeds."""
        request.method = self.registry.resolve_method(request.method, request.provider)
        timeout = request.timeout if request.timeout is not None else self.routing.timeout
        deadline = self.deadlines.start(timeout)
        try:
            for attempt in self._attempts(request, deadline):
                with attempt:
                    return await attempt.instance.invoke(request.method, request.params)
        except asyncio.CancelledError:
            if deadline.expired:
                raise ProviderTimeoutError(
                    f"{request.method} took longer than {timeout:g}s",
                    hint="raise routing.timeout in gleitzeit.yaml or pass a timeout",
                ) from None
            raise
        finally:
            deadline.clear()
        raise AssertionError("unreachable: the last attempt never asks for another")

    async def stream(self, request: Request) -> AsyncIterator[dict[str, Any]]:
        """Run the request and yield its chunks; the last has ``done: true``."""
        request.method = self.registry.resolve_method(request.method, request.provider)
        chunk_timeout = request.timeout if request.timeout is not None else self.routing.timeout
        for attempt in self._attempts(request, None):
            with attempt:
                inst = attempt.instance
                agen = inst.stream(request.method, request.params)
                watch = StallWatch(chunk_timeout)
                try:
                    while True:
                        watch.waiting()
                        try:
                            chunk = await agen.__anext__()
                        except StopAsyncIteration:
                            break
                        except asyncio.CancelledError:
                            if watch.fired:
                                raise ProviderTimeoutError(
                                    f"{request.method} on {inst.id} sent nothing for "
                                    f"{chunk_timeout:g}s",
                                ) from None
                            raise
                        watch.got()
                        attempt.delivered = True
                        yield chunk
                        if chunk.get("done"):
                            break
                finally:
                    watch.stop()
                    await agen.aclose()
            if attempt.retry_error is None:
                return


class _Attempt:
    """One try of a request on one instance: in flight while entered; its exit records
    the outcome and says whether to try another instance (by suppressing the error)."""

    __slots__ = ("dispatcher", "instance", "deadline", "final", "delivered", "retry_error", "t0")

    def __init__(
        self,
        dispatcher: Dispatcher,
        instance: ProviderInstance,
        deadline: Deadline | None,
        *,
        final: bool,
    ) -> None:
        self.dispatcher = dispatcher
        self.instance = instance
        self.deadline = deadline
        self.final = final
        self.delivered = False
        self.retry_error: GleitzeitError | None = None
        self.t0 = 0.0

    def __enter__(self) -> _Attempt:
        inst = self.instance
        inst.in_flight += 1
        inst.calls += 1
        self.t0 = time.perf_counter()
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        inst = self.instance
        inst.in_flight -= 1
        if exc is None:
            inst.record_success(time.perf_counter() - self.t0)
            return False
        if isinstance(exc, GleitzeitError):
            self.dispatcher.failed(inst, exc)
            if exc.retryable and not exc.caller_error and not self.final and not self.delivered:
                self.retry_error = exc
                return True
        elif isinstance(exc, asyncio.CancelledError) and self.deadline and self.deadline.expired:
            self.dispatcher.failed(
                inst, ProviderTimeoutError(f"{inst.id} did not answer before the deadline")
            )
        return False
