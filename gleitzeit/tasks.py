"""Python functions as workflow tasks: ``@gleitzeit.task``.

    @gleitzeit.task
    def word_count(text: str) -> int:
        return len(text.split())

registers method ``python/word_count``; a workflow calls it like any provider method
and gets ``{"result": <return value>}``. Sync functions run in a worker thread, off the
event loop; async functions are awaited. Parameters are validated against the
function's signature.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, Literal

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,95}$")

#: name -> function, in registration order.
REGISTRY: dict[str, Callable[..., Any]] = {}


def task(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Register ``fn`` as the workflow method ``python/<name>`` (default: its own name)."""

    def register(f: Callable[..., Any]) -> Callable[..., Any]:
        task_name = name or f.__name__
        if not _NAME.match(task_name):
            raise ValueError(f"task name {task_name!r} must be a plain identifier")
        existing = REGISTRY.get(task_name)
        if (
            existing is not None
            and existing is not f
            and (
                existing.__module__,
                existing.__qualname__,
            )
            != (f.__module__, f.__qualname__)
        ):
            raise ValueError(
                f"a task named {task_name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        REGISTRY[task_name] = f
        return f

    return register(fn) if fn is not None else register


def params_model(fn: Callable[..., Any]) -> Any:
    """A pydantic model of the function's keyword parameters."""
    from pydantic import ConfigDict, create_model

    fields: dict[str, Any] = {}
    extra: Literal["allow", "forbid"] = "forbid"
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind is param.VAR_KEYWORD:  # **kwargs takes any keyword
            extra = "allow"
            continue
        if param.kind is param.VAR_POSITIONAL:
            continue
        annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (annotation, default)
    return create_model(
        f"{fn.__name__}_params",
        __config__=ConfigDict(extra=extra, arbitrary_types_allowed=True),
        **fields,
    )


_EXECUTOR: Any = None


def _threads() -> Any:
    global _EXECUTOR
    if _EXECUTOR is None:
        from concurrent.futures import ThreadPoolExecutor

        _EXECUTOR = ThreadPoolExecutor(thread_name_prefix="gleitzeit-task")
    return _EXECUTOR


def build_provider_class(functions: dict[str, Callable[..., Any]]) -> type:
    """A Provider class with one ``python/<name>`` method per registered function."""
    import logging

    from gleitzeit.errors import GleitzeitError, ProviderError
    from gleitzeit.provider import Provider, method

    log = logging.getLogger("gleitzeit.tasks")

    namespace: dict[str, Any] = {
        "name": "python",
        "kind": "extension",
        "description": "Python functions registered with @gleitzeit.task",
        # A task function that raises (or runs past its timeout) fails its task; the
        # other tasks, and its own retries, still run.
        "cools_down": False,
    }
    for task_name, fn in functions.items():
        model = params_model(fn)
        doc = (inspect.getdoc(fn) or "").split("\n\n")[0]

        def make(f: Callable[..., Any]) -> Callable[..., Any]:
            async def handler(self: Any, p: Any) -> dict[str, Any]:
                kwargs = {k: getattr(p, k) for k in type(p).model_fields}
                kwargs.update(p.model_extra or {})
                try:
                    if inspect.iscoroutinefunction(f):
                        value = await f(**kwargs)
                    else:
                        import asyncio

                        # Threads of their own, not the loop's default executor:
                        # stopping the loop (Ctrl-C) must not wait for a sync task.
                        loop = asyncio.get_running_loop()
                        value = await loop.run_in_executor(_threads(), lambda: f(**kwargs))
                except GleitzeitError:
                    raise
                except Exception as exc:
                    # The task's own code failed, not Gleitzeit or a provider.
                    log.debug("task %s raised", f.__qualname__, exc_info=exc)
                    raise ProviderError(
                        f"{f.__module__}.{f.__qualname__} raised {type(exc).__name__}: {exc}",
                        hint="an error in the task function; run with --debug for the traceback",
                    ) from exc
                return {"result": value}

            return handler

        namespace[f"_task_{task_name.replace('.', '_').replace('-', '_')}"] = method(
            f"python/{task_name}", params=model, description=doc or f"python task {task_name}"
        )(make(fn))
    return type("PythonTasks", (Provider,), namespace)
