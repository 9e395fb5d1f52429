"""Commands of the original Gleitzeit that are spelled differently here: asking for one
answers with what to type now, instead of click's bare "No such command"."""

from __future__ import annotations

import click

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
    ("config", "providers"): "use `gleitzeit providers list` (and `gleitzeit config show`)",
    ("config", "create"): "use `gleitzeit config init --path FILE`",
}


def renamed_command(group: str, name: str) -> click.Command | None:
    """A stand-in for an old command that says what to use instead, exit 2."""
    instead = RENAMED.get((group, name))
    if instead is None:
        return None

    @click.command(
        name,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
        hidden=True,
    )
    def moved() -> None:
        raise click.UsageError(f"`{name}` is not a command here: {instead}")

    return moved


class GroupWithRenames(click.Group):
    """A command group that answers the original's spellings of its commands."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        return found if found is not None else renamed_command(self.name or "", cmd_name)
