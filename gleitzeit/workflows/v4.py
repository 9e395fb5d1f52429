"""Workflow files in the original Gleitzeit's format (V4), read as this project's own.

A V4 file is recognised by its markers (``params``, a task ``name`` without ``id``,
``version``, ``protocol``, ``type: batch``, ``variables``, numeric priorities, ...) and
normalised into the mapping a :class:`~gleitzeit.workflows.models.WorkflowSpec` is
made from, with one note per construct saying how it was read (``gleitzeit run
--explain``, ``gleitzeit convert``). Fields that cannot keep their meaning here are
refused with what to write instead; none is dropped without a note.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gleitzeit._validation import describe_errors
from gleitzeit.workflows.models import ID_PATTERN, PRIORITIES

Loc = tuple[Any, ...]
Locate = Callable[[Loc], "int | None"]

_TOP_MARKERS = frozenset(
    {
        "version",
        "protocol",
        "type",
        "batch",
        "template",
        "variables",
        "wait_for_completion",
        "max_parallel_tasks",
        "priority",
        "metadata",
        "tags",
        "id",
    }
)
_TASK_MARKERS = frozenset({"params", "protocol", "metadata", "tags"})
_RETRY_MARKERS = frozenset({"backoff_strategy", "initial_delay"})
#: The original loader's reading of numeric priorities.
_NUMERIC_PRIORITY = {1: "high", 2: "normal", 3: "low"}
_ANY_REF = re.compile(r"\$\{([^}]*)\}")
_ID = re.compile(ID_PATTERN)


def is_v4(data: dict[str, Any]) -> bool:
    """Whether a parsed workflow file is in the original Gleitzeit's format."""
    if _TOP_MARKERS & data.keys():
        return True
    tasks = data.get("tasks")
    if not isinstance(tasks, list):
        return False
    for task in tasks:
        if not isinstance(task, dict):
            continue
        if _TASK_MARKERS & task.keys() or ("name" in task and "id" not in task):
            return True
        if isinstance(task.get("priority"), int) and not isinstance(task.get("priority"), bool):
            return True
        retry = task.get("retry")
        if isinstance(retry, dict) and (
            _RETRY_MARKERS & retry.keys() or isinstance(retry.get("jitter"), bool)
        ):
            return True
    return "${workflow." in repr(tasks)


# -- the V4 file, as the original accepted it -------------------------------------------


