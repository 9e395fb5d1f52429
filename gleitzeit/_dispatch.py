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
:mod:`gleitzeit._deadlines`); a stream has a stall timeout between chunks.

The common invoke — no listener, an instance picked by one look-up, an in-process
provider that answers without waiting — runs its only attempt step by step without a
:class:`Call` object; an attempt of it that waits or fails is handed, under way, to the
loop, which goes on from there by the same rule.

Around that loop, and for every caller alike (CLI, workflows, Socket.IO clients, the
HTTP gateway), the dispatcher applies what the request's names mean:

* a method alias (``llm/vision`` is ``llm/chat`` on a provider with ``vision``);
* a model alias from ``models.aliases``, whose list is a fallback chain — each target is
  a request of its own, and the next is tried when one fails by
  :func:`gleitzeit.aliases.falls_through` (for a stream: before its first chunk);
* ``provider/model`` for a model nothing serves under that name pins the provider;
* Gleitzeit methods named as tools of a chat (``"tools": ["calc/*"]``) run the tool
  loop of :mod:`gleitzeit.tools`, which calls back into this dispatcher.

When the instance a call was on went away (``unavailable``) and no other instance is
left — or a call names a provider whose last instance just left — the call waits up to
``routing.wait_for_instance`` seconds for one to (re)appear, and then fails with the
retryable ``unavailable``, never with ``method_not_found``.

Every request gets a call id here (or keeps the one its caller gave); while it runs,
:data:`gleitzeit.request.CALL_ID` and (for an invoke) :data:`~gleitzeit.request.CALL_DEADLINE`
hold the id and the absolute deadline, which remote transports carry to the provider.
Whoever watches calls — metrics, request logs, the dashboard — registers a
:class:`CallListener` in :attr:`Dispatcher.listeners`: since every path (in-process,
remote, gateway, workflow task) comes through this one loop, each call is reported
exactly once, and nothing here knows what the listeners do with it.
"""

from __future__ import annotations

import asyncio
import math
import time
import types
from collections.abc import AsyncGenerator, Coroutine, Generator
from time import perf_counter as _clock
from time import time as _wall
from types import TracebackType
from typing import Any

from gleitzeit._deadlines import Deadlines, Timed
from gleitzeit._registry import Registry
from gleitzeit._stall import StallWatch
from gleitzeit.aliases import METHOD_ALIASES, ModelsConfig, falls_through, resolve, resolve_method
from gleitzeit.config.models import RoutingConfig
from gleitzeit.errors import (
    GleitzeitError,
    InstancesDownError,
    MethodNotFoundError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    RoutingError,
)
from gleitzeit.instance import ProviderInstance
from gleitzeit.request import CALL_CONTEXT, CALL_ID, Request, new_call_id
from gleitzeit.routing import Router
from gleitzeit.tools import wants_tool_loop

__all__ = ["CallListener", "Call", "Dispatcher"]


class CallListener:
    """Told about the calls a :class:`Dispatcher` runs; override what you need.

    Methods are called synchronously on the event loop, in the middle of the call:
    they must be cheap and must not raise (an exception would fail the call).
    """

    def attempt_started(self, call: Call) -> None:
        """An attempt of ``call`` on ``call.instance`` begins (it is now in flight)."""

    def attempt_ended(self, call: Call, error: BaseException | None, retrying: bool) -> None:
        """The attempt on ``call.instance`` is over; ``retrying``: another instance is
        tried next."""

    def first_chunk(self, call: Call, seconds: float) -> None:
        """A stream delivered its first chunk, ``seconds`` after the call began."""

    def cooldown_entered(self, instance: ProviderInstance, error: BaseException) -> None:
        """``instance`` failed often enough in a row to be taken out of routing."""

    def fell_back(self, call: Call, from_model: str | None, to_model: str | None) -> None:
        """A model's fallback chain moved ``call`` from one model to the next."""

    def call_ended(
        self,
        call: Call,
        instance: ProviderInstance | None,
        error: BaseException | None,
        result: dict[str, Any] | None,
    ) -> None:
        """The request is over, once per request: ``instance`` is the last one tried
        (``None`` when none could be picked), ``error`` what was raised to the caller,
        ``result`` the invoke's result or a stream's last chunk."""


