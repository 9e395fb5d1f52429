"""Test kit for Gleitzeit and its plugins.

* :class:`ProviderConformance` — subclass it to run the conformance suite on a provider.
* :func:`host`, :func:`registered_plugin`, :func:`local_server`, :func:`serve_provider` —
  helpers for tests (see :mod:`gleitzeit.testing.helpers`).
* pytest fixtures: add ``pytest_plugins = ["gleitzeit.testing.fixtures"]`` to a conftest.
* :mod:`gleitzeit.testing.fake_openai`, :mod:`gleitzeit.testing.fake_ollama` — local
  servers that speak OpenAI's and Ollama's wire formats, scripted per test; their base is
  :mod:`gleitzeit.testing.fake_server` (all need aiohttp).
* :class:`gleitzeit.testing.cli.CliRunner` — the ``gleitzeit`` command in a fresh process.
"""

from gleitzeit.testing.conformance import ProviderConformance, check_result_shape, check_stream
from gleitzeit.testing.helpers import host, local_server, registered_plugin, serve_provider

__all__ = [
    "ProviderConformance",
    "check_result_shape",
    "check_stream",
    "host",
    "local_server",
    "registered_plugin",
    "serve_provider",
]
