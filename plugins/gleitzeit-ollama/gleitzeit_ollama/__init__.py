"""Ollama as a Gleitzeit LLM provider."""

__version__ = "0.1.0"
