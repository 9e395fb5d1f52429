"""The conformance suite on a provider for the demo MCP server."""

from __future__ import annotations

from gleitzeit_mcp.provider import provider_class
from mcp_demo import stdio_config

from gleitzeit.testing import ProviderConformance


class TestMcpProviderConformance(ProviderConformance):
    provider_class = provider_class("demo", stdio_config("--safe"))
    sample_params = {
        "demo/add": {"a": 1, "b": 2},
        "demo/shout": {"text": "hi"},
        "demo/pid": {},
        "demo/resources.read": {"uri": "demo://greeting"},
        "demo/prompts.get": {"name": "summarize", "arguments": {"topic": "tides"}},
    }
    invalid_params = {
        "demo/add": {"a": "one", "b": 2},
        "demo/shout": {},
        "demo/resources.read": {"uri": ""},
        "demo/prompts.get": {"arguments": {}},
    }
