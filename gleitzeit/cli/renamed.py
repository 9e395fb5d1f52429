"""Commands of the original Gleitzeit that are spelled differently here: asking for one
answers with what to type now, instead of click's bare "No such command"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: (group, old command) -> what to type now.
RENAMED: dict[tuple[str, str], str] = {
    ("gleitzeit", "logs"): (
        "`gleitzeit serve` writes its log to stderr (--debug for more); "
        "a workflow's record is in `gleitzeit runs show RUN_ID`"
    ),
    ("gleitzeit", "monitor"): (
        "use `gleitzeit providers health --server URL` (or `gleitzeit status --server URL`), "
        "and `gleitzeit run` shows live progress"
    ),
    ("gleitzeit", "submit"): (
        "use `gleitzeit run FILE`; against a server: `gleitzeit run FILE --server URL`"
    ),
    ("gleitzeit", "batch"): (
        'write a workflow task with `for_each: {glob: "DIR/*.txt"}` and `batch: true` '
        "(docs/migrating.md), or run the original's `type: batch` file with `gleitzeit run`"
    ),
    ("gleitzeit", "init"): (
        "copy an example from examples/; `gleitzeit config init` writes a commented gleitzeit.yaml"
    ),
    ("gleitzeit", "exec"): (
        "write a workflow task `method: python/execute` with `code:`, and run it with "
        "`gleitzeit run FILE --allow-execute`"
    ),
    ("config", "providers"): "use `gleitzeit providers list` (and `gleitzeit config show`)",
    ("config", "create"): "use `gleitzeit config init --path FILE`",
}


def refusing_command(name: str, message: str) -> click.Command:
    """A hidden stand-in for command ``name`` that takes any arguments and answers
    ``message`` as a usage error (exit 2)."""

    @click.command(
        name,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
        hidden=True,
    )
    def refuse() -> None:
        raise click.UsageError(message)

    return refuse


def renamed_command(group: str, name: str) -> click.Command | None:
    """A stand-in for an old command that says what to use instead, exit 2."""
    instead = RENAMED.get((group, name))
    if instead is None:
        return None
    return refusing_command(name, f"`{name}` is not a command here: {instead}")


class GroupWithRenames(click.Group):
    """A command group that answers the original's spellings of its commands."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        return found if found is not None else renamed_command(self.name or "", cmd_name)


#: Options of the original's `run` -> what to type now.
RUN_OPTIONS = {
    "--watch": "progress is always shown; --json prints only the results",
    "--output": "`gleitzeit run FILE --json > results.json`",
    "--backend": "runs are stored in SQLite (workflows.database); --db FILE picks the file",
}

#: Options of the original's `serve` -> what to type now.
SERVE_OPTIONS = {
    "--provider-config": (
        "providers come from the providers: and plugins: sections of gleitzeit.yaml "
        "(--config FILE); remote providers connect with `gleitzeit provider run NAME "
        "--server URL`. See docs/migrating.md"
    ),
}


def renamed_options(options: dict[str, str]) -> Callable[[F], F]:
    """Hidden options that answer the original's spellings with what to type now."""

    def refuse(ctx: click.Context, param: click.Parameter, value: object) -> None:
        if value:
            name = param.opts[0]
            raise click.UsageError(f"`{name}` is not an option here: {options[name]}")

    def add(fn: F) -> F:
        for name in options:
            fn = click.option(
                name,
                f"_old_{name.strip('-')}",
                hidden=True,
                expose_value=False,
                is_flag=name == "--watch",
                callback=refuse,
            )(fn)
        return fn

    return add
