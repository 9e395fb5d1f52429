"""Everything Socket.IO, in one package: ``gleitzeit serve`` and the two ends that
connect to it.

* :mod:`.wire` — the payload models of every event, validated on the way in;
* :mod:`.server` — :class:`GleitzeitServer`, aiohttp + python-socketio in front of a host;
* :mod:`.transport` — the ``/providers`` namespace as a host transport, and
  :mod:`.remote_instance` — one connected provider as a routable instance;
* :mod:`.clients` — the ``/clients`` namespace, calls into the host;
* :mod:`.runner` — :class:`ProviderRunner`, serving a provider from its own process;
* :mod:`.client` — :class:`Client`, calling a server;
* :mod:`.demux` — chunks of many streams over one connection, for both ends.

Nothing here is imported until a command serves or connects.
"""
