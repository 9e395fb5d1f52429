"""Running a workflow: the DAG, concurrency, retries, timeouts, fan-out, persistence.

The engine talks to an *api* with ``invoke(method, params, provider=, model=,
timeout=)``: a :class:`gleitzeit.Host` (in-process) or a :class:`gleitzeit.Client`
(a running ``gleitzeit serve``) — the same workflow runs against either.
"""

from __future__ import annotations

import asyncio
import glob as globmod
import heapq
import itertools
import json
import os
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gleitzeit.errors import (
    FileAccessError,
    GleitzeitError,
    InvalidParamsError,
    ProviderError,
    ProviderTimeoutError,
    StoreWriteError,
    TaskReferenceError,
    ToolError,
)
from gleitzeit.workflows.loader import Workflow, WorkflowError
from gleitzeit.workflows.models import PRIORITIES, GlobSpec, RetryPolicy, Task
from gleitzeit.workflows.references import compile_refs, substitute
from gleitzeit.workflows.store import RunStore, encode_result

NO_RETRY = RetryPolicy(max_attempts=1)
#: A priority's rank: larger for more urgent work.
RANK = {name: rank for rank, name in enumerate(PRIORITIES)}
RUNNING_ROW_AFTER = 0.2  # seconds
#: A worker whose tasks never wait hands the event loop back after this many of them.
YIELD_EVERY = 64
#: Error codes that mean "ran out of time", whichever side raised them.
TIMEOUT_CODES = ("timeout", "execution_timeout")


def retried(err: GleitzeitError, policy: RetryPolicy) -> bool:
    """Whether ``policy`` tries again after ``err``: the one rule of gleitzeit.errors (a
    caller's error is never retried), narrowed by the policy's ``retry_on_*`` switches.
    The one opening is ``retry_on_validation_error``, which the original format offers
    for parameters a provider refused."""
    if err.caller_error:
        # A switch written in the file is the one way past the rule.
        if type(err) is InvalidParamsError:
            return policy.retry_on_validation_error
        if isinstance(err, ToolError) and "retry_on_provider_error" in policy.model_fields_set:
            return policy.retry_on_provider_error
        return False
    if isinstance(err, ProviderTimeoutError) or err.code in TIMEOUT_CODES:
        return policy.retry_on_timeout
    if isinstance(err, ProviderError):
        return policy.retry_on_provider_error
    return True


class PrioritySlots:
    """A semaphore whose waiters are served highest priority first, then in arrival
    order: with every slot taken, the most urgent ready task runs next."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def take(self) -> bool:
        """Take a free slot if there is one and nobody waits for it (no await)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self, priority: int) -> None:
        """Wait for a slot; ``priority`` is larger for more urgent work."""
        if self.take():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (-priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a slot in the moment of being cancelled: pass it on
            raise

    def release(self) -> None:
        """Give the slot to the most urgent waiter still waiting, or free it."""
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1


class _HeldResult:
    """:attr:`TaskState.result`: the result, or the stored JSON it is held as (see
    :meth:`TaskState.keep_encoded`), decoded anew each time it is read: a run of
    10,000 tasks whose results are all read (the command line's table) does not end
    up holding them all as objects. (Kept in the attributes ``_result`` and
    ``_encoded`` beside the fields, so that ``dataclasses.asdict`` and ``==`` see the
    result alone. They are set as attributes, never through ``__dict__``: Python 3.11
    keeps an instance's attributes without a dict of their own until ``__dict__`` is
    asked for, a third of a state's memory.)"""

    def __get__(self, state: TaskState | None, owner: type | None = None) -> Any:
        if state is None:  # the field's default, to the dataclass
            return None
        encoded = state._encoded
        if encoded is not None:
            return json.loads(encoded)
        return state._result

    def __set__(self, state: TaskState, value: Any) -> None:
        state._result = value
        state._encoded = None


class _Held:
    """Where :class:`_HeldResult` keeps a state's result (a plain base: not fields)."""

    _result: Any
    _encoded: str | None


@dataclass
class TaskState(_Held):
    """A task's state in a run. A stored result that no task reads any more is kept
    as the JSON it was stored as (:meth:`keep_encoded`), and decoded when read."""

    id: str
    status: str = "pending"  # pending | running | completed | failed | skipped
    result: Any = _HeldResult()
    error: str | None = None
    attempts: int = 0
    started: float | None = None
    finished: float | None = None

    @classmethod
    def pending(cls, task_id: str) -> TaskState:
        """``TaskState(task_id)``, made without a call per field: a run makes one per
        task. (Attributes set in the order __init__ sets them: instances then share
        one table of attribute names.)"""
        state = cls.__new__(cls)
        state.id = task_id
        state.status = "pending"
        state._result = None
        state._encoded = None
        state.error = None
        state.attempts = 0
        state.started = None
        state.finished = None
        return state

    def keep_encoded(self, encoded: str) -> None:
        """Hold the result as ``encoded`` (its stored JSON) instead of as objects."""
        self._result = None
        self._encoded = encoded

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
            "duration": None if self.duration is None else round(self.duration, 6),
        }