class Dispatcher:
    """Routes :class:`Request` objects to instances and runs them."""

    def __init__(
        self,
        registry: Registry,
        router: Router,
        routing: RoutingConfig,
        models: ModelsConfig | None = None,
    ) -> None:
        self.registry = registry
        self.router = router
        self.routing = routing
        self.models = models if models is not None else ModelsConfig()
        self.deadlines = Deadlines()
        #: Watchers of every call (metrics, request logs); empty costs nothing.
        self.listeners: list[CallListener] = []

    # -- what a request's names mean -------------------------------------------------

    def _targets(self, request: Request) -> list[Request] | None:
        """The requests to try in order for an aliased or ``provider/model`` model;
        ``None`` when the model means itself (the common case, kept cheap)."""
        model = request.model
        if model is None:
            return None
        aliases = self.models.aliases
        if aliases and (model in aliases or (model.endswith(":latest") and model[:-7] in aliases)):
            targets = resolve(model, self.models)
            out = [
                self._retarget(request, t.provider or request.provider, t.model)
                for t in targets
                if request.provider is None or t.provider in (None, request.provider)
            ]
            if not out:
                raise RoutingError(
                    f"No target of model alias {model!r} runs on provider {request.provider!r}",
                    hint="change the alias in models.aliases, or the provider asked for",
                )
            return out
        if "/" in model and not self.registry.serves_model(model):
            provider, _, bare = model.partition("/")
            if bare and request.provider in (None, provider) and provider in self.registry.names():
                return [self._retarget(request, provider, bare)]
        return None

    def _alias(self, request: Request) -> str | None:
        """The model alias ``request`` names, if it names one."""
        model = request.model
        aliases = self.models.aliases
        if model is None or not aliases:
            return None
        if model in aliases:
            return model
        return model[:-7] if model.endswith(":latest") and model[:-7] in aliases else None

    @staticmethod
    def _retarget(request: Request, provider: str | None, model: str) -> Request:
        params = {**request.params, "model": model}
        return Request(request.method, params, provider, model, request.capability, request.timeout)

    @staticmethod
    def _method_alias(request: Request) -> None:
        method, params, capability = resolve_method(request.method, request.params)
        request.method, request.params = method, params
        if capability is not None:
            request.capability = capability

    # -- picking ---------------------------------------------------------------------

    # One attempt loop for invoke and stream: a Call picks its first instance, and
    # after an attempt whose exit asked for another try, the next one.

    def _call_now(self, request: Request) -> Call:
        """The call with its first instance picked, without waiting: raises
        :class:`_Gone` when the instance the method needs just left (see
        :meth:`_call_later`)."""
        call = Call(self, request)
        try:
            try:
                request.method = self.registry.resolve_method(request.method, request.provider)
                call.instance = self._pick(request, None, None)
            except GleitzeitError as exc:
                gone = self.registry.departed(request.method, request.provider)
                not_there = isinstance(exc, (MethodNotFoundError, RoutingError))
                if gone is None or not not_there or isinstance(exc, InstancesDownError):
                    raise
                raise _Gone(call, exc, gone) from None
        except GleitzeitError as exc:
            self._not_started(call, exc)
            raise
        return call

    async def _call_later(self, gone: _Gone) -> Call:
        """Wait up to ``routing.wait_for_instance`` for an instance to (re)appear."""
        call = gone.call
        try:
            call.attempt(await self._wait_for_instance(call, gone.cause, gone.name))
        except GleitzeitError as exc:
            self._not_started(call, exc)
            raise
        return call

    async def _call(self, request: Request) -> Call:
        try:
            return self._call_now(request)
        except _Gone as gone:
            return await self._call_later(gone)

    def _not_started(self, call: Call, exc: GleitzeitError) -> None:
        exc.call_id = call.call_id
        for listener in self.listeners:
            listener.call_ended(call, None, exc, None)

    async def _next(self, call: Call) -> None:
        """After a suppressed retryable failure: the next instance, waiting for one to
        (re)appear when the last went away."""
        try:
            call.retry()
        except ProviderUnavailableError as exc:
            if exc.details.get("status") and self.registry.get(call.instance.id) is call.instance:
                # The service behind a connected instance answered with an error of its
                # own (a 500), and no other instance is left to try: waiting for one
                # brings none. (A lost connection still waits for a replacement.)
                raise
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
        if exc.caller_error or not inst.cools_down:
            inst.errors += 1  # counted, but the caller's fault: no cool-down
            inst.last_error = str(exc)
            return
        if isinstance(exc, RateLimitError):
            # Not broken: told to wait. It rests as long as its upstream asked (other
            # instances serve meanwhile), and does not count towards failure_threshold.
            inst.errors += 1
            inst.last_error = str(exc)
            if exc.retry_after:
                until = time.monotonic() + exc.retry_after
                if until > inst.cooldown_until:
                    inst.cooldown_until = until
                    if inst.registry is not None:
                        inst.registry.cooling(inst)
                    for listener in self.listeners:
                        listener.cooldown_entered(inst, exc)
            return
        before = inst.cooldown_until
        inst.record_failure(
            exc, threshold=self.routing.failure_threshold, cooldown=self.routing.cooldown
        )
        if inst.cooldown_until != before:
            for listener in self.listeners:
                listener.cooldown_entered(inst, exc)

    def _fell_back(self, failed: Request, following: Request) -> None:
        """Tell listeners a fallback chain moved on from ``failed`` to ``following``."""
        if self.listeners:
            call = Call(self, failed)
            for listener in self.listeners:
                listener.fell_back(call, failed.model, following.model)

    def _ended(
        self, call: Call, error: BaseException | None, result: dict[str, Any] | None
    ) -> None:
        if isinstance(error, GleitzeitError) and error.call_id is None:
            error.call_id = call.call_id
        for listener in self.listeners:
            listener.call_ended(call, call.instance, error, result)

    @staticmethod
    def _tool_loop(request: Request) -> bool:
        """Whether the request names Gleitzeit methods as tools; an empty
        ``gleitzeit_tools`` (none) is taken out rather than sent to the provider."""
        if wants_tool_loop(request.params):
            return True
        if "gleitzeit_tools" in request.params:
            request.params = {k: v for k, v in request.params.items() if k != "gleitzeit_tools"}
        return False

    #: Parameters that make a request more than a call to route: a model (an alias or
    #: targets to resolve), tools (a tool loop).
    MORE_THAN_ROUTING = frozenset(("model", "tools", "gleitzeit_tools"))

    # -- calls -----------------------------------------------------------------------

    def invoke(self, request: Request) -> Coroutine[Any, Any, dict[str, Any]]:
        """Run the request and return its result; the last error when no try succeeds.

        Method and model aliases, fallback chains and provider tools apply here. (Not
        a coroutine function itself: it returns the coroutine that runs the request,
        so the common case costs no extra layer.)"""
        if request.method in METHOD_ALIASES:
            self._method_alias(request)
        params = request.params
        if ("tools" in params or "gleitzeit_tools" in params) and self._tool_loop(request):
            from gleitzeit.tools import ToolLoop

            return ToolLoop(self, request).invoke()
        targets = None if request.model is None else self._targets(request)
        if targets is None:  # the common case
            return self.invoke_once(request)
        return self._invoke_chain(targets, self._alias(request))

    async def invoke_model(self, request: Request) -> dict[str, Any]:
        """Run the request on its model's targets in order (a fallback chain)."""
        targets = self._targets(request)
        if targets is None:
            return await self.invoke_once(request)
        return await self._invoke_chain(targets, self._alias(request))

    async def _invoke_chain(self, targets: list[Request], alias: str | None) -> dict[str, Any]:
        last = len(targets) - 1
        for i, target in enumerate(targets):
            try:
                return await self.invoke_once(target)
            except GleitzeitError as exc:
                if i == last or not falls_through(exc):
                    raise _in_alias(alias, target, exc) from None
                self._fell_back(target, targets[i + 1])
        raise AssertionError("unreachable")  # the last target returned or raised

    async def stream(self, request: Request) -> AsyncGenerator[dict[str, Any], None]:
        """Run the request and yield its chunks; the last has ``done: true``.

        Method and model aliases, fallback chains and provider tools apply here."""
        if request.method in METHOD_ALIASES:
            self._method_alias(request)
        params = request.params
        if ("tools" in params or "gleitzeit_tools" in params) and self._tool_loop(request):
            from gleitzeit.tools import ToolLoop

            chunks = ToolLoop(self, request).stream()
        elif self._targets(request) is None:  # the common case: one layer fewer per chunk
            chunks = self._stream_once(request)
        else:
            chunks = self.stream_model(request)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    async def stream_model(self, request: Request) -> AsyncGenerator[dict[str, Any], None]:
        """Stream from the model's targets in order: the next target is tried when one
        fails before its first chunk."""
        targets = self._targets(request)
        alias = None if targets is None else self._alias(request)
        if targets is None:
            targets = [request]
        last = len(targets) - 1
        for i, target in enumerate(targets):
            chunks = self._stream_once(target)
            try:
                try:
                    first = await chunks.__anext__()
                except StopAsyncIteration:
                    return
                except GleitzeitError as exc:
                    if i == last or not falls_through(exc):
                        raise _in_alias(alias, target, exc) from None
                    self._fell_back(target, targets[i + 1])
                    continue
                yield first
                if first.get("done"):
                    return
                async for chunk in chunks:
                    yield chunk
                return
            finally:
                await chunks.aclose()

    async def invoke_once(self, request: Request) -> dict[str, Any]:
        """Run the request as it is, with no alias, model targets or tool loop to
        apply: route it, attempt it, retry it elsewhere when that may help."""
        timeout = request.timeout if request.timeout is not None else self.routing.timeout
        if self.listeners:
            inst = None
        else:  # (the look-up of the common case inline: this runs for every call)
            found = self.registry.candidates(
                request.method, request.provider, request.model, request.capability
            )
            inst = found[0] if len(found) == 1 else self._pick_now(request, found)
        if inst is None:
            try:
                call = self._call_now(request)
            except _Gone as gone:
                call = await self._call_later(gone)
            return await self._attempts(call, timeout)
        # The common case in one go, with no Call object: nobody watches, an instance
        # was picked at once, and its coroutine (in-process) answers without waiting.
        # What it does is the first attempt of the loop below, step by step; any other
        # outcome — it waits, or fails — hands the attempt under way to that loop.
        call_id = request.call_id or new_call_id()
        token = CALL_CONTEXT.set((call_id, _wall() + timeout))
        direct = inst.direct_invoke
        inst.in_flight += 1
        inst.calls += 1
        t0 = _clock()  # the call's start, and its first attempt's
        try:
            if direct is None:
                coro = inst.invoke(request.method, request.params)
                underway = _Underway(t0, coro, coro.send(None), None)
            else:
                coro = direct(request.method, request.params)
                try:
                    waiting_on = coro.send(None)
                except StopIteration:
                    raise
                except Exception as exc:
                    err = inst.failure(request.method, exc)
                    if err is exc:
                        raise
                    raise err from exc
                rest = _failing_as(inst, request.method, coro, waiting_on)
                underway = _Underway(t0, rest, rest.send(None), None)
        except StopIteration as done:
            inst.in_flight -= 1
            # inst.record_success, inline (this runs for every call)
            inst.consecutive_failures = 0
            seconds, last = _clock() - t0, inst.latency_ewma
            inst.latency_ewma = seconds if last is None else 0.2 * seconds + 0.8 * last
            return done.value
        except BaseException as exc:
            underway = _Underway(t0, None, None, exc)
        finally:
            CALL_CONTEXT.reset(token)
        inst.in_flight -= 1  # the loop enters the attempt again
        inst.calls -= 1
        call = Call(self, request, call_id, t0)
        call.instance = inst
        return await self._attempts(call, timeout, underway)

    def _pick_now(
        self, request: Request, candidates: list[ProviderInstance]
    ) -> ProviderInstance | None:
        """The instance for the request's first attempt, given the candidates under its
        method's name as asked; ``None`` where picking needs more than a look-up (the
        loop's :meth:`_call_now` then says why)."""
        if not candidates:
            # A method with no candidates under its own name may be unprefixed.
            registry, provider = self.registry, request.provider
            try:
                method = registry.resolve_method(request.method, provider)
            except GleitzeitError:
                return None
            if method == request.method:
                return None
            request.method = method
            candidates = registry.candidates(method, provider, request.model, request.capability)
            if len(candidates) == 1:
                return candidates[0]
        return self.router.pick(candidates, request) if candidates else None

    async def _attempts(
        self, call: Call, timeout: float, underway: _Underway | None = None
    ) -> dict[str, Any]:
        """The attempt loop of an invoke; ``underway``: its first attempt was started
        (and left) by the fast path of :meth:`invoke_once`."""
        request = call.request
        # While the call runs, its id and deadline are the context's: a remote instance
        # sends them on.
        token = CALL_CONTEXT.set((call.call_id, time.time() + timeout - (_clock() - call.begun)))
        result: dict[str, Any] | None = None
        error: BaseException | None = None
        try:
            try:
                while True:
                    with call:
                        if underway is not None:
                            first, underway = underway, None
                            call.t0 = first.t0
                            coro, waiting_on = first.go_on()
                        else:
                            # The instance's coroutine runs here until it first waits:
                            # an in-process call that never waits is over before any
                            # deadline had to be set. One that waits gets its deadline
                            # then, counted from the call's start.
                            coro = call.instance.invoke(request.method, request.params)
                            try:
                                waiting_on = coro.send(None)
                            except StopIteration as done:
                                result = done.value
                                return result
                        if call.task is None:
                            self.deadlines.start(call, timeout, _clock() - call.begun)
                        result = await _resume(coro, waiting_on)
                        return result
                    await self._next(call)
            except asyncio.CancelledError:
                if call.expired:
                    task = call.task
                    if task is not None and hasattr(task, "uncancel"):
                        task.uncancel()  # ours, not the caller's: the caller may go on
                    raise ProviderTimeoutError(
                        f"{request.method} took longer than {timeout:g}s",
                        hint=(
                            "raise routing.timeout in gleitzeit.yaml or pass a timeout"
                            if request.timeout is None
                            else "the call's own timeout ran out (a task's timeout:, "
                            "--timeout, timeout=): raise it"
                        ),
                    ) from None
                raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            CALL_CONTEXT.reset(token)
            if call.task is not None:
                self.deadlines.end(call)
            if self.listeners or error is not None:
                self._ended(call, error, result)

    async def _stream_once(self, request: Request) -> AsyncGenerator[dict[str, Any], None]:
        chunk_timeout = request.timeout if request.timeout is not None else self.routing.timeout
        call = await self._call(request)
        last: dict[str, Any] | None = None
        error: BaseException | None = None
        completed = False
        try:
            while True:
                with call:
                    inst = call.instance
                    agen = inst.stream(request.method, request.params)
                    watch = StallWatch(chunk_timeout)
                    try:
                        while True:
                            watch.waiting()
                            # The first chunk starts the provider's side: the call id
                            # is the context's meanwhile, so a remote instance sends it.
                            token = None if call.delivered else CALL_ID.set(call.call_id)
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
                            finally:
                                if token is not None:
                                    CALL_ID.reset(token)
                            watch.got()
                            if not call.delivered:
                                call.delivered = True
                                for listener in self.listeners:
                                    listener.first_chunk(call, _clock() - call.begun)
                            last = chunk
                            if chunk.get("done"):
                                break  # handed over once the attempt is recorded
                            yield chunk
                    finally:
                        watch.stop()
                        await agen.aclose()
                if call.retry_error is None:
                    if last is not None and last.get("done"):
                        # The attempt is over and recorded: a consumer that stops
                        # reading at the last chunk (as the gateway does) leaves a
                        # completed call, not a cancelled one.
                        try:
                            yield last
                        except GeneratorExit:
                            completed = True
                            raise
                    return
                await self._next(call)
        except BaseException as exc:
            if not completed:
                error = exc
            raise
        finally:
            if self.listeners or error is not None:
                self._ended(call, error, last)


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
        "begun",
        "call_id",
        "observed",
    )

    def __init__(
        self,
        dispatcher: Dispatcher,
        request: Request,
        call_id: str | None = None,
        begun: float | None = None,
    ) -> None:
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
        #: When the call began (``perf_counter``), for its whole duration.
        self.begun = _clock() if begun is None else begun
        #: The caller's id for this call, or a new one.
        self.call_id = call_id or request.call_id or new_call_id()
        #: Free for a listener's own state of this call (metrics keep their series
        #: here, so each event costs no lookup).
        self.observed: Any = None
        # Set by attempt(); None until an instance is picked.
        self.instance: ProviderInstance = None  # type: ignore[assignment]

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
        if self.dispatcher.listeners:
            for listener in self.dispatcher.listeners:
                listener.attempt_started(self)
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        inst = self.instance
        inst.in_flight -= 1
        dispatcher = self.dispatcher
        if exc is None:
            inst.record_success(_clock() - self.t0)
            if dispatcher.listeners:
                for listener in dispatcher.listeners:
                    listener.attempt_ended(self, None, False)
            return False
        retrying = False
        if isinstance(exc, GleitzeitError):
            dispatcher.failed(inst, exc)
            if (
                exc.retryable
                and not exc.caller_error
                and not self.delivered
                and self.n < dispatcher.routing.retries
            ):
                self.retry_error = exc
                retrying = True
        elif isinstance(exc, asyncio.CancelledError) and self.expired:
            dispatcher.failed(
                inst, ProviderTimeoutError(f"{inst.id} did not answer before the deadline")
            )
        for listener in dispatcher.listeners:
            listener.attempt_ended(self, exc, retrying)
        return retrying


