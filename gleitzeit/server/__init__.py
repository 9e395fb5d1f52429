"""``gleitzeit serve``: the host behind an aiohttp + python-socketio server."""

from gleitzeit.server.app import GleitzeitServer

__all__ = ["GleitzeitServer"]