@dataclass
class RunResult:
    run_id: str
    workflow: str
    status: str  # completed | failed | interrupted
    tasks: dict[str, TaskState]
    started: float
    finished: float
    #: Things worth knowing that did not fail the run (a glob that matched nothing).
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "duration": round(self.finished - self.started, 6),
            "tasks": {t: s.to_dict() for t, s in self.tasks.items()},
        }
        if self.warnings:
            data["warnings"] = list(self.warnings)
        return data


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def resolve_inputs(workflow: Workflow, given: dict[str, Any] | None) -> dict[str, Any]:
    given = dict(given or {})
    specs = workflow.spec.input_specs()
    out: dict[str, Any] = {}
    missing = []
    for name, spec in specs.items():
        if name in given:
            out[name] = given.pop(name)
        elif spec.required:
            missing.append(name)
        else:
            out[name] = spec.default
    if missing:
        raise WorkflowError(
            f"Workflow {workflow.name!r} needs input(s) {', '.join(missing)}",
            hint="pass them with --input name=value",
        )
    if given and specs:
        raise WorkflowError(
            f"Unknown input(s) {', '.join(sorted(given))} for workflow {workflow.name!r}",
            hint=f"its inputs are: {', '.join(specs)}",
        )
    out.update(given)
    unset = sorted(workflow.inputs_used - out.keys())
    if unset and not specs:
        # No inputs: section to check against when the file was read: the references
        # are checked here, before anything runs.
        raise WorkflowError(
            f"Workflow {workflow.name!r} needs input(s) {', '.join(unset)} (its tasks read "
            + ", ".join(f"${{inputs.{n}}}" for n in unset)
            + ")",
            hint="pass them with --input name=value, or declare them under inputs: with a default",
        )
    return out