class _V4(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class V4Retry(_V4):
    """A V4 task's ``retry``: defaults as the original's loader set them."""

    max_attempts: int = Field(3, ge=1, le=100)
    backoff: Literal["fixed", "linear", "exponential", "custom"] | None = None
    backoff_strategy: Literal["fixed", "linear", "exponential", "custom"] | None = None
    base_delay: float | None = Field(None, ge=0)
    initial_delay: float | None = Field(None, ge=0)
    max_delay: float = Field(300.0, ge=0)
    jitter: bool | float = True
    delays: list[float] | None = None
    retry_on_timeout: bool = True
    retry_on_provider_error: bool = True
    retry_on_validation_error: bool = False


class V4Task(_V4):
    """One V4 task; ``provider``, ``model`` and ``for_each`` of this project are accepted too."""

    id: str | int | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = None
    protocol: str | None = None
    method: str = Field(min_length=1)
    params: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None
    dependencies: list[str | int] = Field(default_factory=list)
    priority: str | int | None = None
    timeout: float | None = Field(None, gt=0)
    retry: V4Retry | None = None
    metadata: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None
    provider: str | None = None
    model: str | None = None
    for_each: Any = None

    @field_validator("dependencies", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, (str, int)) else value


class V4Batch(_V4):
    """``batch:`` of a ``type: batch`` workflow: a directory and pattern, or a list."""

    directory: str | None = None
    pattern: str = "*"
    files: list[str] | None = None
    image_paths: list[str] | None = None


class V4Workflow(_V4):
    """A V4 workflow file; this project's ``inputs``, ``imports`` and ``concurrency``
    are accepted beside the original's fields."""

    id: str | None = None
    name: str = Field("workflow", max_length=200)
    description: str = ""
    version: str | int | float | None = None
    protocol: str | None = None
    priority: str | int | None = None
    timeout: float | None = Field(None, gt=0)
    wait_for_completion: bool | None = None
    max_parallel_tasks: int | None = Field(None, ge=1, le=1000)
    type: Literal["batch", "workflow", "standard"] | None = None
    batch: V4Batch | None = None
    template: dict[str, Any] | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    imports: list[str] = Field(default_factory=list)
    concurrency: int | None = Field(None, ge=1, le=1000)
    tasks: list[V4Task] | None = None


# -- the result of normalising --------------------------------------------------------


@dataclass
class Converted:
    """A V4 file as this project's workflow mapping, with how each part was read."""

    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: Constructs that have no counterpart in this project's format (for convert).
    dropped: list[str] = field(default_factory=list)
    #: Prefixes of locations in ``data`` -> the same place in the V4 file.
    locmap: dict[Loc, Loc] = field(default_factory=dict)

    def locator(self, base: Locate) -> Locate:
        """A locate function for ``data`` that answers with the V4 file's lines."""

        def locate(loc: Loc) -> int | None:
            for n in range(len(loc), 0, -1):
                mapped = self.locmap.get(tuple(loc[:n]))
                if mapped is not None:
                    line = base(mapped + tuple(loc[n:]))
                    if line:
                        return line
            return base(loc)

        return locate


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", text.strip()).strip("_") or "task"
    if not re.match(r"[A-Za-z_]", slug):
        slug = "t_" + slug
    return slug[:64]


def _priority(value: str | int | None) -> tuple[str | None, str | None]:
    """(this project's priority, a note) or (None, the problem)."""
    if value is None:
        return "normal", None
    if isinstance(value, bool):
        return None, f"priority must be one of {', '.join(PRIORITIES)}, got {value!r}"
    if isinstance(value, int):
        if value in _NUMERIC_PRIORITY:
            word = _NUMERIC_PRIORITY[value]
            return (
                word,
                f"priority {value} read as {word!r} (the original's 1 high, 2 normal, 3 low)",
            )
        return (
            "normal",
            f"priority {value} read as 'normal', as the original read numbers other than 1-3",
        )
    word = value.strip().lower()
    if word in PRIORITIES:
        return word, None
    return None, (
        f"priority {value!r} is not one of {', '.join(PRIORITIES)} "
        "(or 1 high, 2 normal, 3 low); use one of those"
    )


class _Normaliser:
    def __init__(self, raw: dict[str, Any], label: str, locate: Locate) -> None:
        self.raw = raw
        self.label = label
        self.locate = locate
        self.out = Converted(data={})
        self.ids: dict[str, str] = {}  # V4 id or name -> this project's id
        self.methods: dict[str, str] = {}  # this project's id -> method
        self._lines: list[int] = []  # the line of each note, to list them in file order

    def at(self, *loc: Any) -> str:
        line = self.locate(tuple(loc))
        return f"{self.label}:{line}: " if line else f"{self.label}: "

    def note(self, loc: Loc, text: str) -> None:
        self.out.notes.append(f"{self.at(*loc)}{text}")
        self._lines.append(self.locate(loc) or 0)

    def drop(self, loc: Loc, text: str) -> None:
        self.note(loc, text)
        self.out.dropped.append(f"{self.at(*loc)}{text}")

    def problem(self, loc: Loc, text: str) -> None:
        self.out.problems.append(f"{self.at(*loc)}{text}")

    # -- the whole file ---------------------------------------------------------------

    def run(self) -> Converted:
        try:
            wf = V4Workflow.model_validate(self.raw)
        except ValidationError as exc:
            self.out.problems.extend(
                describe_errors(exc, model=V4Workflow, source=self.label, locate=self.locate)
            )
            return self.out
        data: dict[str, Any] = {"name": wf.name}
        self.note((), "read as a workflow in the original Gleitzeit's format (V4)")
        if wf.description:
            data["description"] = wf.description
        self._workflow_fields(wf, data)
        inputs: dict[str, Any] = dict(wf.inputs)
        for key, value in wf.variables.items():
            inputs[key] = value
            self.out.locmap[("inputs", key)] = ("variables", key)
        if wf.variables:
            self.note(
                ("variables",),
                "variables: read as inputs with these defaults; ${workflow.variables.NAME} "
                "is ${inputs.NAME}, and --input NAME=value overrides one",
            )
        if inputs:
            data["inputs"] = inputs
        if wf.imports:
            data["imports"] = wf.imports
        concurrency = wf.concurrency or wf.max_parallel_tasks
        if concurrency:
            data["concurrency"] = concurrency
            if wf.max_parallel_tasks and not wf.concurrency:
                self.out.locmap[("concurrency",)] = ("max_parallel_tasks",)
                self.note(("max_parallel_tasks",), "max_parallel_tasks: read as concurrency")
        if wf.timeout is not None:
            data["timeout"] = wf.timeout
            self.note(
                ("timeout",),
                f"timeout: {wf.timeout:g}s for the whole run; what is left then is cancelled "
                "and recorded as failed",
            )
        is_batch = wf.type == "batch" or wf.batch is not None or wf.template is not None
        if is_batch:
            if wf.tasks:
                self.problem(
                    ("tasks",),
                    "a type: batch workflow runs its template per file and has no tasks: list; "
                    "put these tasks in a workflow of their own",
                )
                return self.out
            task = self._batch(wf)
            tasks = [task] if task is not None else []
        else:
            if not wf.tasks:
                self.problem(("tasks",), "tasks: a workflow needs at least one task")
                return self.out
            tasks = self._tasks(wf)
        data["tasks"] = tasks
        self.out.data = data
        order = sorted(range(len(self.out.notes)), key=lambda n: self._lines[n])
        self.out.notes = [self.out.notes[n] for n in order]
        return self.out

    def _workflow_fields(self, wf: V4Workflow, data: dict[str, Any]) -> None:
        if wf.version is not None:
            self.drop(("version",), f"version {wf.version!r}: the format's version; nothing to do")
        if wf.id is not None:
            self.drop(
                ("id",), f"id {wf.id!r}: each run gets its own id (see `gleitzeit runs list`)"
            )
        if wf.priority is not None:
            self.drop(
                ("priority",),
                f"priority {wf.priority!r}: orders whole workflows in the original's queue; "
                "gleitzeit run runs one workflow, so there is nothing to order "
                "(task priorities do order tasks)",
            )
        if wf.wait_for_completion is not None:
            self.drop(
                ("wait_for_completion",),
                f"wait_for_completion: {str(wf.wait_for_completion).lower()}: gleitzeit run "
                "always waits for the run to end; to leave it running, start it in the "
                "background and follow it with `gleitzeit runs show RUN_ID`",
            )
        if wf.protocol is not None and wf.type != "batch" and wf.batch is None:
            self.drop(
                ("protocol",),
                f"protocol {wf.protocol!r}: each task's method prefix picks its provider",
            )
        for key in ("metadata", "tags"):
            if getattr(wf, key):
                self.drop((key,), f"{key}: not used by gleitzeit run")

    # -- tasks ------------------------------------------------------------------------

    def _tasks(self, wf: V4Workflow) -> list[dict[str, Any]]:
        assert wf.tasks is not None
        taken: set[str] = set()
        plan: list[str] = []
        for i, task in enumerate(wf.tasks):
            raw_id = str(task.id) if task.id is not None else None
            base = raw_id or task.name or f"task_{i + 1}"
            new = base if _ID.match(base) else _slug(base)
            n = 2
            while new in taken:
                new = f"{_slug(base)[:60]}_{n}"
                n += 1
            taken.add(new)
            plan.append(new)
            if raw_id is None and task.name is None:
                self.note(("tasks", i), f"task without id or name: given id {new!r}")
            elif new != base:
                what = "id" if raw_id is not None else "name"
                self.note(
                    ("tasks", i, what),
                    f"{what} {base!r}: task id {new!r} (ids are letters, digits, _ and -); "
                    f"references and dependencies naming {base!r} are read as {new!r}",
                )
            elif raw_id is None:
                self.note(("tasks", i, "name"), f"name {base!r}: also the task's id")
            # The original looked dependencies up by name first, then by id.
            if task.name is not None:
                self.ids.setdefault(task.name, new)
            if raw_id is not None:
                self.ids.setdefault(raw_id, new)
            self.methods[new] = self._method(task, ("tasks", i), quiet=True)
        for new in list(self.ids.values()):
            self.ids.setdefault(new, new)
        return [self._task(task, i, plan[i]) for i, task in enumerate(wf.tasks)]

    def _method(self, task: V4Task | dict[str, Any], loc: Loc, *, quiet: bool = False) -> str:
        method = task.method if isinstance(task, V4Task) else str(task.get("method", "llm/chat"))
        protocol = task.protocol if isinstance(task, V4Task) else None
        if protocol is None:
            return method
        family = protocol.split("/", 1)[0]
        if "/" in method:
            if method.split("/", 1)[0] != family and not quiet:
                self.problem(
                    loc + ("protocol",),
                    f"protocol {protocol!r} does not match method {method!r}; the method's "
                    "prefix picks the provider, so remove protocol or fix the method",
                )
            elif not quiet:
                self.drop(
                    loc + ("protocol",), f"protocol {protocol!r}: implied by method {method!r}"
                )
            return method
        if not quiet:
            self.note(
                loc + ("method",),
                f"method {method!r} with protocol {protocol!r}: read as {family}/{method}",
            )
        return f"{family}/{method}"

    def _task(self, task: V4Task, i: int, task_id: str) -> dict[str, Any]:
        loc: Loc = ("tasks", i)
        out: dict[str, Any] = {"id": task_id}
        if task.name is not None and task.name != task_id:
            out["name"] = task.name
        method = self._method(task, loc)
        out["method"] = method
        if task.provider:
            out["provider"] = task.provider
        if task.model:
            out["model"] = task.model
        if task.params is not None and task.parameters is not None:
            self.problem(loc, "give params or parameters, not both")
        params = dict(task.params if task.params is not None else task.parameters or {})
        key = "params" if task.params is not None else "parameters"
        self.out.locmap[loc + ("parameters",)] = loc + (key,)
        for_each: Any = task.for_each
        batch = False
        if params.get("batch_mode"):
            for_each, params = self._batch_mode(params, method, loc + (key,))
            batch = for_each is not None
        params = self._refs(params, loc + (key,), task_id)
        out["parameters"] = params
        if task.dependencies:
            deps = []
            for dep in task.dependencies:
                dep = str(dep)
                deps.append(self.ids.get(dep, dep))
            out["dependencies"] = list(dict.fromkeys(deps))
        if for_each is not None:
            out["for_each"] = self._refs(for_each, loc + ("for_each",), task_id)
        if batch:
            out["batch"] = True
        if task.timeout is not None:
            out["timeout"] = task.timeout
        retry = self._retry(task.retry, loc + ("retry",))
        if retry is not None:
            out["retry"] = retry
        priority, text = _priority(task.priority)
        if priority is None:
            self.problem(loc + ("priority",), str(text))
        else:
            if priority != "normal":
                out["priority"] = priority
            if text:
                self.note(loc + ("priority",), text)
        if task.description:
            out["description"] = task.description
        for extra in ("metadata", "tags"):
            if getattr(task, extra):
                self.drop(loc + (extra,), f"{extra}: not used by gleitzeit run")
        return out

    def _batch_mode(
        self, params: dict[str, Any], method: str, loc: Loc
    ) -> tuple[Any, dict[str, Any]]:
        """``batch_mode: true`` with ``files``/``image_paths``: one call per file."""
        params = dict(params)
        params.pop("batch_mode")
        files = params.pop("files", None)
        images = params.pop("image_paths", None)
        if (files is None) == (images is None):
            self.problem(
                loc + ("batch_mode",),
                "batch_mode: true needs exactly one of files: [...] or image_paths: [...]",
            )
            return None, params
        items = files if files is not None else images
        key = "image_path" if images is not None or method == "llm/vision" else "file_path"
        params[key] = "${item}"
        self.note(
            loc + ("batch_mode",),
            f"batch_mode with {'files' if files is not None else 'image_paths'}: one call per "
            f"file (for_each, {key}: ${{item}}); the result maps each file to "
            "{status, content|result|error} under 'files', as well as items/results/count",
        )
        return list(items), params

    def _retry(self, retry: V4Retry | None, loc: Loc) -> dict[str, Any] | None:
        if retry is None:
            return None
        out: dict[str, Any] = {"max_attempts": retry.max_attempts}
        backoff = retry.backoff or retry.backoff_strategy or "exponential"
        out["backoff"] = backoff
        base = retry.base_delay if retry.base_delay is not None else retry.initial_delay
        if base is not None:
            out["base_delay"] = base
        out["max_delay"] = retry.max_delay
        if isinstance(retry.jitter, bool):
            # The original multiplied each wait by a random factor between 0.5 and 1.5.
            out["jitter"] = 0.5 if retry.jitter else 0.0
        elif 0 <= retry.jitter <= 1:
            out["jitter"] = retry.jitter
        else:
            self.problem(
                loc + ("jitter",), f"jitter must be true, false or 0-1, got {retry.jitter}"
            )
        if backoff == "custom":
            if not retry.delays:
                self.problem(
                    loc + ("backoff",),
                    "backoff: custom ran a Python function in the original, which a workflow "
                    "file cannot name; list the waits instead (delays: [1, 5, 30]) or use "
                    "fixed, linear or exponential",
                )
            else:
                out["delays"] = retry.delays
        elif retry.delays:
            self.problem(loc + ("delays",), "delays is only for backoff: custom")
        for switch in ("retry_on_timeout", "retry_on_provider_error", "retry_on_validation_error"):
            value = getattr(retry, switch)
            if switch in retry.model_fields_set:
                out[switch] = value
        notes = []
        if "max_attempts" not in retry.model_fields_set:
            notes.append("max_attempts 3 (the original's default)")
        if "max_delay" not in retry.model_fields_set:
            notes.append("max_delay 300s (the original's default)")
        if isinstance(retry.jitter, bool):
            notes.append(f"jitter {'±50%' if retry.jitter else 'off'}")
        if notes:
            self.note(loc, "retry: " + ", ".join(notes))
        return out

    # -- references -------------------------------------------------------------------

    def _refs(self, value: Any, loc: Loc, task_id: str) -> Any:
        if isinstance(value, str):
            if "${" not in value:
                return value
            return _ANY_REF.sub(lambda m: self._ref(m, loc, task_id), value)
        if isinstance(value, dict):
            return {k: self._refs(v, loc + (k,), task_id) for k, v in value.items()}
        if isinstance(value, list):
            return [self._refs(v, loc + (n,), task_id) for n, v in enumerate(value)]
        return value

    def _ref(self, match: re.Match[str], loc: Loc, task_id: str) -> str:
        inner = match.group(1).strip()
        original = match.group(0)
        if inner.startswith("workflow.variables."):
            new = "${inputs." + inner.removeprefix("workflow.variables.") + "}"
            return new
        if inner.startswith("workflow.") or inner == "workflow":
            self.problem(
                loc,
                f"task {task_id!r}: {original}: of the workflow only variables can be read "
                "(${workflow.variables.NAME})",
            )
            return original
        if inner.startswith("config."):
            self.problem(
                loc,
                f"task {task_id!r}: {original}: configuration values cannot be read in a "
                "workflow; pass the value as a variable or --input",
            )
            return original
        if task_id == "batch" and inner == "file_path":
            return "${item}"  # the original's name for the file a batch template runs on
        root, dot, path = inner.partition(".")
        if root in ("inputs", "env", "item", "item_index"):
            return original
        ref_id = self.ids.get(root, self.ids.get(root.strip()))
        if ref_id is None:
            return original  # the loader reports the unknown task, with a suggestion
        parts = path.split(".") if dot else []
        if self.methods.get(ref_id, "").startswith("llm/"):
            # The original's LLM results carried the text as both response and content,
            # and paths often went through the task's 'result' wrapper.
            if parts and parts[0] == "result":
                parts = parts[1:]
            if not parts or parts[0] == "content":
                parts = ["response"] + parts[1:]
        elif not parts:
            parts = ["result"]  # the original read ${task} as the task's result
        new = "${" + ref_id + "".join(f".{p}" for p in parts) + "}"
        if new != original:
            self.note(loc, f"{original} read as {new}")
        return new

    # -- type: batch ------------------------------------------------------------------

    def _batch(self, wf: V4Workflow) -> dict[str, Any] | None:
        batch, template = wf.batch, dict(wf.template or {})
        if batch is None:
            self.problem(
                (), "type: batch needs batch: {directory, pattern} or batch: {files: [...]}"
            )
            return None
        if not wf.template:
            self.problem((), "type: batch needs template: (the task run for each file)")
            return None
        sources = [k for k in ("directory", "files", "image_paths") if getattr(batch, k)]
        if len(sources) != 1:
            self.problem(
                ("batch",),
                "batch: give exactly one of directory (with pattern), files or image_paths",
            )
            return None
        method = str(template.pop("method", "llm/chat"))
        if "/" not in method:
            self.problem(
                ("template", "method"),
                f"template.method {method!r} needs its prefix, e.g. llm/chat",
            )
        loc: Loc = ("template",)
        self.out.locmap[("tasks", 0, "parameters")] = loc
        self.out.locmap[("tasks", 0)] = loc
        task: dict[str, Any] = {"id": "batch", "method": method}
        python = method == "python/execute" or (wf.protocol or "").startswith("python/")
        for key in ("provider",):
            if key in template:
                task[key] = template.pop(key)
        priority, text = _priority(template.pop("priority", None))
        if priority is None:
            self.problem(loc + ("priority",), str(text))
        elif priority != "normal":
            task["priority"] = priority
        if "retry" in template:
            try:
                retry = V4Retry.model_validate(template.pop("retry"))
            except ValidationError as exc:
                self.out.problems.extend(
                    describe_errors(
                        exc,
                        model=V4Retry,
                        prefix=loc + ("retry",),
                        source=self.label,
                        locate=self.locate,
                    )
                )
            else:
                task["retry"] = self._retry(retry, loc + ("retry",))
        if "timeout" in template and not python:
            # The original put it among the parameters; only python/execute reads it there.
            task["timeout"] = template.pop("timeout")
            self.note(loc + ("timeout",), "template timeout: seconds each file's call may take")
        if batch.directory:
            pattern = str(PurePosixPath(batch.directory) / batch.pattern)
            task["for_each"] = {"glob": pattern}
            where = f"the files matching {pattern!r} (sorted; relative to the current directory)"
            self.out.locmap[("tasks", 0, "for_each")] = ("batch",)
        else:
            task["for_each"] = list(batch.files or batch.image_paths or [])
            where = "the listed files"
        if python:
            context = dict(template.get("context") or {})
            context["file_path"] = "${item}"
            template["context"] = context
            key = "context.file_path"
        elif method == "llm/vision" or batch.image_paths:
            template["image_path"] = "${item}"
            key = "image_path"
        else:
            template["file_path"] = "${item}"
            key = "file_path"
        task["parameters"] = self._refs(template, loc, "batch")
        task["batch"] = True
        self.note(
            ("type",) if wf.type else ("batch",),
            f"type: batch: one task 'batch' running {method} over {where}, each file as "
            f"{key}; its result maps each file to {{status, content|result|error}} under "
            "'files' (the original's shape), beside items/results/count",
        )
        if wf.protocol:
            self.drop(("protocol",), f"protocol {wf.protocol!r}: read to place the file ({key})")
        return task


def normalise(data: dict[str, Any], label: str, locate: Locate) -> Converted:
    """A V4 workflow mapping as this project's, with notes and problems (file:line)."""
    return _Normaliser(data, label, locate).run()


__all__ = ["Converted", "V4Task", "V4Workflow", "is_v4", "normalise"]
