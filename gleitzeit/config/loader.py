"""Find, read, substitute and validate ``gleitzeit.yaml``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gleitzeit.config.models import Config
from gleitzeit.config.substitution import substitute
from gleitzeit.errors import ConfigError
from gleitzeit.validation import describe_errors, dotted
from gleitzeit.yamllines import line_map, load_mapping
from gleitzeit.yamllines import locate as find_line

FILENAME = "gleitzeit.yaml"
ENV_VAR = "GLEITZEIT_CONFIG"


def user_config_path() -> Path:
    """``gleitzeit.yaml`` in the user's config directory (e.g. ~/.config/gleitzeit/)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("gleitzeit")) / FILENAME


def find_config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """``--config``, then ``$GLEITZEIT_CONFIG``, then ``./gleitzeit.yaml``, then the user
    config directory; None when there is no file (the built-in defaults apply)."""
    for given, origin in ((explicit, "--config"), (os.environ.get(ENV_VAR) or None, ENV_VAR)):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                raise ConfigError(
                    f"Config file {str(path)!r} (from {origin}) does not exist",
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


def parse_config(
    text: str, source: Path | None = None, env: dict[str, str] | None = None
) -> Config:
    """Validate config text; raise :class:`ConfigError` naming file, line, field and value."""
    label = str(source) if source else "<config>"
    data = load_mapping(text, label, ConfigError)
    lines = line_map(text)

    def locate(loc: tuple[Any, ...]) -> int | None:
        return find_line(lines, loc)

    data, missing = substitute(data, env)
    problems: list[str] = []
    plugin_problems: dict[str, list[str]] = {}
    for m in missing:
        line = locate(m.loc)
        where = f"{label}:{line}" if line else label
        text_ = (
            f"{where}: {dotted(m.loc)}: environment variable {m.name} is not set "
            f"(value {m.value!r}); set it or write ${{{m.name}:-default}}"
        )
        if len(m.loc) >= 3 and m.loc[0] == "plugins":
            # A missing secret is that one plugin's problem, not the whole host's: the
            # setting is left out (so the plugin's own default or env fallback applies,
            # and its provider can say what is missing) and the problem is reported.
            plugin_problems.setdefault(str(m.loc[1]), []).append(text_)
            _drop(data, m.loc)
        else:
            problems.append(text_)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += describe_errors(
            exc, model=Config, source=label, locate=locate, skip={m.loc for m in missing}
        )
    if problems:
        raise ConfigError(f"Invalid configuration in {label}", problems=problems)
    config._source = source
    config._lines = lines
    config._plugin_problems = plugin_problems
    return config


def _drop(data: Any, loc: tuple[Any, ...]) -> None:
    node = data
    for key in loc[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(node, dict):
        node.pop(loc[-1], None)


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Find and load the config; the built-in defaults when there is no file."""
    path = find_config_path(explicit)
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {str(path)!r}: {exc.strerror}") from None
    return parse_config(text, source=path)