class Engine:
    """Runs workflows against an api, persisting to a :class:`RunStore` if given."""

    def __init__(
        self,
        api: Any,
        *,
        store: RunStore | None = None,
        concurrency: int = 8,
        on_event: Callable[..., None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be 1 or more, got {concurrency}")
        self.api = api
        self.store = store
        self.concurrency = concurrency
        self.on_event = on_event or (lambda *a, **k: None)
        self.rand = rand

    async def run(
        self,
        workflow: Workflow,
        inputs: dict[str, Any] | None = None,
        *,
        run_id: str | None = None,
        completed: dict[str, Any] | None = None,
        target: str | None = None,
        items: dict[str, dict[int, tuple[str, Any]]] | None = None,
    ) -> RunResult:
        """Run (or, with ``completed`` results of an earlier run, resume) a workflow.

        ``items``: per fan-out task, the items an interrupted run completed
        (:meth:`RunStore.done_items`), which a resume does not call again."""
        resuming = completed is not None
        inputs = resolve_inputs(workflow, inputs) if not resuming else dict(inputs or {})
        run_id = run_id or new_run_id()
        run = _Run(self, workflow, inputs, run_id)
        run.done_items = dict(items or {})
        for task_id, result in (completed or {}).items():
            if task_id in run.states:
                state = run.states[task_id]
                state.status, state.result = "completed", result
        store = self.store
        if store is not None:
            if resuming:
                store.run_resumed(
                    run_id, [t for t, s in run.states.items() if s.status != "completed"]
                )
            else:
                store.create_run(
                    run_id,
                    name=workflow.name,
                    path=str(workflow.source.resolve()) if workflow.source else None,
                    text=workflow.text,
                    inputs=inputs,
                    target=target,
                    task_ids=list(workflow.tasks),
                )
        concurrency = workflow.spec.concurrency or self.concurrency
        return await run.execute(concurrency, resuming)


class _Run:
    """The state of one run while it executes."""

    def __init__(
        self, engine: Engine, workflow: Workflow, inputs: dict[str, Any], run_id: str
    ) -> None:
        self.engine = engine
        self.workflow = workflow
        self.inputs = inputs
        self.run_id = run_id
        pending = TaskState.pending
        self.states = {t: pending(t) for t in workflow.tasks}
        #: The parameters of the tasks whose parameters hold references, as templates.
        self._templates = workflow.templates
        for task_id in workflow.with_refs - workflow.templates.keys():
            # A Workflow built by hand: its references are compiled here, once.
            self._templates[task_id] = compile_refs(workflow.tasks[task_id].parameters)
        self.store = engine.store
        self.emit = engine.on_event
        self.warnings: list[str] = []
        self._all_done = asyncio.Event()
        #: What broke a worker outside any task's own error handling (a progress
        #: callback that raised, a provider that raised CancelledError): the run stops
        #: with it rather than wait for tasks nobody will finish.
        self._broken: BaseException | None = None
        self._outstanding = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # Ready tasks beyond what may be under way at once wait here, most urgent first,
        # then in the order they became ready (a queue per priority, by RANK): a
        # 10,000-task file holds as many asyncio tasks as it has slots, not 10,000 of
        # them each waiting for one.
        self._ready: list[deque[str]] = [deque() for _ in PRIORITIES]
        #: Tasks in the queues of _ready.
        self._ready_n = 0
        self._max_live = 8
        #: Workers running a task (not waiting to try one again).
        self._busy = 0
        self._sem: PrioritySlots | None = None
        #: Each worker's [task id, whether that task needs no 'running' row (any more)].
        self._slots: list[list[Any]] = []
        # With a store, a result that no task will read any more is held as the JSON
        # stored for it, not as objects: a run of 10,000 tasks does not keep 10,000
        # results' objects alive. _readers counts, per task, the tasks that have yet to
        # read its result; _held keeps the JSON of completed tasks still to be read.
        self._readers: dict[str, int] = {}
        self._held: dict[str, str] = {}
        if self.store is not None:
            readers = self._readers
            reads = workflow.reads
            for task_id, spec in workflow.tasks.items():
                if spec.for_each is not None or task_id in self._templates:
                    for read in reads.get(task_id, spec.dependencies):
                        readers[read] = readers.get(read, 0) + 1
        self._running_timer: asyncio.TimerHandle | None = None
        self._timed_out: float | None = None
        #: Whether the run has cancelled its workers (see _worker_ended).
        self._cancelled = False
        #: Fan-out items an interrupted earlier run completed, per task (see Engine.run).
        self.done_items: dict[str, dict[int, tuple[str, Any]]] = {}

    # -- scheduling ------------------------------------------------------------------

    async def execute(self, concurrency: int, resuming: bool) -> RunResult:
        started = time.time()
        self._sem = PrioritySlots(concurrency)
        self._max_live = concurrency
        self.emit(
            "run_started",
            run_id=self.run_id,
            workflow=self.workflow.name,
            tasks=list(self.states),
            resumed=resuming,
        )
        # How many dependencies each task still waits for (all of them, unless resuming).
        states = self.states
        self._waiting = (
            {
                t: sum(1 for d in spec.dependencies if states[d].status != "completed")
                for t, spec in self.workflow.tasks.items()
            }
            if resuming
            else {t: len(spec.dependencies) for t, spec in self.workflow.tasks.items()}
        )
        if self.store is not None:
            self.store.start()
            self._running_timer = asyncio.get_running_loop().call_later(
                RUNNING_ROW_AFTER / 2, self._check_running
            )
        status = "failed"
        stored: StoreWriteError | None = None
        try:
            ready = [
                t for t, n in self._waiting.items() if n == 0 and self.states[t].status == "pending"
            ]
            # Most urgent first, so that the first free slots go to them too.
            ready.sort(key=lambda t: -self._priority(t))
            for task_id in ready:
                self._launch(task_id)
            timeout = self.workflow.spec.timeout
            if self._outstanding:
                if timeout is None:
                    await self._all_done.wait()
                else:
                    try:
                        await asyncio.wait_for(self._all_done.wait(), timeout)
                    except asyncio.TimeoutError:
                        await self._time_out(timeout)
            if self._broken is not None:
                await self._cancel_workers()
                raise self._broken
            status = (
                "completed"
                if all(s.status == "completed" for s in self.states.values())
                else "failed"
            )
        except asyncio.CancelledError:
            status = "interrupted"
            await self._cancel_workers()
            raise
        finally:
            if self._running_timer is not None:
                self._running_timer.cancel()
            failed = [t for t, s in self.states.items() if s.status == "failed"]
            error = f"failed: {', '.join(failed)}" if failed else None
            if status == "failed" and self._timed_out is not None:
                error = f"timed out after {self._timed_out:g}s" + (f"; {error}" if error else "")
            if self.store is not None:
                self.store.run_done(
                    self.run_id, status, error if status != "interrupted" else "interrupted"
                )
                try:
                    await self.store.stop()
                except StoreWriteError as exc:
                    stored = exc
            finished = time.time()
            self.emit(
                "run_finished", run_id=self.run_id, status=status, duration=finished - started
            )
        # Every stored result in the same form, its stored JSON, whether or not the
        # tasks that were to read it ran.
        for task_id, encoded in self._held.items():
            self.states[task_id].keep_encoded(encoded)
        self._held.clear()
        result = RunResult(
            self.run_id, self.workflow.name, status, self.states, started, finished, self.warnings
        )
        if stored is not None:
            stored.result = result
            stored.hint = (
                "free disk space or release the database lock, then: "
                f"gleitzeit run --resume {self.run_id}"
            )
            raise stored
        return result

    def _priority(self, task_id: str) -> int:
        return RANK[self.workflow.tasks[task_id].priority]

    async def _time_out(self, timeout: float) -> None:
        """The workflow's timeout ran out: cancel what runs, and record every task that
        did not finish as failed (it was cut off) or skipped (it never started)."""
        self._timed_out = timeout
        await self._cancel_workers()
        now = time.time()
        for task_id, state in self.states.items():
            if state.status not in ("pending", "running"):
                continue
            if state.started is not None:
                state.status = "failed"
                state.error = f"cancelled: the workflow's timeout ({timeout:g}s) ran out"
                event = "task_failed"
            else:
                state.status = "skipped"
                state.error = f"not started: the workflow's timeout ({timeout:g}s) ran out"
                event = "task_skipped"
            state.finished = now
            if self.store is not None:
                self.store.task_done(
                    self.run_id,
                    task_id,
                    state.status,
                    error=state.error,
                    attempts=state.attempts,
                    started=state.started,
                    finished=now,
                )
            if event == "task_failed":
                self.emit("task_failed", task=task_id, error=state.error)
            else:
                self.emit("task_skipped", task=task_id, reason=state.error)

    def _launch(self, task_id: str) -> None:
        self._outstanding += 1
        if self._busy >= self._max_live:
            self._ready[self._priority(task_id)].append(task_id)
            self._ready_n += 1
            return
        self._start_worker(task_id)

    def _start_worker(self, task_id: str) -> None:
        self._busy += 1
        task = asyncio.ensure_future(self._run_chain(task_id))
        self._tasks.add(task)
        task.add_done_callback(self._worker_ended)

    async def _cancel_workers(self) -> None:
        """Cancel every worker and wait for them to end."""
        self._cancelled = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._broken is not None:
            return
        if task.cancelled():
            # Only the run cancels its workers (they are its own tasks, held nowhere
            # else): one cancelled before that raised CancelledError from inside.
            if self._cancelled:
                return
            self._broken = ProviderError(
                "A task's call raised CancelledError without being cancelled",
                hint="a provider or task function must not raise asyncio.CancelledError "
                "itself; raise an error of its own",
            )
        elif task.exception() is not None:
            self._broken = task.exception()
        else:
            return
        self._all_done.set()

    async def _run_chain(self, task_id: str | None) -> None:
        # A finished task hands one newly ready dependent back to run here, in the same
        # asyncio task: a chain of N tasks then costs no new asyncio tasks at all. When
        # it has none, the most urgent task waiting for room runs here next. As many of
        # these run as there are slots, so a call rarely waits for one.
        #
        # A task of one call tried once (no for_each, no tools, no retries: most tasks)
        # runs inline, here: the steps, records and events of _run_task without a
        # coroutine, a future or a closure per task.
        done = 0
        tasks = self.workflow.tasks
        dependents = self.workflow.dependents
        states = self.states
        templates = self._templates
        waiting = self._waiting
        emit = self.emit
        store = self.store
        run_id = self.run_id
        invoke = self.engine.api.invoke
        sem = self._sem
        assert sem is not None
        now = time.time
        slot: list[Any] = [task_id, True]
        self._slots.append(slot)
        try:
            while task_id is not None:
                slot[0], slot[1] = task_id, False
                spec = tasks[task_id]
                if spec.for_each is not None or spec.tools or not _one_try(spec.retry):
                    task_id = await self._run_task(task_id)
                else:
                    state = states[task_id]
                    state.status = "running"
                    state.started = started = now()
                    emit("task_started", task=task_id)
                    try:
                        template = templates.get(task_id)
                        params = (
                            spec.parameters
                            if template is None
                            else template.render(self._scope(task_id, spec), task_id)
                        )
                        state.attempts = 1
                        if not sem.take():
                            await sem.acquire(RANK[spec.priority])
                        try:
                            result = await invoke(
                                spec.method,
                                params,
                                provider=spec.provider,
                                model=spec.model,
                                timeout=spec.timeout,
                            )
                        except Exception as exc:
                            raise _Failed(self._try_failed(spec, exc, 1, None, started)) from None
                        finally:
                            sem.release()
                        # Encoded once, here: a result that cannot be stored fails its
                        # task (rather than the commit of every task beside it).
                        encoded = encode_result(result) if store is not None else ""
                    except asyncio.CancelledError:
                        state.status = "pending"
                        raise
                    except Exception as exc:
                        state.status = "failed"
                        state.error = _describe(exc)
                        task_id = self._finished(task_id, state, started)
                    else:
                        state.result = result
                        state.status = "completed"
                        state.finished = finished = now()
                        if store is not None:
                            store.task_completed(run_id, task_id, encoded, 1, started, finished)
                        emit(
                            "task_completed",
                            task=task_id,
                            duration=finished - started,
                            result=result,
                        )
                        if store is not None:
                            self._stored(task_id, state, encoded)
                        unblocked = dependents[task_id]
                        if len(unblocked) == 1:
                            # The usual step of a chain (_settled's, shortened).
                            nxt = unblocked[0]
                            left = waiting[nxt] = waiting[nxt] - 1
                            if left == 0 and states[nxt].status == "pending":
                                task_id = self._hand_on(nxt)
                            else:
                                self._one_fewer()
                                task_id = None
                        else:
                            task_id = self._settled(task_id)
                if task_id is None and self._ready_n:
                    task_id = self._next_ready()
                done += 1
                if done % YIELD_EVERY == 0 and task_id is not None:
                    # Tasks that finish without waiting (in-process calls) would hold
                    # the event loop for the whole chain: let the store's writer, the
                    # progress output and Ctrl-C in now and then.
                    await asyncio.sleep(0)
        finally:
            self._busy -= 1
            self._slots.remove(slot)

    def _lend(self) -> None:
        """A task waits before its next try, holding no slot: a waiting ready task may
        run meanwhile (call :meth:`_unlend` when the wait is over)."""
        self._busy -= 1
        while self._ready_n and self._busy < self._max_live:
            self._start_worker(self._next_ready())

    def _unlend(self) -> None:
        self._busy += 1

    def _settled(self, task_id: str) -> str | None:
        """A task reached completed or failed: start what it unblocks, skip what it
        dooms. Returns one unblocked task for the caller to run itself."""
        state = self.states[task_id]
        keep: str | None = None
        if state.status == "completed":
            ready = []
            waiting = self._waiting
            states = self.states
            for nxt in self.workflow.dependents[task_id]:
                waiting[nxt] -= 1
                if waiting[nxt] == 0 and states[nxt].status == "pending":
                    ready.append(nxt)
            if ready:
                if len(ready) > 1:
                    # The most urgent first; the others queue for room by priority.
                    ready.sort(key=lambda t: -self._priority(t))
                keep = self._hand_on(ready[0])
                for nxt in ready[1:]:
                    self._launch(nxt)
        else:
            self._skip_dependents(task_id)
        if keep is not None:
            return keep  # the outstanding count carries over to it
        self._one_fewer()
        return None

    def _next_ready(self) -> str:
        """Take the most urgent of the queued ready tasks (the longest waiting of them)."""
        self._ready_n -= 1
        for queue in reversed(self._ready):
            if queue:
                return queue.popleft()
        raise AssertionError("no ready task queued")

    def _hand_on(self, task_id: str) -> str:
        """A settled task's newly ready dependent: it runs next in the same worker,
        unless a queued task at least as urgent was ready before it; then that one
        runs, and this one queues behind (the outstanding count passes from one to
        the other unchanged)."""
        if self._ready_n:
            rank = self._priority(task_id)
            ready = self._ready
            top = len(ready) - 1
            while top >= rank:
                if ready[top]:  # the most urgent queue with a task in it
                    ready[rank].append(task_id)
                    return ready[top].popleft()
                top -= 1
        self.states[task_id].status = "running"  # claimed; not launched twice
        return task_id

    def _one_fewer(self) -> None:
        """A task settled and hands on no other: one fewer outstanding."""
        self._outstanding -= 1
        if self._outstanding == 0:
            self._all_done.set()

    def _skip_dependents(self, failed: str) -> None:
        todo = list(self.workflow.dependents[failed])
        while todo:
            task_id = todo.pop()
            state = self.states[task_id]
            if state.status != "pending":
                continue
            state.status = "skipped"
            state.error = f"skipped: dependency {failed!r} did not complete"
            if self.store is not None:
                self.store.task_done(
                    self.run_id, task_id, "skipped", error=state.error, finished=time.time()
                )
            self.emit("task_skipped", task=task_id, reason=state.error)
            todo.extend(self.workflow.dependents[task_id])

    def _check_running(self) -> None:
        """Every RUNNING_ROW_AFTER / 2 seconds while the run goes: a task running for
        RUNNING_ROW_AFTER seconds or more gets a 'running' row, so `gleitzeit runs
        show` can see it; short tasks are spared that second write. Only what the
        workers hold now is looked at: nothing is noted per task."""
        assert self.store is not None
        loop = asyncio.get_running_loop()
        self._running_timer = loop.call_later(RUNNING_ROW_AFTER / 2, self._check_running)
        due = time.time() - RUNNING_ROW_AFTER
        for slot in self._slots:
            if slot[1]:
                continue
            task_id = slot[0]
            state = self.states[task_id]
            started = state.started
            if state.status == "running" and started is not None and started <= due:
                slot[1] = True
                self.store.task_started(self.run_id, task_id, state.attempts, started)

    # -- one task --------------------------------------------------------------------

    async def _run_task(self, task_id: str) -> str | None:
        spec = self.workflow.tasks[task_id]
        state = self.states[task_id]
        state.status = "running"
        state.started = started = time.time()
        self.emit("task_started", task=task_id)
        try:
            if spec.for_each is None:
                template = self._templates.get(task_id)
                params = (
                    spec.parameters
                    if template is None
                    else template.render(self._scope(task_id, spec), task_id)
                )
                state.result = await self._attempts(spec, state, params)
            else:
                scope = self._scope(task_id, spec)
                items = self._items(spec, scope)
                template = self._templates.get(task_id) or compile_refs(spec.parameters)
                outcomes = await self._fan_out(task_id, spec, state, scope, items, template)
                if spec.batch:
                    state.result = _batch_result(items, outcomes)
                else:
                    state.result = {"items": items, "results": outcomes, "count": len(items)}
            state.status = "completed"
        except asyncio.CancelledError:
            state.status = "pending"
            raise
        except Exception as exc:
            state.status = "failed"
            state.error = _describe(exc)
        return self._finished(task_id, state, started)

    async def _fan_out(
        self,
        task_id: str,
        spec: Task,
        state: TaskState,
        scope: dict[str, Any],
        items: list[Any],
        template: Any,
    ) -> list[Any]:
        """Each item's outcome, in item order: its result (for a batch, or the
        :class:`_Failed` it ended with). Items an interrupted earlier run completed
        are not called again; when this run is interrupted mid-task, the items done
        so far are stored for the next resume."""
        kept = self.done_items.pop(task_id, {})
        outcomes: list[Any] = [None] * len(items)
        calls: dict[int, asyncio.Future[Any]] = {}
        for i, item in enumerate(items):
            done = kept.get(i)
            if done is not None and done[0] == _item_key(item):
                outcomes[i] = done[1]
                continue
            rendered = template.render({**scope, "item": item, "item_index": i}, task_id)
            calls[i] = asyncio.ensure_future(self._attempts(spec, state, rendered, item_index=i))
        try:
            got = await asyncio.gather(*calls.values(), return_exceptions=spec.batch)
        except asyncio.CancelledError:
            self._keep_items(task_id, items, calls)
            raise
        for i, outcome in zip(calls, got, strict=True):
            outcomes[i] = outcome
        return outcomes

    def _keep_items(
        self, task_id: str, items: list[Any], calls: dict[int, asyncio.Future[Any]]
    ) -> None:
        """The run stops mid fan-out: store the items that completed."""
        for call in calls.values():
            call.cancel()
        if self.store is None:
            return
        done: list[tuple[int, str, str]] = []
        for i, call in calls.items():
            if call.done() and not call.cancelled() and call.exception() is None:
                try:
                    done.append((i, _item_key(items[i]), encode_result(call.result())))
                except Exception:  # a result that cannot be stored is called again
                    continue
        if done:
            self.store.items_done(self.run_id, task_id, done)

    def _finished(self, task_id: str, state: TaskState, started: float) -> str | None:
        """Record and report a task that ended; returns what :meth:`_settled` does."""
        store = self.store
        encoded = ""
        if state.status == "completed" and store is not None:
            try:
                encoded = encode_result(state.result)
            except Exception as exc:
                state.status, state.result = "failed", None
                state.error = _describe(exc)
        state.finished = finished = time.time()
        if state.status == "completed":
            if store is not None:
                store.task_completed(
                    self.run_id, task_id, encoded, state.attempts, started, finished
                )
            self.emit("task_completed", task=task_id, duration=state.duration, result=state.result)
            if store is not None:
                self._stored(task_id, state, encoded)
        else:
            if store is not None:
                store.task_done(
                    self.run_id,
                    task_id,
                    state.status,
                    error=state.error,
                    attempts=state.attempts,
                    started=started,
                    finished=finished,
                )
            self.emit("task_failed", task=task_id, error=state.error)
        return self._settled(task_id)

    def _scope(self, task_id: str, spec: Task) -> dict[str, Any]:
        """What the task's references may name: the results it reads, inputs, env."""
        states = self.states
        scope: dict[str, Any] = {"inputs": self.inputs, "env": os.environ}
        readers = self._readers
        for read in self.workflow.reads.get(task_id, spec.dependencies):
            scope[read] = states[read].result
            left = readers.get(read)
            if left is not None:
                readers[read] = left = left - 1
                if left == 0 and read in self._held:
                    states[read].keep_encoded(self._held.pop(read))
        return scope

    def _stored(self, task_id: str, state: TaskState, encoded: str) -> None:
        """A completed task's result is stored as ``encoded``: held as that JSON now,
        or once the last task that reads it has."""
        if self._readers.get(task_id):
            self._held[task_id] = encoded
        else:
            state.keep_encoded(encoded)

    def _glob(self, task_id: str, pattern: str) -> list[str]:
        """Files matching ``pattern`` inside ``files.allowed_roots``, at most
        ``workflows.max_glob_matches`` of them; a pattern that reaches outside the roots
        is an error rather than a walk of the file system."""
        from pathlib import Path

        from gleitzeit.files import allowed_roots, check_path_text, inside

        check_path_text(pattern, f"task {task_id!r}: for_each glob")
        cwd = Path.cwd()
        from gleitzeit.config.models import Config

        config = getattr(self.engine.api, "config", None)
        if not isinstance(config, Config):  # a Client: the local defaults
            config = Config()
        roots = allowed_roots(config.files, cwd)
        # The fixed part of the pattern (before the first wildcard) must lie in a root.
        fixed = Path(pattern.split("*")[0].split("?")[0].split("[")[0] or ".")
        anchor = (fixed if fixed.is_absolute() else cwd / fixed).resolve()
        if not inside(anchor, roots):
            raise FileAccessError(
                f"task {task_id!r}: for_each glob {pattern!r} reaches outside "
                f"files.allowed_roots ({', '.join(map(str, roots))})",
                hint="add the directory to files.allowed_roots in gleitzeit.yaml",
            )
        limit = config.workflows.max_glob_matches
        out: list[str] = []
        for match in globmod.iglob(pattern, recursive=True):
            resolved = (cwd / match).resolve()
            if not inside(resolved, roots):
                continue
            out.append(match)
            if len(out) > limit:
                raise FileAccessError(
                    f"task {task_id!r}: for_each glob {pattern!r} matches more than "
                    f"{limit:,} files",
                    hint="narrow the pattern or raise workflows.max_glob_matches",
                )
        return sorted(out)

    def _items(self, spec: Task, scope: dict[str, Any]) -> list[Any]:
        value = spec.for_each
        if isinstance(value, GlobSpec):
            found = self._glob(spec.id, value.glob)
            if not found:
                note = f"task {spec.id!r}: for_each glob {value.glob!r} matched no files"
                self.warnings.append(note)
                self.emit("task_warning", task=spec.id, warning=note)
            return found
        items = substitute(value, scope, spec.id)
        if not isinstance(items, list):
            raise TaskReferenceError(
                f"task {spec.id!r}: for_each must give a list, got {type(items).__name__}"
            )
        return items

    async def _attempts(
        self,
        spec: Task,
        state: TaskState,
        params: dict[str, Any],
        item_index: int | None = None,
    ) -> Any:
        policy = spec.retry or NO_RETRY
        attempt = 0
        sem = self._sem
        assert sem is not None
        if spec.tools:  # provider tools: the dispatcher runs the calls the model makes
            params = {**params, "tools": [*(params.get("tools") or []), *spec.tools]}
            if spec.max_tool_rounds is not None:
                params["max_tool_rounds"] = spec.max_tool_rounds
        while True:
            attempt += 1
            state.attempts = max(state.attempts, attempt)
            began = time.time()
            try:
                if not sem.take():
                    await sem.acquire(RANK[spec.priority])
                try:
                    # Method and model aliases, fallback chains and provider tools are
                    # the dispatcher's: the api applies them, wherever it runs.
                    result = await self.engine.api.invoke(
                        spec.method,
                        params,
                        provider=spec.provider,
                        model=spec.model,
                        timeout=spec.timeout,
                    )
                finally:
                    sem.release()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                err = _as_error(exc)
                text = self._try_failed(spec, err, attempt, item_index, began)
                if attempt >= policy.max_attempts or not retried(err, policy):
                    raise _Failed(text) from None
                delay = policy.delay(attempt, self.engine.rand())
                self.emit("task_retry", task=spec.id, attempt=attempt, error=text, delay=delay)
                if item_index is None:
                    self._lend()
                    try:
                        await asyncio.sleep(delay)
                    finally:
                        self._unlend()
                else:
                    await asyncio.sleep(delay)
                continue
            if self.store is not None and (attempt > 1 or policy.max_attempts > 1):
                self.store.attempt_done(
                    self.run_id, spec.id, attempt, "completed", None, began, time.time()
                )
            return result

    def _try_failed(
        self,
        spec: Task,
        exc: Exception,
        attempt: int,
        item_index: int | None,
        began: float,
    ) -> str:
        """Record a failed try; returns its description."""
        err = _as_error(exc)
        text = _describe(err) if item_index is None else f"item {item_index}: {_describe(err)}"
        if self.store is not None:
            self.store.attempt_done(
                self.run_id, spec.id, attempt, "failed", text, began, time.time()
            )
        return text


def _one_try(policy: RetryPolicy | None) -> bool:
    return policy is None or policy.max_attempts == 1


def _as_error(exc: Exception) -> GleitzeitError:
    """A failed try's error as a GleitzeitError (a plain exception is a provider's)."""
    if isinstance(exc, GleitzeitError):
        return exc
    return ProviderError(f"{type(exc).__name__}: {exc}")


class _Failed(Exception):
    """A task's last try failed; the message is already the description."""


def _batch_result(items: list[Any], outcomes: list[Any]) -> dict[str, Any]:
    """A batch task's result: this project's fan-out shape, plus the original
    Gleitzeit's mapping of each file to ``{status, content|result|error}``."""
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, _Failed):
            raise outcome
    files: dict[str, Any] = {}
    results: list[Any] = []
    failed = 0
    for item, outcome in zip(items, outcomes, strict=True):
        key = item if isinstance(item, str) else json.dumps(item, default=str)
        if isinstance(outcome, _Failed):
            failed += 1
            results.append(None)
            files[key] = {"status": "failed", "error": str(outcome)}
            continue
        results.append(outcome)
        entry: dict[str, Any] = {"status": "success"}
        if isinstance(outcome, dict) and "response" in outcome:
            entry["content"] = outcome["response"]
        elif isinstance(outcome, dict) and "result" in outcome:
            entry["result"] = outcome["result"]
        else:
            entry["result"] = outcome
        files[key] = entry
    if items and failed == len(items):
        first = next(o for o in outcomes if isinstance(o, _Failed))
        raise _Failed(f"every item failed; the first: {first}")
    return {
        "items": items,
        "results": results,
        "count": len(items),
        "files": files,
        "summary": {"total": len(items), "successful": len(items) - failed, "failed": failed},
    }


def _item_key(item: Any) -> str:
    """A fan-out item as stored beside its result: a resume reuses the result only for
    the same item at the same place (a glob may match other files by then)."""
    return json.dumps(item, sort_keys=True, default=str)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _Failed):
        return str(exc)
    if isinstance(exc, GleitzeitError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"
