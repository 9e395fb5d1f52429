"""Calculator tool provider for Gleitzeit."""

__version__ = "0.1.0"
