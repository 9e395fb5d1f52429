"""Reading and checking a workflow file: schema, ids, dependencies, cycles, references."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gleitzeit._validation import describe_errors, suggest
from gleitzeit._yamllines import Lines, load_mapping
from gleitzeit._yamlread import gc_paused
from gleitzeit.errors import WorkflowError
from gleitzeit.workflows import v4
from gleitzeit.workflows.models import Task, WorkflowSpec
from gleitzeit.workflows.references import (
    REF,
    SPECIAL,
    WHOLE,
    Template,
    compile_refs,
    marked_strings,
)


@dataclass
class Workflow:
    """A checked workflow: its spec, where it came from, and its graph.

    The tasks are :attr:`tasks`, in file order; ``spec.tasks`` is left empty once
    they are read (:meth:`full_spec` gives the spec with them)."""

    spec: WorkflowSpec
    text: str
    source: Path | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    dependents: dict[str, list[str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    #: Tasks whose parameters hold references (the others are passed as they are).
    with_refs: set[str] = field(default_factory=set)
    #: The parameters of the tasks in ``with_refs``, their references found once.
    templates: dict[str, Template] = field(default_factory=dict)
    #: task -> the tasks whose results it reads: its dependencies and any earlier task
    #: (a dependency of a dependency) that its references name.
    reads: dict[str, list[str]] = field(default_factory=dict)
    #: "native", or "v4" for a file in the original Gleitzeit's format.
    format: str = "native"
    #: How each construct of a V4 file was read (``gleitzeit run --explain``).
    notes: list[str] = field(default_factory=list)
    #: V4 constructs with no counterpart in this project's format (``gleitzeit convert``).
    dropped: list[str] = field(default_factory=list)
    #: The inputs the tasks' references name (``${inputs.city}``: ``city``).
    inputs_used: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.spec.name

    def full_spec(self) -> WorkflowSpec:
        """The workflow's spec with its tasks (as pydantic models, not validated anew)."""
        if self.spec.tasks:
            return self.spec
        return self.spec.model_copy(update={"tasks": [t.spec() for t in self.tasks.values()]})


#: Where a ``${`` opens (not an escaped ``$${``).
_OPENS = re.compile(r"(?<!\$)\$\{")


def _scan(strings: list[str]) -> tuple[list[re.Match[str]], list[str]]:
    """The references in ``strings``, each text read once, and the ``${...}`` that are
    none (``${a.b[-1]}``, ``${inputs city}``): sent on as text, those would fail far
    from their cause."""
    refs: list[re.Match[str]] = []
    broken: list[str] = []
    for text in strings:
        found = list(REF.finditer(text))
        refs += found
        # Every reference opens with an unescaped ${: as many of those as references
        # means none is broken (the common case, with no second scan).
        if text.count("${") - text.count("$${") == len(found):
            continue
        starts = {m.start() for m in found}
        for m in _OPENS.finditer(text):
            if m.start() not in starts:
                end = text.find("}", m.start())
                broken.append(text[m.start() : end + 1 if end != -1 else m.start() + 40])
    return refs, broken


def load_workflow(path: str | Path) -> Workflow:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkflowError(f"Cannot read workflow {str(path)!r}: {exc.strerror}") from None
    return parse_workflow(text, source=path)


def parse_workflow(text: str, source: Path | None = None) -> Workflow:
    """Read and check a workflow file's text; every problem found is reported at once,
    each with its file:line."""
    # Everything built here is kept: collections would only walk it, again and again.
    with gc_paused():
        return _parse(text, source)


