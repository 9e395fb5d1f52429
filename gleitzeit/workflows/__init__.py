"""Workflows: YAML files of tasks that call provider methods and pass results on.

from gleitzeit.workflows import load_workflow, Engine
async with gleitzeit.Host() as host:
    result = await Engine(host).run(load_workflow("flow.yaml"), {"city": "Berlin"})
"""

from gleitzeit.workflows.engine import Engine, RunResult, TaskState
from gleitzeit.workflows.loader import Workflow, WorkflowError, load_workflow, parse_workflow
from gleitzeit.workflows.store import RunStore, default_database

__all__ = [
    "Engine",
    "RunResult",
    "RunStore",
    "TaskState",
    "Workflow",
    "WorkflowError",
    "default_database",
    "load_workflow",
    "parse_workflow",
]
