"""Finding installed plugins (entry points) and importing the enabled ones.

The ``gleitzeit.plugins`` group is scanned once per process (and again only when
``sys.path`` changes); listing reads package metadata only. Nothing is imported until
a plugin is loaded, and then only the plugins asked for, each on its own through its
own entry point (filter by name before import, as stevedore does), so one that fails
to import cannot stop the others.

The metadata folders (``*.dist-info``, ``*.egg-info``) in the folders on ``sys.path``
are found and read here with plain file calls, as importlib.metadata finds them:
importing importlib.metadata (email, zipfile, csv, ...) costs more than the rest of
``gleitzeit plugins list``. It is imported only for what it alone reads: zip files and
eggs on the path, other finders of distributions, metadata without Name and Version
headers.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import importlib.metadata

GROUP = "gleitzeit.plugins"


class InstalledPlugin:
    """One entry point in the ``gleitzeit.plugins`` group (a plain class, not a
    dataclass, whose methods would be generated and compiled at every import)."""

    __slots__ = ("distribution", "name", "value", "version")

    def __init__(
        self, name: str, value: str, distribution: str | None, version: str | None
    ) -> None:
        self.name = name
        #: ``module:attr`` (an object in a module) or ``module``.
        self.value = value
        self.distribution = distribution
        self.version = version

    def __repr__(self) -> str:
        return (
            f"InstalledPlugin(name={self.name!r}, value={self.value!r}, "
            f"distribution={self.distribution!r}, version={self.version!r})"
        )

    def load(self) -> Any:
        """Import the object behind the entry point, as
        ``importlib.metadata.EntryPoint.load`` does; raise whatever the import raised."""
        module, _, attr = self.value.partition(":")
        obj: Any = importlib.import_module(module.strip())
        for part in attr.partition("[")[0].strip().split("."):  # "[extras]" are not ours
            if part:
                obj = getattr(obj, part)
        return obj


class _Metadata(Protocol):
    """A distribution's metadata files (``importlib.metadata.Distribution`` is one)."""

    def read_text(self, filename: str) -> str | None: ...

    @property
    def metadata(self) -> importlib.metadata.PackageMetadata: ...


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
        for ep_name, value in _group_entry_points(text):
            if ep_name not in seen:
                seen[ep_name] = InstalledPlugin(ep_name, value, name, version)
    _scanned = (path, list(seen.values()))
    return list(_scanned[1])


def _distributions() -> list[_Metadata]:
    """Every installed distribution once, the first on ``sys.path`` of each name (as
    ``importlib.metadata.distributions()`` finds and ``entry_points()`` takes them)."""
    from importlib.machinery import PathFinder

    found: dict[str, _Metadata] = {}
    if any(
        getattr(finder, "find_distributions", None) is not None and finder is not PathFinder
        for finder in sys.meta_path
    ):  # another finder of distributions: importlib.metadata asks it
        import importlib.metadata

        _add_found(found, importlib.metadata.distributions())
        return list(found.values())
    for entry in sys.path:
        folder = entry or "."
        try:
            if folder.lower().endswith(".egg"):
                raise NotADirectoryError(folder)
            children = os.listdir(folder)
        except NotADirectoryError:  # a zip file, or an egg: as importlib.metadata reads them
            import importlib.metadata

            _add_found(found, importlib.metadata.distributions(path=[entry]))
            continue
        except OSError:
            continue
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")):
                # importlib.metadata's key: the folder's name up to the version
                key = _normalise(low.rpartition(".")[0].partition("-")[0])
                if key not in found:
                    found[key] = _MetadataFolder(os.path.join(folder, child))
    return list(found.values())


def _add_found(found: dict[str, _Metadata], dists: Any) -> None:
    for dist in dists:
        # The normalised name importlib.metadata itself goes by, from the folder's
        # name; the metadata file is read only where there is no such name.
        key = getattr(dist, "_normalized_name", None) or _normalise(str(dist.metadata["Name"]))
        found.setdefault(key, dist)


def _normalise(name: str) -> str:
    """A distribution's name as importlib.metadata compares them (PEP 503, with ``_``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


class _MetadataFolder:
    """A ``*.dist-info`` / ``*.egg-info`` folder, read with plain file calls."""

    __slots__ = ("folder",)

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def read_text(self, filename: str) -> str | None:
        try:
            with open(os.path.join(self.folder, filename), encoding="utf-8") as file:
                return file.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            return None

    @property
    def metadata(self) -> importlib.metadata.PackageMetadata:
        import importlib.metadata
        from pathlib import Path

        return importlib.metadata.PathDistribution(Path(self.folder)).metadata


def _group_entry_points(text: str) -> list[tuple[str, str]]:
    """``(name, value)`` of the entry points in the ``gleitzeit.plugins`` section of an
    ``entry_points.txt`` (an ini file of ``name = module:attr`` lines)."""
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
                found.append((name.strip(), value.strip()))
    return found


def _name_and_version(dist: _Metadata) -> tuple[str | None, str | None]:
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
