"""Where ``gleitzeit.yaml`` is: ``--config``, ``$GLEITZEIT_CONFIG``, the working
directory, the user config directory (looked up without reading the file)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gleitzeit.errors import ConfigError

FILENAME = "gleitzeit.yaml"
ENV_VAR = "GLEITZEIT_CONFIG"


def user_config_path() -> Path:
    """``gleitzeit.yaml`` in the user's config directory (e.g. ~/.config/gleitzeit/)."""
    base = _xdg_config_home()
    if base is None:
        import platformdirs

        return Path(platformdirs.user_config_dir("gleitzeit")) / FILENAME
    return Path(base) / "gleitzeit" / FILENAME


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
            path = Path(given).expanduser()
            if not path.is_file():
                raise ConfigError(
                    f"Config file {str(path)!r} (from {source}) does not exist",
                    hint="create one with `gleitzeit config init`",
                )
            return path
    local = Path.cwd() / FILENAME
    if local.is_file():
        return local
    user = user_config_path()
    if user.is_file():
        return user
    return None
