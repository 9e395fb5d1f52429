"""Finding installed plugins (entry points) and importing the enabled ones.

The ``gleitzeit.plugins`` group is scanned once per process (and again only when
``sys.path`` changes); listing reads package metadata only. Nothing is imported until
a plugin is loaded, and then only the plugins asked for, each on its own through its
own entry point (filter by name before import, as stevedore does), so one that fails
to import cannot stop the others.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import os
import re
import sys
from pathlib import Path
from typing import Any

GROUP = "gleitzeit.plugins"


class InstalledPlugin:
    """One entry point in the ``gleitzeit.plugins`` group (a plain class, not a
    dataclass, whose methods would be generated and compiled at every import)."""

    __slots__ = ("distribution", "entry_point", "name", "value", "version")

    def __init__(
        self,
        name: str,
        value: str,
        distribution: str | None,
        version: str | None,
        entry_point: importlib.metadata.EntryPoint | None = None,
    ) -> None:
        self.name = name
        self.value = value
        self.distribution = distribution
        self.version = version
        self.entry_point = entry_point

    def __repr__(self) -> str:
        return (
            f"InstalledPlugin(name={self.name!r}, value={self.value!r}, "
            f"distribution={self.distribution!r}, version={self.version!r})"
        )

    def load(self) -> Any:
        """Import the object behind the entry point; raise whatever the import raised."""
        if self.entry_point is None:
            raise LookupError(f"no entry point named {self.name!r} in group {GROUP!r}")
        return self.entry_point.load()


_scanned: tuple[tuple[str, ...], list[InstalledPlugin]] | None = None


def installed_plugins() -> list[InstalledPlugin]:
    """Every plugin entry point installed in this environment, first one per name."""
    global _scanned
    path = tuple(sys.path)
    if _scanned is not None and _scanned[0] == path:
        return list(_scanned[1])
    seen: dict[str, InstalledPlugin] = {}
    for dist in _distributions():
        # Most distributions have no plugin: their entry points are not parsed.
        text = dist.read_text("entry_points.txt")
        if not text or f"[{GROUP}]" not in text:
            continue
        name, version = _name_and_version(dist)
        for ep in _group_entry_points(text):
            if ep.name not in seen:
                seen[ep.name] = InstalledPlugin(ep.name, ep.value, name, version, ep)
    _scanned = (path, list(seen.values()))
    return list(_scanned[1])


def _distributions() -> list[importlib.metadata.Distribution]:
    """Every installed distribution once, the first on ``sys.path`` of each name (as
    ``importlib.metadata.distributions()`` finds and ``entry_points()`` takes them).

    A folder on ``sys.path`` is listed here and its ``*.dist-info`` / ``*.egg-info``
    folders read with plain file calls: importlib.metadata makes pathlib objects for
    each, which is most of what finding the plugins costs. Zip files and eggs on the
    path, and other finders of distributions, are left to importlib.metadata."""
    found: dict[str, importlib.metadata.Distribution] = {}
    if any(
        getattr(finder, "find_distributions", None) is not None
        and finder is not importlib.machinery.PathFinder
        for finder in sys.meta_path
    ):
        _add_found(found, importlib.metadata.distributions())
        return list(found.values())
    for entry in sys.path:
        folder = entry or "."
        try:
            if folder.lower().endswith(".egg"):
                raise NotADirectoryError(folder)  # an egg: importlib.metadata reads those
            children = os.listdir(folder)
        except NotADirectoryError:  # a zip file, or an egg
            _add_found(found, importlib.metadata.distributions(path=[entry]))
            continue
        except OSError:
            continue
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")):
                key = _normalise(low.rpartition(".")[0].partition("-")[0])
                if key not in found:
                    found[key] = _FolderDistribution(os.path.join(folder, child))
    return list(found.values())


def _add_found(
    found: dict[str, importlib.metadata.Distribution],
    dists: Any,
) -> None:
    for dist in dists:
        # The normalised name importlib.metadata itself goes by, from the folder's
        # name; the metadata file is read only where there is no such name.
        key = getattr(dist, "_normalized_name", None) or _normalise(str(dist.metadata["Name"]))
        found.setdefault(key, dist)


def _normalise(name: str) -> str:
    """A distribution's name as importlib.metadata compares them (PEP 503, with ``_``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


class _FolderDistribution(importlib.metadata.Distribution):
    """A distribution's metadata folder, read with plain file calls."""

    def __init__(self, folder: str) -> None:
        self._folder = folder

    def read_text(self, filename: str) -> str | None:
        try:
            with open(os.path.join(self._folder, filename), encoding="utf-8") as file:
                return file.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            return None

    def locate_file(self, path: str | os.PathLike[str]) -> Path:
        return Path(self._folder).parent / path


def _group_entry_points(text: str) -> list[importlib.metadata.EntryPoint]:
    """The entry points of the ``gleitzeit.plugins`` section of an ``entry_points.txt``
    (an ini file of ``name = module:attr`` lines), without reading the file again."""
    found = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == GROUP:
            name, sep, value = line.partition("=")
            if sep:
                found.append(
                    importlib.metadata.EntryPoint(
                        name=name.strip(), value=value.strip(), group=GROUP
                    )
                )
    return found


def _name_and_version(dist: importlib.metadata.Distribution) -> tuple[str | None, str | None]:
    """The distribution's Name and Version, read from the headers of its metadata file
    (``dist.metadata`` parses the whole file, description included, as an email)."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            break  # the end of the headers
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version") and key not in found:
            found[key] = value.strip()
            if len(found) == 2:
                break
    if len(found) < 2:
        meta = dist.metadata
        return meta["Name"], meta["Version"]
    return found["Name"], found["Version"]


def import_plugin(name: str) -> Any:
    """Import the object behind entry point ``name``; raise whatever the import raised."""
    for plugin in installed_plugins():
        if plugin.name == name:
            return plugin.load()
    raise LookupError(f"no entry point named {name!r} in group {GROUP!r}")
