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

When the instance a call was on went away (``unavailable``) and no other instance is
left — or a call names a provider whose last instance just left — the call waits up to
``routing.wait_for_instance`` seconds for one to (re)appear, and then fails with the
retryable ``unavailable``, never with ``method_not_found``.

Each invoke has a ``call_id``; its attempts run with :data:`gleitzeit.request.CURRENT_CALL`
set to the id and the absolute deadline, which remote transports carry to the provider.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from collections.abc import AsyncGenerator
from time import perf_counter as _clock
from types import TracebackType
from typing import Any

from gleitzeit.config.models import RoutingConfig
from gleitzeit.deadlines import Deadlines, Timed
from gleitzeit.errors import (
    GleitzeitError,
    InstancesDownError,
    MethodNotFoundError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RoutingError,
)
from gleitzeit.instance import ProviderInstance
from gleitzeit.registry import Registry
from gleitzeit.request import CURRENT_CALL, Request
from gleitzeit.routing import Router
from gleitzeit.stall import StallWatch

__all__ = ["Dispatcher"]

_call_ids = itertools.count(1)
_CALL_PREFIX = f"{os.getpid():x}-{os.urandom(3).hex()}"


class Dispatcher:
    """Routes :class:`Request` objects to instances and runs them."""

    def __init__(self, registry: Registry, router: Router, routing: RoutingConfig) -> None:
        self.registry = registry
        self.router = router
        self.routing = routing
        self.deadlines = Deadlines()

    # -- picking ---------------------------------------------------------------------

    # One attempt loop for invoke and stream: a Call picks its first instance, and
    # after an attempt whose exit asked for another try, the next one.

    async def _call(self, request: Request) -> Call:
        try:
            request.method = self.registry.resolve_method(request.method, request.provider)
            call = Call(self, request)
            call.attempt(self._pick(request, None, None))
            return call
        except GleitzeitError as exc:
            gone = self.registry.departed(request.method, request.provider)
            not_there = isinstance(exc, (MethodNotFoundError, RoutingError))
            if gone is None or not not_there or isinstance(exc, InstancesDownError):
                raise
            call = Call(self, request)
            call.attempt(await self._wait_for_instance(call, exc, gone))
            return call

    async def _next(self, call: Call) -> None:
        """After a suppressed retryable failure: the next instance, waiting for one to
        (re)appear when the last went away."""
        try:
            call.retry()
        except ProviderUnavailableError as exc:
            gone = self.registry.departed(call.request.method, call.request.provider)
            call.attempt(await self._wait_for_instance(call, exc, gone or call.instance.name))

    async def _wait_for_instance(
        self, call: Call, cause: GleitzeitError, name: str
    ) -> ProviderInstance:
        request = call.request
        wait = self.routing.wait_for_instance
        loop = asyncio.get_running_loop()
        until = loop.time() + wait
        while (left := until - loop.time()) > 0:
            await self.registry.wait_for_change(left)
            try:
                request.method = self.registry.resolve_method(request.method, request.provider)
                return self._pick(request, call.tried, None)
            except GleitzeitError:
                continue
        raise ProviderUnavailableError(
            f"No instance of provider {name!r} serving {request.method!r} is connected; "
            f"waited {wait:g}s for one ({cause.message})",
            hint="start the provider again, or raise routing.wait_for_instance; the call "
            "may be retried",
        )

    def _pick(
        self, request: Request, tried: set[str] | None, last: GleitzeitError | None
    ) -> ProviderInstance:
        candidates = self.registry.candidates(
            request.method, request.provider, request.model, request.capability
        )
        if tried:
            candidates = [c for c in candidates if c.id not in tried]
        if len(candidates) == 1:  # nothing to choose: the router is not asked
            return candidates[0]
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
        timeout = request.timeout if request.timeout is not None else self.routing.timeout
        call = await self._call(request)
        self.deadlines.start(call, timeout)
        context = CURRENT_CALL.set((call.call_id, time.time() + timeout))
        try:
            while True:
                with call:
                    return await call.instance.invoke(request.method, request.params)
                await self._next(call)
        except asyncio.CancelledError:
            if call.expired:
                task = call.task
                if task is not None and hasattr(task, "uncancel"):
                    task.uncancel()  # ours, not the caller's: the caller may go on
                raise ProviderTimeoutError(
                    f"{request.method} took longer than {timeout:g}s",
                    hint="raise routing.timeout in gleitzeit.yaml or pass a timeout",
                ) from None
            raise
        finally:
            CURRENT_CALL.reset(context)
            self.deadlines.end(call)

    async def stream(self, request: Request) -> AsyncGenerator[dict[str, Any], None]:
        """Run the request and yield its chunks; the last has ``done: true``."""
        chunk_timeout = request.timeout if request.timeout is not None else self.routing.timeout
        call = await self._call(request)
        while True:
            with call:
                inst = call.instance
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
                        call.delivered = True
                        yield chunk
                        if chunk.get("done"):
                            break
                finally:
                    watch.stop()
                    await agen.aclose()
            if call.retry_error is None:
                return
            await self._next(call)


class Call(Timed):
    """One request in flight: its deadline (for invoke), and the attempt under way.

    While entered (``with call:``) the current instance counts it in flight; the exit
    records the outcome and says whether to try another instance — by suppressing the
    error and keeping it as :attr:`retry_error`, after which :meth:`retry` moves on.
    """

    __slots__ = (
        "dispatcher",
        "request",
        "instance",
        "n",
        "tried",
        "delivered",
        "retry_error",
        "t0",
        "call_id",
    )

    def __init__(self, dispatcher: Dispatcher, request: Request) -> None:
        # Timed's fields are set here rather than through super(): this runs per call.
        self.task: asyncio.Task[object] | None = None
        self.when = self.timeout = math.inf
        self.expired = False
        self.dispatcher = dispatcher
        self.request = request
        self.n = 0
        self.tried: set[str] | None = None
        self.delivered = False
        self.retry_error: GleitzeitError | None = None
        self.t0 = 0.0
        self.call_id = f"{_CALL_PREFIX}-{next(_call_ids)}"

    def attempt(self, instance: ProviderInstance) -> None:
        self.instance = instance
        self.retry_error = None

    def retry(self) -> None:
        """Move to the next instance after a suppressed, retryable failure."""
        last = self.retry_error
        assert last is not None
        tried = self.tried if self.tried is not None else set()
        tried.add(self.instance.id)
        self.tried = tried
        self.n += 1
        self.attempt(self.dispatcher._pick(self.request, tried, last))

    def __enter__(self) -> Call:
        inst = self.instance
        inst.in_flight += 1
        inst.calls += 1
        self.t0 = _clock()
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
            inst.consecutive_failures = 0
            seconds, last = _clock() - self.t0, inst.latency_ewma
            inst.latency_ewma = seconds if last is None else 0.2 * seconds + 0.8 * last
            return False
        dispatcher = self.dispatcher
        if isinstance(exc, GleitzeitError):
            dispatcher.failed(inst, exc)
            if (
                exc.retryable
                and not exc.caller_error
                and not self.delivered
                and self.n < dispatcher.routing.retries
            ):
                self.retry_error = exc
                return True
        elif isinstance(exc, asyncio.CancelledError) and self.expired:
            dispatcher.failed(
                inst, ProviderTimeoutError(f"{inst.id} did not answer before the deadline")
            )
        return False
