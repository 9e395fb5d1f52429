"""The ``gleitzeit`` command line."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from gleitzeit._version import __version__
from gleitzeit.cli.state import state_of

#: The built-in commands, by name, and the module of ``gleitzeit.cli`` defining each (in
#: its ``COMMANDS``): a module is imported when one of its commands is used or listed.
_BUILTIN_COMMANDS = {
    "plugins": "plugins_cmd",
    "config": "config_cmd",
    "providers": "providers_cmd",
    "serve": "serve_cmd",
    "provider": "serve_cmd",
    "run": "run_cmd",
    "runs": "run_cmd",
    "convert": "convert_cmd",
    "status": "status_cmd",
    "chat": "chat_cmd",
    "token": "token_cmd",
}


class GleitzeitGroup(click.Group):
    """The top-level group: built-in commands, then commands that plugins add.

    A built-in command's module is imported when the command is used (or for
    ``--help``); plugin commands are looked up only when a name is not built in (or
    for ``--help``), so plain commands never pay for them twice.
    """

    _plugin_commands_loaded = False

    def _load_builtin(self, module: str) -> None:
        import importlib

        for command in importlib.import_module(f"gleitzeit.cli.{module}").COMMANDS:
            if command.name not in self.commands:
                self.add_command(command)

    def _load_plugin_commands(self, ctx: click.Context) -> None:
        if self._plugin_commands_loaded:
            return
        self._plugin_commands_loaded = True
        state = state_of(ctx)
        try:
            plugins = state.plugins
        except Exception as exc:  # a bad config must not hide the built-in commands
            logging.getLogger("gleitzeit.cli").debug("plugin commands unavailable: %s", exc)
            return
        before = set(self.commands)
        for rec, result in plugins.call_each("gleitzeit_register_commands", cli=self):
            if isinstance(result, Exception):
                click.echo(f"warning: plugin {rec.name}: {result}", err=True)
        for name in set(self.commands) - before:
            logging.getLogger("gleitzeit.cli").debug("plugin command %s added", name)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in _BUILTIN_COMMANDS:
            self._load_builtin(_BUILTIN_COMMANDS[cmd_name])
            cmd = super().get_command(ctx, cmd_name)
        if cmd is None:
            self._load_plugin_commands(ctx)
            cmd = super().get_command(ctx, cmd_name)
        if cmd is None:  # the original Gleitzeit's spelling: say what to type now
            from gleitzeit.cli.renamed import renamed_command

            cmd = renamed_command("gleitzeit", cmd_name)
        if cmd is None:
            cmd = self._disabled_plugin_command(ctx, cmd_name)
        return cmd

    def _disabled_plugin_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A command named after an installed plugin that is switched off: say so, rather
        than click's bare "No such command"."""
        import os

        try:
            rec = state_of(ctx).plugins.records.get(cmd_name)
        except Exception:  # a bad config: click's own message then
            return None
        if rec is None or rec.status != "disabled":
            return None
        only = os.environ.get("GLEITZEIT_PLUGINS")
        why = (
            f"GLEITZEIT_PLUGINS={only!r} leaves it out"
            if only is not None
            else "it is switched off in gleitzeit.yaml (plugins:)"
        )

        from gleitzeit.cli.renamed import refusing_command

        return refusing_command(
            cmd_name,
            f"`{cmd_name}` would come from the {cmd_name} plugin, which is installed but "
            f"disabled: {why}",
        )

    def list_commands(self, ctx: click.Context) -> list[str]:
        for module in dict.fromkeys(_BUILTIN_COMMANDS.values()):
            self._load_builtin(module)
        self._load_plugin_commands(ctx)
        return super().list_commands(ctx)


@click.group(cls=GleitzeitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, "--version", prog_name="gleitzeit", message="%(prog)s %(version)s"
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="GLEITZEIT_CONFIG",
    help="Config file (default: ./gleitzeit.yaml, then the user config dir).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """Gleitzeit routes requests to LLM, tool and extension providers that arrive as plugins."""
    state = state_of(ctx)
    state.config_path, state.debug = config_path, debug
    if ctx.get_parameter_source("config_path") == click.core.ParameterSource.ENVIRONMENT:
        state.config_origin = "$GLEITZEIT_CONFIG"
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if debug:  # the request lines' fields (call_id, outcome, ms, ...) shown too
        from gleitzeit.logs import TextFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(TextFormatter())


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: run the CLI, turning errors into exit codes 1 and 2."""
    from gleitzeit.errors import GleitzeitError

    args = list(argv if argv is not None else sys.argv[1:])
    # --debug is a top-level option, but users type it anywhere (`providers invoke ...
    # --debug`): move it to the front, unless it comes after `--`.
    end = args.index("--") if "--" in args else len(args)
    debug = "--debug" in args[:end]
    if debug:
        args = ["--debug"] + [a for i, a in enumerate(args) if a != "--debug" or i >= end]
    try:
        return cli.main(args=args, prog_name="gleitzeit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except GleitzeitError as exc:
        if debug:
            raise
        shown = f"error: {exc}"
        if exc.call_id is not None and "\n" not in shown:
            shown += f" [call {exc.call_id}]"
        click.echo(shown, err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        click.echo(
            f"error: internal error: {type(exc).__name__}: {exc}\n"
            "  hint: run again with --debug for the traceback, and report it",
            err=True,
        )
        sys.exit(1)
