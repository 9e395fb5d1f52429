"""Glue for running a workflow file: imports, the api to run against, the store."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from gleitzeit.aliases import METHOD_ALIASES
from gleitzeit.errors import ConfigError
from gleitzeit.validation import suggest
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
    functions live here, not on the server)."""

    def __init__(self, remote: Any, local: Any) -> None:
        self.remote = remote
        self.local = local

    async def __aenter__(self) -> HybridApi:
        await self.remote.__aenter__()
        await self.local.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.local.__aexit__(*exc)
        await self.remote.__aexit__(*exc)

    async def invoke(self, method: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
        target = self.local if method.startswith("python/") else self.remote
        return await target.invoke(method, params, **kw)


async def served_capabilities(api: Any) -> dict[str, set[str]]:
    """provider name -> capabilities, from a Host, a Client or a HybridApi."""
    if isinstance(api, HybridApi):
        return await served_capabilities(api.remote)
    out: dict[str, set[str]] = {}
    if hasattr(api, "registry"):
        for inst in api.registry:
            out.setdefault(inst.name, set()).update(inst.capabilities)
        return out
    for item in await api.providers():
        out.setdefault(item["name"], set()).update(item.get("capabilities") or ())
    return out


async def served_methods(api: Any) -> dict[str, set[str]]:
    """provider name -> methods, from a Host, a Client or a HybridApi."""
    if isinstance(api, HybridApi):
        merged = await served_methods(api.remote)
        for name, methods in (await served_methods(api.local)).items():
            if name == "python":
                merged[name] = methods
        return merged
    out: dict[str, set[str]] = {}
    if hasattr(api, "registry"):
        for inst in api.registry:
            out.setdefault(inst.name, set()).update(inst.methods)
        return out
    for item in await api.providers():
        out.setdefault(item["name"], set()).update(item["methods"])
    return out


async def check_methods(workflow: Workflow, api: Any) -> None:
    """Every task's method and provider exist where the workflow will run."""
    served = await served_methods(api)
    every = sorted({m for ms in served.values() for m in ms})
    problems = []
    label = str(workflow.source) if workflow.source else "<workflow>"
    capabilities: dict[str, set[str]] | None = None
    for task_id, task in workflow.tasks.items():
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
                    f"{label}: task {task_id!r}: {task.method} is {target} on a provider with "
                    f"the {capability!r} capability, and {which}"
                )
            continue
        pool = every
        if task.provider is not None:
            if task.provider not in served:
                near = suggest(task.provider, sorted(served))
                problems.append(
                    f"{label}: task {task_id!r}: unknown provider {task.provider!r}"
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
            f"{label}: task {task_id!r}: unknown method {method!r}{where}"
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
    """``name=value`` pairs; values are read as YAML scalars (3 is a number)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--input {pair!r} must look like name=value")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        out[name.strip()] = (
            value
            if isinstance(value, (str, int, float, bool, list, dict)) or value is None
            else raw
        )
    return out
