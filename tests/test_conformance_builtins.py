"""The built-in providers pass the conformance suite they ask of plugins."""

from gleitzeit.builtins.echo import EchoProvider
from gleitzeit.tasks import build_provider_class
from gleitzeit.testing import ProviderConformance


class TestEchoConformance(ProviderConformance):
    provider_class = EchoProvider
    sample_params = {
        "llm/chat": {"messages": [{"role": "user", "content": "hello there"}]},
        "llm/generate": {"prompt": "hello there"},
    }
    invalid_params = {"llm/chat": {"messages": []}, "llm/generate": {}}


def _double(x: int) -> int:
    """Double a number."""
    return 2 * x


class TestPythonTasksConformance(ProviderConformance):
    provider_class = build_provider_class({"double": _double})
    sample_params = {"python/double": {"x": 21}}
    invalid_params = {"python/double": {"x": "many"}}
