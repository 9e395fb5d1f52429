"""The pydantic models of a workflow file."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RetryPolicy(_Strict):
    """How a failed task is tried again."""

    max_attempts: int = Field(1, ge=1, le=100, description="tries in all, the first included")
    backoff: Literal["fixed", "exponential"] = "exponential"
    base_delay: float = Field(1.0, ge=0, description="seconds before the second try")
    max_delay: float = Field(60.0, ge=0, description="longest wait between tries")
    jitter: float = Field(
        0.1, ge=0, le=1, description="random fraction added to or taken from each wait"
    )

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        base = self.base_delay if self.backoff == "fixed" else self.base_delay * 2 ** (attempt - 1)
        base = min(base, self.max_delay)
        return max(0.0, base * (1 + self.jitter * (2 * rand - 1)))


class GlobSpec(_Strict):
    glob: str = Field(description="files matching this pattern, relative to the current directory")


class TaskSpec(_Strict):
    """One task: a provider method call."""

    id: str = Field(pattern=ID_PATTERN)
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
    description: str = ""

    @field_validator("dependencies", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class InputSpec(_Strict):
    default: Any = None
    description: str = ""
    required: bool = False


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
    tasks: list[TaskSpec] = Field(min_length=1)

    def input_specs(self) -> dict[str, InputSpec]:
        out = {}
        for name, value in self.inputs.items():
            out[name] = value if isinstance(value, InputSpec) else InputSpec(default=value)
        return out
