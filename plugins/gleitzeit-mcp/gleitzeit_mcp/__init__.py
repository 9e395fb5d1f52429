"""MCP for Gleitzeit: MCP servers as providers, and Gleitzeit's methods as an MCP server.

The entry module (:mod:`gleitzeit_mcp.plugin`) stays small; the ``mcp`` SDK is imported
only when a server starts or ``gleitzeit mcp serve`` runs.
"""

from gleitzeit_mcp.settings import McpSettings, ServerConfig

__all__ = ["McpSettings", "ServerConfig"]
