"""The pydantic models of a workflow file."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"

#: Task priorities, lowest first: among tasks waiting for a slot, higher runs first.
PRIORITIES: tuple[str, ...] = ("low", "normal", "high", "urgent")
Priority = Literal["low", "normal", "high", "urgent"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RetryPolicy(_Strict):
    """How a failed task is tried again."""

    max_attempts: int = Field(1, ge=1, le=100, description="tries in all, the first included")
    backoff: Literal["fixed", "linear", "exponential", "custom"] = "exponential"
    base_delay: float = Field(1.0, ge=0, description="seconds before the second try")
    max_delay: float = Field(60.0, ge=0, description="longest wait between tries")
    jitter: float = Field(
        0.1, ge=0, le=1, description="random fraction added to or taken from each wait"
    )
    delays: list[float] | None = Field(
        None, description="backoff: custom: the wait after each failed try; the last repeats"
    )
    retry_on_timeout: bool = Field(True, description="retry a try that ran out of time")
    retry_on_provider_error: bool = Field(True, description="retry a provider's failure")
    retry_on_validation_error: bool = Field(
        False, description="retry invalid parameters (only useful when they come from a reference)"
    )

    @model_validator(mode="after")
    def _delays_for_custom(self) -> RetryPolicy:
        if self.backoff == "custom" and not self.delays:
            raise ValueError(
                "backoff: custom needs delays: [seconds, ...] (the wait after each try)"
            )
        if self.delays is not None and self.backoff != "custom":
            raise ValueError("delays is only for backoff: custom")
        if self.delays is not None and any(d < 0 for d in self.delays):
            raise ValueError("delays must not be negative")
        return self

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if self.backoff == "fixed":
            base = self.base_delay
        elif self.backoff == "linear":
            base = self.base_delay * attempt
        elif self.backoff == "custom":
            assert self.delays is not None
            base = self.delays[min(attempt, len(self.delays)) - 1]
        else:
            base = self.base_delay * 2 ** (attempt - 1)
        base = min(base, self.max_delay)
        return max(0.0, base * (1 + self.jitter * (2 * rand - 1)))


class GlobSpec(_Strict):
    glob: str = Field(description="files matching this pattern, relative to the current directory")


class TaskSpec(_Strict):
    """One task: a provider method call."""

    id: str = Field(pattern=ID_PATTERN)
    name: str | None = Field(None, max_length=200, description="display name, shown in progress")
    method: str = Field(min_length=1)
    provider: str | None = None
    model: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    dependencies: list[str] = Field(default_factory=list)
    retry: RetryPolicy | None = None
    timeout: float | None = Field(None, gt=0, description="seconds one try may take")
    for_each: str | list[Any] | GlobSpec | None = Field(
        None, description="run once per item: a ${task.field} list, a literal list, or {glob: ...}"
    )
    batch: bool = Field(
        False,
        description="a fan-out over files whose failed items are recorded, not fatal; the "
        "result also maps each file to {status, content|result|error}",
    )
    priority: Priority = Field(
        "normal", description="among tasks waiting for a slot, higher priorities start first"
    )
    tools: list[str | dict[str, Any]] | None = Field(
        None,
        description="for llm/chat: Gleitzeit methods or patterns (calc/*) the model may "
        "call, run by the host; OpenAI function objects pass to the model",
    )
    max_tool_rounds: int | None = Field(
        None, ge=1, le=100, description="most rounds of tool calls before the task fails"
    )
    description: str = ""

    @field_validator("dependencies", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _batch_is_a_fan_out(self) -> TaskSpec:
        if self.batch and self.for_each is None:
            raise ValueError("batch: true needs for_each (the files to run the task over)")
        return self


class Task:
    """A checked task as a workflow keeps it: the fields of its :class:`TaskSpec` in
    slots (a validated pydantic model per task costs some 600 bytes more)."""

    __slots__ = (
        "id",
        "name",
        "method",
        "provider",
        "model",
        "parameters",
        "dependencies",
        "retry",
        "timeout",
        "for_each",
        "batch",
        "priority",
        "tools",
        "max_tool_rounds",
        "description",
    )

    def __init__(self, spec: TaskSpec) -> None:
        self.id: str = spec.id
        self.name: str | None = spec.name
        self.method: str = spec.method
        self.provider: str | None = spec.provider
        self.model: str | None = spec.model
        self.parameters: dict[str, Any] = spec.parameters
        self.dependencies: list[str] = spec.dependencies
        self.retry: RetryPolicy | None = spec.retry
        self.timeout: float | None = spec.timeout
        self.for_each: str | list[Any] | GlobSpec | None = spec.for_each
        self.batch: bool = spec.batch
        self.priority: Priority = spec.priority
        self.tools: list[str | dict[str, Any]] | None = spec.tools
        self.max_tool_rounds: int | None = spec.max_tool_rounds
        self.description: str = spec.description

    def spec(self) -> TaskSpec:
        """The task as its pydantic model again (not validated anew)."""
        return TaskSpec.model_construct(**{name: getattr(self, name) for name in self.__slots__})

    def __repr__(self) -> str:
        return f"Task(id={self.id!r}, method={self.method!r})"


class InputSpec(_Strict):
    default: Any = None
    description: str = ""
    required: bool = False


def _as_spec(task: Task | TaskSpec) -> TaskSpec:
    """A task to serialize, as its model."""
    return task.spec() if isinstance(task, Task) else task


class WorkflowSpec(_Strict):
    """A workflow file."""

    name: str = Field("workflow", max_length=200)
    description: str = ""
    inputs: dict[str, InputSpec | str | int | float | bool | list | None] = Field(
        default_factory=dict, description="name: default, or name: {default, description, required}"
    )
    imports: list[str] = Field(
        default_factory=list,
        description="Python modules (or .py files, relative to the workflow) with @gleitzeit.task functions",
    )
    concurrency: int | None = Field(None, ge=1, le=1000)
    timeout: float | None = Field(
        None, gt=0, description="seconds the whole run may take; what is left is then cancelled"
    )
    #: Each task is validated as a TaskSpec and kept as a :class:`Task` at once, so a
    #: file's models never all exist together (the loader then moves them to
    #: ``Workflow.tasks``).
    tasks: list[
        Annotated[TaskSpec, AfterValidator(Task), PlainSerializer(_as_spec, return_type=TaskSpec)]
    ] = Field(min_length=1)

    def input_specs(self) -> dict[str, InputSpec]:
        out = {}
        for name, value in self.inputs.items():
            out[name] = value if isinstance(value, InputSpec) else InputSpec(default=value)
        return out
