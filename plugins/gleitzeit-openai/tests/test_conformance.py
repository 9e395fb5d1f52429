"""The openai provider passes the conformance suite, against a local OpenAI-format server."""

from gleitzeit_openai.provider import OpenAIProvider
from gleitzeit_openai.settings import OpenAISettings

from gleitzeit.testing import ProviderConformance
from gleitzeit.testing.fake_openai import FakeOpenAI
from gleitzeit.testing.fake_server import ThreadedServer

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


class TestOpenAIConformance(ProviderConformance):
    provider_class = OpenAIProvider
    sample_params = {
        "llm/chat": CHAT,
        "llm/generate": {"model": "gpt-4o-mini", "prompt": "Hello"},
        "llm/embed": {"input": "Hello"},
    }
    invalid_params = {"llm/chat": {"messages": []}, "llm/generate": {"model": "gpt-4o-mini"}}

    @classmethod
    def setup_class(cls):
        cls._server = ThreadedServer(FakeOpenAI())
        cls.url = cls._server.__enter__().url

    @classmethod
    def teardown_class(cls):
        cls._server.__exit__(None, None, None)

    def make_provider(self):
        return OpenAIProvider(OpenAISettings(api_key="sk-test", base_url=self.url))