def _parse(text: str, source: Path | None) -> Workflow:
    label = str(source) if source else "<workflow>"
    data = load_mapping(text, label, WorkflowError)
    lines = Lines(text)
    locate: Callable[[tuple[Any, ...]], int | None] = lines.locate
    notes: list[str] = []
    dropped: list[str] = []
    form = "native"
    if v4.is_v4(data):
        form = "v4"
        converted = v4.normalise(data, label, lines.locate)
        if converted.problems:
            raise WorkflowError(f"Invalid workflow {label}", problems=converted.problems)
        data, notes, dropped = converted.data, converted.notes, converted.dropped
        locate = converted.locator(lines.locate)

    def where(loc: tuple[Any, ...]) -> str:
        line = locate(loc)
        return f"{label}:{line}: " if line else f"{label}: "

    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        found = describe_errors(exc, model=WorkflowSpec, source=label, locate=locate)
        named = [_name_task(problem, data) for problem in found]
        raise WorkflowError(f"Invalid workflow {label}", problems=named) from None
    # The models hold copies of what they need: the parsed tree goes now, so what is
    # built next reuses its memory instead of adding to the peak.
    del data

    problems: list[str] = []
    tasks: dict[str, Task] = {}
    index: dict[str, int] = {}
    for i, model in enumerate(spec.tasks):
        task = model if isinstance(model, Task) else Task(model)  # kept as a Task already
        if task.id in SPECIAL:
            problems.append(
                f"{where(('tasks', i, 'id'))}tasks[{i}]: the task id {task.id!r} is reserved: "
                f"${{{task.id}...}} means the built-in {task.id!r}; rename the task"
            )
            continue
        if task.id in tasks:
            problems.append(
                f"{where(('tasks', i, 'id'))}tasks[{i}]: duplicate task id {task.id!r} "
                f"(first used by tasks[{index[task.id]}])"
            )
            continue
        tasks[task.id] = task
        index[task.id] = i
    # The tasks live on as Task objects, in ``tasks``: their models go now.
    spec.tasks = []
    declared_inputs = set(spec.inputs)
    inputs_used: set[str] = set()
    reads: dict[str, list[str]] = {}
    with_refs: set[str] = set()
    templates: dict[str, Template] = {}
    for task_id, task in tasks.items():
        i = index[task_id]
        for dep in task.dependencies:
            if dep == task_id:
                problems.append(
                    f"{where(('tasks', i, 'dependencies'))}task {task_id!r} depends on itself"
                )
            elif dep not in tasks:
                near = suggest(dep, list(tasks))
                problems.append(
                    f"{where(('tasks', i, 'dependencies'))}task {task_id!r}: unknown dependency "
                    f"{dep!r}" + (f"; did you mean {near!r}?" if near else "")
                )
        marked = marked_strings(task.parameters)
        if marked:
            with_refs.add(task_id)
            templates[task_id] = compile_refs(task.parameters)
        checked: list[tuple[str, list[str]]] = [("parameters", marked)]
        if isinstance(task.for_each, str):
            if not WHOLE.match(task.for_each):
                problems.append(
                    f"{where(('tasks', i, 'for_each'))}task {task_id!r}: for_each must be one "
                    f"reference such as '${{other_task.items}}', a list, or {{glob: ...}}"
                )
            checked.append(("for_each", [task.for_each]))
        elif isinstance(task.for_each, list):
            checked.append(("for_each", marked_strings(task.for_each)))
        deps = task.dependencies
        # Most tasks read just their dependencies: the same list serves (copied when
        # a reference adds a task to it, or when a dependency is listed twice).
        read = deps if len(deps) < 2 or len(set(deps)) == len(deps) else list(dict.fromkeys(deps))
        reads[task_id] = read
        earlier: set[str] | None = None
        for fieldname, strings in checked:
            refs, not_refs = _scan(strings)
            for broken in not_refs:
                problems.append(
                    f"{where(('tasks', i, fieldname))}task {task_id!r}: {broken!r} is not a "
                    "reference (write ${task.field}, ${task.list[0]}, ${inputs.name}; "
                    "$${ writes a literal ${)"
                )
            for root, path in (m.groups() for m in refs):
                at = ("tasks", i, fieldname)
                ref = f"${{{root}{path}}}"
                if root == "inputs":
                    name = path.lstrip(".").split(".")[0].split("[")[0]
                    if name:
                        inputs_used.add(name)
                    if declared_inputs and name not in declared_inputs:
                        near = suggest(name, sorted(declared_inputs))
                        problems.append(
                            f"{where(at)}task {task_id!r}: {ref} names an undeclared input {name!r}"
                            + (f"; did you mean {near!r}?" if near else "")
                        )
                elif root in ("item", "item_index"):
                    if task.for_each is None or fieldname == "for_each":
                        problems.append(
                            f"{where(at)}task {task_id!r}: {ref} is only for tasks with for_each"
                        )
                elif root == "env":
                    if not path.startswith(".") or path.count(".") != 1 or "[" in path:
                        problems.append(
                            f"{where(at)}task {task_id!r}: {ref}: environment variables are "
                            "read as ${env.NAME}"
                        )
                elif root not in tasks:
                    near = suggest(root, list(tasks))
                    problems.append(
                        f"{where(at)}task {task_id!r}: {ref} refers to an unknown task {root!r}"
                        + (f"; did you mean {near!r}?" if near else "")
                    )
                elif root == task_id:
                    problems.append(
                        f"{where(at)}task {task_id!r}: {ref} refers to the task itself; a "
                        "task cannot use its own result (write $${...} for a literal ${...})"
                    )
                elif root not in task.dependencies:
                    # A dependency's dependency has completed before this task starts,
                    # so reading it is safe; anything else could still be running.
                    if earlier is None:
                        earlier = _ancestors(task_id, tasks)
                    if root in earlier:
                        if root not in read:
                            if read is deps:
                                read = reads[task_id] = list(deps)
                            read.append(root)
                    else:
                        problems.append(
                            f"{where(at)}task {task_id!r}: {ref} refers to task {root!r}, which is "
                            f"not among its dependencies; add it to dependencies"
                        )
    order, left = _kahn(tasks)
    cycle = _find_cycle(tasks, left) if left else None
    if cycle:
        first = index[cycle[0]]
        problems.append(
            f"{where(('tasks', first, 'dependencies'))}dependency cycle: {' -> '.join(cycle)} "
            "(each task depends on the next)"
        )
    if problems:
        raise WorkflowError(f"Invalid workflow {label}", problems=problems)

    dependents: dict[str, list[str]] = {t: [] for t in tasks}
    for task_id, task in tasks.items():
        for dep in task.dependencies:
            dependents[dep].append(task_id)
    return Workflow(
        spec=spec,
        text=text,
        source=source,
        tasks=tasks,
        dependents=dependents,
        order=order,
        with_refs=with_refs,
        templates=templates,
        reads=reads,
        format=form,
        notes=notes,
        dropped=dropped,
        inputs_used=inputs_used,
    )


