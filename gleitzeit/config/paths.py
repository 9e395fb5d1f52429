"""Where ``gleitzeit.yaml`` is: ``--config``, ``$GLEITZEIT_CONFIG``, the working
directory, the user config directory (looked up without reading the file, and
without importing pathlib when there is none: `gleitzeit plugins list` needs neither)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from gleitzeit.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

FILENAME = "gleitzeit.yaml"
ENV_VAR = "GLEITZEIT_CONFIG"


def user_config_path() -> Path:
    """``gleitzeit.yaml`` in the user's config directory (e.g. ~/.config/gleitzeit/)."""
    return _path(_user_config_file())


def _user_config_file() -> str:
    base = _xdg_config_home()
    if base is None:
        import platformdirs

        return os.path.join(platformdirs.user_config_dir("gleitzeit"), FILENAME)
    return os.path.join(base, "gleitzeit", FILENAME)


def _xdg_config_home() -> str | None:
    """On Linux, the XDG base directory rule that platformdirs follows there, read
    without importing it (which costs more than the rest of finding the file): an
    absolute ``$XDG_CONFIG_HOME``, else ``~/.config`` of an absolute home. None for
    anything else (other systems, Android, relative paths): platformdirs decides."""
    if (
        sys.platform != "linux"
        or hasattr(sys, "getandroidapilevel")
        or "ANDROID_DATA" in os.environ
    ):
        return None
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    if xdg:
        return xdg if os.path.isabs(xdg) else None
    home = os.environ.get("HOME", "")
    return os.path.join(home, ".config") if os.path.isabs(home) else None


def find_config_path(
    explicit: str | os.PathLike[str] | None = None, origin: str = "--config"
) -> Path | None:
    """``--config``, then ``$GLEITZEIT_CONFIG``, then ``./gleitzeit.yaml``, then the user
    config directory; None when there is no file (the built-in defaults apply).
    ``origin`` names where ``explicit`` came from, for the error."""
    candidates = ((explicit, origin), (os.environ.get(ENV_VAR) or None, ENV_VAR))
    for given, source in candidates:
        if given:
            path = _path(given).expanduser()
            if not path.is_file():
                raise ConfigError(
                    f"Config file {str(path)!r} (from {source}) does not exist",
                    hint="create one with `gleitzeit config init`",
                )
            return path
    local = os.path.join(os.getcwd(), FILENAME)
    if os.path.isfile(local):
        return _path(local)
    user = _user_config_file()
    if os.path.isfile(user):
        return _path(user)
    return None


def _path(text: str | os.PathLike[str]) -> Path:
    from pathlib import Path

    return Path(text)
