"""Find, read, substitute and validate ``gleitzeit.yaml``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gleitzeit._validation import describe_errors, dotted
from gleitzeit._yamllines import line_map, load_mapping
from gleitzeit._yamllines import locate as find_line
from gleitzeit.config.models import Config
from gleitzeit.config.paths import find_config_path
from gleitzeit.config.substitution import substitute
from gleitzeit.errors import ConfigError

__all__ = ["find_config_path", "load_config", "parse_config"]


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
    problems += _plugin_switches(data, label, locate)
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


_TRUE = frozenset({"true", "yes", "on", "1", "y", "t"})
_FALSE = frozenset({"false", "no", "off", "0", "n", "f"})


def as_bool(value: Any) -> bool | None:
    """A boolean as YAML 1.1 and pydantic read one (``yes``, ``Off``, ``1``...), from
    a value that substitution or quoting left as a string; None when it is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return None


def _plugin_switches(data: Any, label: str, locate: Any) -> list[str]:
    """``plugins.<name>: ${FLAG}`` and ``plugins.<name>.enabled: "false"`` are switches:
    read them as booleans here (the section itself is untyped), in place."""
    plugins = data.get("plugins") if isinstance(data, dict) else None
    if not isinstance(plugins, dict):
        return []
    problems = []
    for name, section in plugins.items():
        if isinstance(section, dict) and "enabled" in section:
            loc: tuple[Any, ...] = ("plugins", name, "enabled")
            value = section["enabled"]
        elif isinstance(section, (str, int)) and not isinstance(section, bool):
            loc, value = ("plugins", name), section
        else:
            continue
        flag = as_bool(value)
        if flag is None:
            line = locate(loc)
            where = f"{label}:{line}" if line else label
            problems.append(
                f"{where}: {dotted(loc)}: not a boolean (got {value!r}); use true or false"
            )
            flag = True  # reported above; keep the model from reporting it again
        if len(loc) == 3:
            section["enabled"] = flag
        else:
            plugins[name] = flag
    return problems


def _drop(data: Any, loc: tuple[Any, ...]) -> None:
    node = data
    for key in loc[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(node, dict):
        node.pop(loc[-1], None)


def load_config(explicit: str | os.PathLike[str] | None = None, origin: str = "--config") -> Config:
    """Find and load the config; the built-in defaults when there is no file."""
    path = find_config_path(explicit, origin)
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {str(path)!r}: {exc.strerror}") from None
    return parse_config(text, source=path)
