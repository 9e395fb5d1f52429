"""Glue for running a workflow file: imports, the api to run against, the store."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

from gleitzeit._validation import suggest
from gleitzeit._yamllines import Lines
from gleitzeit.aliases import METHOD_ALIASES
from gleitzeit.api import Api
from gleitzeit.errors import ConfigError
from gleitzeit.host import Host
from gleitzeit.workflows.loader import Workflow, WorkflowError


def import_task_modules(workflow: Workflow) -> None:
    """Import the workflow's ``imports`` (modules, or .py files next to it), so their
    ``@gleitzeit.task`` functions are registered before the host starts."""
    base = workflow.source.resolve().parent if workflow.source else Path.cwd()
    for entry in workflow.spec.imports:
        try:
            if entry.endswith(".py"):
                path = (base / entry).resolve()
                name = f"gleitzeit_tasks_{path.stem}"
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                for where in (str(base), str(Path.cwd())):
                    if where not in sys.path:
                        sys.path.insert(0, where)
                importlib.import_module(entry)
        except Exception as exc:
            raise WorkflowError(
                f"workflow {workflow.name!r}: cannot import {entry!r}: {type(exc).__name__}: {exc}"
            ) from None


class HybridApi:
    """A remote server for provider methods, this process for ``python/*`` tasks (the
    functions live here, not on the server). Keeps the :class:`gleitzeit.Api` contract."""

    def __init__(self, remote: Api, local: Api) -> None:
        self.remote = remote
        self.local = local

    def _target(self, method: str) -> Api:
        return self.local if method.startswith("python/") else self.remote

    async def __aenter__(self) -> HybridApi:
        await self.remote.__aenter__()
        await self.local.__aenter__()
        return self

    async def __aexit__(
        self,
        et: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.local.__aexit__(et, exc, tb)
        await self.remote.__aexit__(et, exc, tb)

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
        return await self._target(method).invoke(
            method, params, provider=provider, model=model, capability=capability, timeout=timeout
        )

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
        return self._target(method).stream(
            method,
            params,
            provider=provider,
            model=model,
            capability=capability,
            chunk_timeout=chunk_timeout,
        )

    async def providers(self, *, check: bool = False) -> list[dict[str, Any]]:
        """The server's instances, and this process's ``python`` provider."""
        local = [p for p in await self.local.providers(check=check) if p["name"] == "python"]
        remote = [p for p in await self.remote.providers(check=check) if p["name"] != "python"]
        return remote + local

    async def health(self, name: str | None = None) -> list[dict[str, Any]]:
        if name == "python":
            return await self.local.health(name)
        return await self.remote.health(name)


async def served_capabilities(api: Api) -> dict[str, set[str]]:
    """provider name -> capabilities, wherever ``api`` runs them."""
    out: dict[str, set[str]] = {}
    for item in await api.providers():
        out.setdefault(item["name"], set()).update(item.get("capabilities") or ())
    return out


async def served_methods(api: Api) -> dict[str, set[str]]:
    """provider name -> methods, wherever ``api`` runs them."""
    out: dict[str, set[str]] = {}
    for item in await api.providers():
        out.setdefault(item["name"], set()).update(item["methods"])
    return out


async def check_methods(workflow: Workflow, api: Api) -> None:
    """Every task's method and provider exist where the workflow will run."""
    served = await served_methods(api)
    known = {m for ms in served.values() for m in ms}
    unknown = {t.method for t in workflow.tasks.values() if "/" in t.method} - known
    if unknown and isinstance(api, Host):
        # Providers that learn their methods when they start (MCP servers) may serve
        # them; a server has started its providers already.
        for method in sorted(unknown):
            await api.ensure_started(method=method)
        served = await served_methods(api)
    every = sorted({m for ms in served.values() for m in ms})
    problems = []
    source = str(workflow.source) if workflow.source else "<workflow>"
    capabilities: dict[str, set[str]] | None = None
    lines = Lines(workflow.text) if workflow.format == "native" else None

    def at(index: int) -> str:
        """The file and line of task ``index``'s method (the text is parsed again for
        line numbers only when a task has a problem)."""
        n = lines.locate(("tasks", index, "method")) if lines is not None else None
        return f"{source}:{n}" if n else source

    for index, (task_id, task) in enumerate(workflow.tasks.items()):
        alias = METHOD_ALIASES.get(task.method)
        if alias is not None:
            # e.g. llm/vision: llm/chat on a provider that declares the capability.
            if capabilities is None:
                capabilities = await served_capabilities(api)
            target, capability = alias
            able = [
                name
                for name, methods in served.items()
                if target in methods
                and capability in capabilities.get(name, set())
                and (task.provider is None or name == task.provider)
            ]
            if not able:
                which = (
                    f"provider {task.provider!r} does not declare it"
                    if task.provider
                    else "no provider here declares it"
                )
                problems.append(
                    f"{at(index)}: task {task_id!r}: {task.method} is {target} on a provider with "
                    f"the {capability!r} capability, and {which}"
                )
            continue
        pool = every
        if task.provider is not None:
            if task.provider not in served:
                near = suggest(task.provider, sorted(served))
                problems.append(
                    f"{at(index)}: task {task_id!r}: unknown provider {task.provider!r}"
                    + (f"; did you mean {near!r}?" if near else "")
                    + f" (available: {', '.join(sorted(served)) or 'none'})"
                )
                continue
            pool = sorted(served[task.provider])
        method = task.method
        if method in pool:
            continue
        if "/" not in method and len([m for m in pool if m.split("/", 1)[1] == method]) == 1:
            continue
        near = suggest(method, pool)
        where = f" on provider {task.provider!r}" if task.provider else ""
        problems.append(
            f"{at(index)}: task {task_id!r}: unknown method {method!r}{where}"
            + (f"; did you mean {near!r}?" if near else "")
        )
    if problems:
        raise WorkflowError(
            f"Workflow {workflow.name!r} calls what is not served",
            problems=problems,
            hint="see `gleitzeit providers list`",
        )


#: Methods that run code named in the workflow file itself.
EXECUTE_METHODS = ("python/execute",)


def check_execute(workflow: Workflow, allowed: bool) -> None:
    """Refuse, before anything runs, a workflow that runs code when that is off."""
    if allowed:
        return
    label = str(workflow.source) if workflow.source else "<workflow>"
    users = [t for t, task in workflow.tasks.items() if task.method in EXECUTE_METHODS]
    if users:
        raise WorkflowError(
            f"Workflow {workflow.name!r} runs Python code from its file (python/execute in "
            f"task{'s' if len(users) > 1 else ''} {', '.join(users)}), which is off",
            problems=[f"{label}: task {t!r}: python/execute" for t in users],
            hint="enable it with workflows.allow_execute: true in gleitzeit.yaml, "
            "or run with `gleitzeit run --allow-execute` if you trust this file",
        )


def parse_inputs(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``name=value`` pairs. A value is text unless it reads back exactly as written:
    a number in its plain form (``3``, ``-2``, ``1.5``), ``true``, ``false``, ``null``,
    or a ``[...]`` list or ``{...}`` mapping. ``01234``, ``0x1F``, ``1.10``, ``no`` and
    ``on`` stay text (YAML 1.1 would turn them into other values)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--input {pair!r} must look like name=value")
        out[name.strip()] = _input_value(raw)
    return out


_PLAIN = {"true": True, "false": False, "null": None}


def _input_value(raw: str) -> Any:
    if raw in _PLAIN:
        return _PLAIN[raw]
    if raw[:1] in ("[", "{"):
        import yaml

        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            return raw
        return value if isinstance(value, (list, dict)) else raw
    for kind in (int, float):
        try:
            number = kind(raw)
        except ValueError:
            continue
        # Only the number's own spelling: "01234" (a ZIP code) and "1.10" stay text.
        return number if repr(number) == raw else raw
    return raw
