"""Where ``gleitzeit.yaml`` is: ``--config``, ``$GLEITZEIT_CONFIG``, the working
directory, the user config directory (looked up without reading the file)."""

from __future__ import annotations

import os
from pathlib import Path

from gleitzeit.errors import ConfigError

FILENAME = "gleitzeit.yaml"
ENV_VAR = "GLEITZEIT_CONFIG"


def user_config_path() -> Path:
    """``gleitzeit.yaml`` in the user's config directory (e.g. ~/.config/gleitzeit/)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("gleitzeit")) / FILENAME


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
