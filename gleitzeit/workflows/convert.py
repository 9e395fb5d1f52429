"""A workflow as this project's own YAML: for ``gleitzeit convert`` and ``run --explain``."""

from __future__ import annotations

from typing import Any

import yaml

from gleitzeit.workflows.loader import Workflow


def native_mapping(workflow: Workflow) -> dict[str, Any]:
    """The workflow as this project's file would write it (defaults left out)."""
    full = workflow.full_spec()
    data = full.model_dump(mode="json", exclude_defaults=True, by_alias=True)
    data.setdefault("name", full.name)
    # Every task keeps its id and method even where they equal a default.
    for task, spec in zip(data["tasks"], full.tasks, strict=True):
        task["id"], task["method"] = spec.id, spec.method
    return data


def native_yaml(workflow: Workflow) -> str:
    """This project's YAML for ``workflow``; running it gives the same results."""
    return yaml.safe_dump(native_mapping(workflow), sort_keys=False, allow_unicode=True, width=100)


def _has_comments(text: str) -> bool:
    return any(line.lstrip().startswith("#") or " #" in line for line in text.splitlines())


def not_carried(workflow: Workflow) -> list[str]:
    """What a conversion leaves behind, one line each (file:line: what and why)."""
    lines = list(workflow.dropped)
    if _has_comments(workflow.text):
        label = str(workflow.source) if workflow.source else "<workflow>"
        lines.append(f"{label}: comments are not carried over")
    return lines


def explain(workflow: Workflow) -> str:
    """How each construct of the file was read, then the workflow in this project's format."""
    label = str(workflow.source) if workflow.source else "<workflow>"
    out = []
    if workflow.format == "v4":
        out.append(f"{label}: the original Gleitzeit's format (V4), read as follows:")
        out.extend(f"  {note}" for note in workflow.notes)
    else:
        out.append(f"{label}: this project's workflow format; read as written.")
    out.append("")
    out.append("As this project's workflow (what `gleitzeit convert` writes):")
    out.append("")
    out.extend(f"  {line}" for line in native_yaml(workflow).splitlines())
    return "\n".join(out)


__all__ = ["explain", "native_mapping", "native_yaml", "not_carried"]