def _ancestors(task_id: str, tasks: dict[str, Task]) -> set[str]:
    """Every task that ``task_id`` waits for, directly or through others."""
    seen: set[str] = set()
    todo = [d for d in tasks[task_id].dependencies if d in tasks]
    while todo:
        node = todo.pop()
        if node in seen or node == task_id:
            continue
        seen.add(node)
        todo.extend(d for d in tasks[node].dependencies if d in tasks)
    return seen


def _name_task(problem: str, data: dict[str, Any]) -> str:
    """'tasks[2].method: ...' reads better as "tasks[2] (id 'x').method: ..."."""
    tasks = data.get("tasks")
    if not isinstance(tasks, list):
        return problem
    for i, task in enumerate(tasks):
        marker = f"tasks[{i}]"
        if marker in problem and isinstance(task, dict) and isinstance(task.get("id"), str):
            return problem.replace(marker, f"{marker} (id {task['id']!r})", 1)
    return problem


def _kahn(tasks: dict[str, Task]) -> tuple[list[str], set[str]]:
    """Topological order (dependencies first) and the tasks left over (on or behind a
    cycle). Iterative, so a chain of thousands of tasks is fine."""
    waiting = {t: len(set(spec.dependencies) & tasks.keys()) for t, spec in tasks.items()}
    dependents: dict[str, list[str]] = {t: [] for t in tasks}
    for t, spec in tasks.items():
        for dep in set(spec.dependencies):
            if dep in tasks:
                dependents[dep].append(t)
    ready = [t for t, n in waiting.items() if n == 0]
    order: list[str] = []
    while ready:
        node = ready.pop()
        order.append(node)
        for nxt in dependents[node]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
    return order, set(tasks) - set(order)


def _find_cycle(tasks: dict[str, Task], left: set[str]) -> list[str]:
    """One cycle among ``left`` (the tasks :func:`_kahn` could not order), as
    ``a -> b -> ... -> a`` where each task depends on the next."""
    # Every leftover task has a leftover dependency; walking them must come back round.
    node = min(left)
    seen: dict[str, int] = {}
    path: list[str] = []
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(d for d in tasks[node].dependencies if d in left)
    return path[seen[node] :] + [node]


__all__ = ["REF", "Workflow", "WorkflowError", "load_workflow", "parse_workflow"]
