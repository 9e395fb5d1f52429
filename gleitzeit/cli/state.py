"""What the commands of one ``gleitzeit`` run share: options, config and plugins,
each loaded once and only when a command needs it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from gleitzeit.api import Api
    from gleitzeit.config import Config
    from gleitzeit.host import Host
    from gleitzeit.plugins import Plugins


class CliState:
    def __init__(self, config_path: str | None = None, debug: bool = False) -> None:
        self.config_path = config_path
        #: Where config_path came from, for messages: --config or $GLEITZEIT_CONFIG.
        self.config_origin = "--config"
        self.debug = debug
        self._config: Config | None = None
        self._plugins: Plugins | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from gleitzeit.config import load_config

            self._config = load_config(self.config_path, self.config_origin)
        return self._config

    @property
    def plugins(self) -> Plugins:
        if self._plugins is None:
            from gleitzeit.config.paths import find_config_path
            from gleitzeit.plugins import Plugins

            if (
                self._config is None
                and find_config_path(self.config_path, self.config_origin) is None
            ):
                # no file: the defaults, no model to build
                self._plugins = Plugins.load(lazy=True)
            else:
                self._plugins = Plugins.load(self.config, lazy=True)
        return self._plugins

    def host(self, *, lazy: bool = False) -> Host:
        from gleitzeit.host import Host

        return Host(self.config, plugins=self.plugins, lazy=lazy)

    def api(self, server_url: str | None, token: str | None, *, lazy: bool = True) -> Api:
        """Where a command's calls go: the server at ``server_url`` (``--server``), or
        an in-process host (lazy: providers start when a call needs them)."""
        if server_url:
            from gleitzeit.socketio.client import Client

            return Client(server_url, token=token)
        return self.host(lazy=lazy)


def state_of(ctx: click.Context) -> CliState:
    """The shared state, made from the top-level options on first use."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        params = root.params
        root.obj = CliState(params.get("config_path"), bool(params.get("debug")))
    return root.obj


pass_state = click.make_pass_decorator(CliState, ensure=False)