class _Underway:
    """An invoke's first attempt as the fast path left it: waiting on ``waiting_on``,
    or failed with ``failed``."""

    __slots__ = ("t0", "coro", "waiting_on", "failed")

    def __init__(
        self,
        t0: float,
        coro: Coroutine[Any, Any, Any] | None,
        waiting_on: Any,
        failed: BaseException | None,
    ) -> None:
        self.t0, self.coro, self.waiting_on, self.failed = t0, coro, waiting_on, failed

    def go_on(self) -> tuple[Coroutine[Any, Any, Any], Any]:
        """The coroutine and what it waits on; raises the attempt's error if it failed
        (inside the attempt, so that the loop's rule records it)."""
        if self.failed is not None:
            raise self.failed
        assert self.coro is not None
        return self.coro, self.waiting_on


class _Gone(Exception):
    """The instance a call needs just left: the call may wait for one to (re)appear."""

    def __init__(self, call: Call, cause: GleitzeitError, name: str) -> None:
        self.call, self.cause, self.name = call, cause, name


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """Go on awaiting ``coro``, which was started by hand and is waiting on
    ``waiting_on``: what ``await coro`` would have done from there (values and
    exceptions, cancellation included, are passed through)."""
    while True:
        try:
            sent = yield waiting_on
        except BaseException as exc:
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration as done:
                return done.value


async def _failing_as(
    inst: ProviderInstance, method: str, coro: Coroutine[Any, Any, Any], waiting_on: Any
) -> Any:
    """The rest of a direct call of an instance's provider that had to wait: what it
    raises becomes the instance's error, as :meth:`ProviderInstance.failure` says."""
    try:
        return await _resume(coro, waiting_on)
    except Exception as exc:
        err = inst.failure(method, exc)
        if err is exc:
            raise
        raise err from exc


def _in_alias(alias: str | None, target: Request, exc: GleitzeitError) -> GleitzeitError:
    """``exc`` naming the model alias whose target could not be routed at all (an
    unknown provider or method), so the caller knows which configuration to change."""
    if alias is not None and isinstance(exc, (RoutingError, MethodNotFoundError)):
        where = f"{target.provider}/{target.model}" if target.provider else target.model
        exc.message = f"Model alias {alias!r} -> {where}: {exc.message}"
        exc.args = (exc.message,)
        exc.hint = "change the alias in models.aliases" + (f"; {exc.hint}" if exc.hint else "")
    return exc
