"""The ollama provider passes the conformance suite, against a local Ollama-format server."""

from gleitzeit_ollama.provider import OllamaProvider
from gleitzeit_ollama.settings import OllamaSettings

from gleitzeit.testing import ProviderConformance
from gleitzeit.testing.fake_ollama import FakeOllama
from gleitzeit.testing.fake_server import ThreadedServer


class TestOllamaConformance(ProviderConformance):
    provider_class = OllamaProvider
    sample_params = {
        "llm/chat": {"model": "llama3.2", "messages": [{"role": "user", "content": "Hi"}]},
        "llm/generate": {"model": "llama3.2", "prompt": "Hi"},
        "llm/embed": {"model": "nomic-embed-text", "input": ["a", "b"]},
    }
    invalid_params = {"llm/chat": {"messages": "not a list"}}

    @classmethod
    def setup_class(cls):
        cls._server = ThreadedServer(FakeOllama())
        cls.url = cls._server.__enter__().url

    @classmethod
    def teardown_class(cls):
        cls._server.__exit__(None, None, None)

    def make_provider(self):
        return OllamaProvider(OllamaSettings(base_url=self.url))
