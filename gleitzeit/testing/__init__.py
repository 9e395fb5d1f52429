"""Test support for Gleitzeit and its plugins (needs the ``test`` extra: aiohttp, pytest)."""
