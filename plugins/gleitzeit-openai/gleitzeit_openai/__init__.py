"""OpenAI and OpenAI-compatible servers as a Gleitzeit LLM provider."""

__version__ = "0.1.0"
