"""``gleitzeit plugins new``: a complete, installable plugin distribution from templates.

The generated package installs, lists, invokes and passes its tests unchanged; its tests
run the conformance suite of :mod:`gleitzeit.testing`.
"""

from __future__ import annotations

import re
from pathlib import Path

from gleitzeit._version import __version__
from gleitzeit.errors import ConfigError

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$|^[a-z]$")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "gleitzeit-@NAME@"
version = "0.1.0"
description = "@DESCRIPTION@"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["gleitzeit>=@GLEITZEIT_VERSION@"]

[project.optional-dependencies]
test = ["pytest>=7"]

# How Gleitzeit finds the plugin: the entry point's name is the plugin's name.
[project.entry-points."gleitzeit.plugins"]
@NAME@ = "@PACKAGE@.plugin"

[tool.setuptools.packages.find]
include = ["@PACKAGE@*"]

[tool.pytest.ini_options]
testpaths = ["tests"]
# The tests drive asyncio themselves (asyncio.run); pytest-asyncio, when installed, is
# not needed and would only warn about its settings.
addopts = "-p no:asyncio"
"""

INIT = '''\
"""@DESCRIPTION@"""

__version__ = "0.1.0"
'''

PLUGIN = '''\
"""Entry module of the @NAME@ plugin: hook implementations only.

Gleitzeit imports this module whenever the plugin is enabled (also for `gleitzeit
plugins list`), so keep it small: import heavy libraries inside the provider. The
provider is registered by reference: its module is imported only when Gleitzeit
builds the provider, and the settings hook is called only when there are settings to
validate or a provider to build.
"""

from __future__ import annotations

import gleitzeit


@gleitzeit.hookimpl
def gleitzeit_config_schema():
    """The settings under `plugins: @NAME@:` in gleitzeit.yaml."""
    from @PACKAGE@.provider import @CLASS@Settings

    return @CLASS@Settings


@gleitzeit.hookimpl
def gleitzeit_register_providers(register):
    register("@PACKAGE@.provider:@CLASS@Provider", name="@NAME@")
'''

PROVIDER_HEAD = '''\
"""The @NAME@ provider."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

import gleitzeit


class @CLASS@Settings(BaseModel):
    """Settings under `plugins: @NAME@:` in gleitzeit.yaml."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

'''

TOOL = (
    PROVIDER_HEAD
    + '''\
    greeting: str = Field("Hello", description="word to greet with")


class GreetParams(BaseModel):
    """Parameters of @PREFIX@/greet; this model is the method's JSON Schema."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="who to greet")
    times: int = Field(1, ge=1, le=10, description="how often")


class @CLASS@Provider(gleitzeit.Provider):
    """A tool provider: one method with a JSON schema."""

    name = "@NAME@"
    kind = "tool"
    description = "@DESCRIPTION@"
    version = "0.1.0"
    Settings = @CLASS@Settings

    async def start(self) -> None:
        # Open clients and import heavy libraries here, not at module level.
        self.cfg: @CLASS@Settings = self.settings  # validated into the model by Provider

    @gleitzeit.method("@PREFIX@/greet", params=GreetParams)
    async def greet(self, p: GreetParams) -> dict[str, Any]:
        """Greet someone."""
        if p.name.strip().lower() == "nobody":
            # Errors users can act on are gleitzeit errors, with a hint.
            raise gleitzeit.ToolError("@PREFIX@/greet: cannot greet nobody", hint="pass a name")
        text = " ".join([f"{self.cfg.greeting}, {p.name}!"] * p.times)
        return gleitzeit.tool_result("greet", p.model_dump(), text)

    async def health(self) -> dict[str, Any]:
        return {"status": "healthy", "detail": f"greeting={self.cfg.greeting!r}"}
'''
)

LLM = (
    PROVIDER_HEAD
    + '''\
    default_model: str = Field("@NAME@-small", description="model used when a request names none")
    prefix: str = Field("", description="text put before every reply")


class @CLASS@Provider(gleitzeit.Provider):
    """An LLM provider (a toy one that reverses the prompt) with streaming.

    Replace the body of `_reply` with calls to your model or service.
    """

    name = "@NAME@"
    kind = "llm"
    description = "@DESCRIPTION@"
    version = "0.1.0"
    Settings = @CLASS@Settings
    models = ("@NAME@-small", "@NAME@-large")
    capabilities = ("chat", "streaming")

    async def start(self) -> None:
        self.cfg: @CLASS@Settings = self.settings  # validated into the model by Provider

    def _reply(self, params: gleitzeit.llm.ChatParams) -> tuple[str, str]:
        model = params.model or self.cfg.default_model
        if model not in self.models:
            raise gleitzeit.ModelNotFoundError(
                f"@NAME@ has no model {model!r}", hint=f"models: {', '.join(self.models)}"
            )
        last = gleitzeit.llm.text_of(params.messages[-1].content)
        return model, self.cfg.prefix + " ".join(reversed(last.split()))

    @gleitzeit.method("llm/chat", params=gleitzeit.llm.ChatParams)
    async def chat(self, params: gleitzeit.llm.ChatParams) -> dict[str, Any]:
        """Reply to a conversation."""
        model, text = self._reply(params)
        return gleitzeit.llm_result(
            text, model=model, provider=self.name, usage=gleitzeit.usage(1, len(text.split()))
        )

    @gleitzeit.method("llm/chat", params=gleitzeit.llm.ChatParams)
    async def chat_stream(self, params: gleitzeit.llm.ChatParams):
        """The same reply, word by word."""
        model, text = self._reply(params)
        words = text.split(" ")
        for i, word in enumerate(words):
            yield gleitzeit.token_chunk(word if i == len(words) - 1 else word + " ")
        yield gleitzeit.final_chunk(usage=gleitzeit.usage(1, len(words)), model=model)

    async def health(self) -> dict[str, Any]:
        return {"status": "healthy", "detail": f"models: {', '.join(self.models)}"}
'''
)

EXTENSION = (
    PROVIDER_HEAD
    + '''\
    namespace: str = Field("default", description="where notes are kept")


class NoteParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=200)
    value: Any = None


class KeyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=200)


class @CLASS@Provider(gleitzeit.Provider):
    """An extension: a small in-memory key-value store that workflows can share."""

    name = "@NAME@"
    kind = "extension"
    description = "@DESCRIPTION@"
    version = "0.1.0"
    Settings = @CLASS@Settings

    async def start(self) -> None:
        self.cfg: @CLASS@Settings = self.settings  # validated into the model by Provider
        self.notes: dict[str, Any] = {}

    async def stop(self) -> None:
        self.notes = {}

    @gleitzeit.method("@PREFIX@/put", params=NoteParams)
    async def put(self, p: NoteParams) -> dict[str, Any]:
        """Keep a value under a key."""
        self.notes[p.key] = p.value
        return {"result": p.value, "key": p.key, "namespace": self.cfg.namespace}

    @gleitzeit.method("@PREFIX@/get", params=KeyParams)
    async def get(self, p: KeyParams) -> dict[str, Any]:
        """Read the value kept under a key."""
        if p.key not in self.notes:
            raise gleitzeit.ToolError(f"@PREFIX@/get: no value under {p.key!r}", hint="put it first")
        return {"result": self.notes[p.key], "key": p.key, "namespace": self.cfg.namespace}

    async def health(self) -> dict[str, Any]:
        return {"status": "healthy", "detail": f"{len(self.notes)} notes"}
'''
)

TESTS = {
    "tool": '''\
"""Tests of the @NAME@ plugin: the conformance suite, then its own behaviour."""

import asyncio

import pytest

import gleitzeit
from gleitzeit.testing import ProviderConformance, host
from @PACKAGE@.provider import @CLASS@Provider, @CLASS@Settings


class Test@CLASS@Conformance(ProviderConformance):
    provider_class = @CLASS@Provider
    sample_params = {"@PREFIX@/greet": {"name": "Ada"}}
    invalid_params = {"@PREFIX@/greet": {"name": "nobody"}}


def test_greets_with_the_configured_greeting():
    async def go():
        provider = @CLASS@Provider(@CLASS@Settings(greeting="Hi"))
        async with host(providers=[provider]) as h:
            return await h.invoke("@PREFIX@/greet", {"name": "Ada", "times": 2})

    assert asyncio.run(go())["result"] == "Hi, Ada! Hi, Ada!"


def test_bad_params_name_the_field():
    async def go():
        async with host(providers=[@CLASS@Provider()]) as h:
            await h.invoke("@PREFIX@/greet", {"name": "Ada", "times": 99})

    with pytest.raises(gleitzeit.InvalidParamsError, match="times"):
        asyncio.run(go())
''',
    "llm": '''\
"""Tests of the @NAME@ plugin: the conformance suite, then its own behaviour."""

import asyncio

import pytest

import gleitzeit
from gleitzeit.testing import ProviderConformance, host
from @PACKAGE@.provider import @CLASS@Provider

CHAT = {"messages": [{"role": "user", "content": "one two three"}]}


class Test@CLASS@Conformance(ProviderConformance):
    provider_class = @CLASS@Provider
    sample_params = {"llm/chat": CHAT}
    invalid_params = {"llm/chat": {"messages": [], "model": "@NAME@-small"}}


def test_streams_the_reversed_prompt():
    async def go():
        async with host(providers=[@CLASS@Provider()]) as h:
            return [c async for c in h.stream("llm/chat", CHAT, provider="@NAME@")]

    chunks = asyncio.run(go())
    assert "".join(c["token"] for c in chunks) == "three two one"
    assert chunks[-1]["done"] is True


def test_unknown_model_is_a_clear_error():
    async def go():
        provider = @CLASS@Provider()
        await provider.start()
        await provider.invoke("llm/chat", {**CHAT, "model": "huge"})

    with pytest.raises(gleitzeit.ModelNotFoundError, match="huge"):
        asyncio.run(go())
''',
    "extension": '''\
"""Tests of the @NAME@ plugin: the conformance suite, then its own behaviour."""

import asyncio

from gleitzeit.testing import ProviderConformance, host
from @PACKAGE@.provider import @CLASS@Provider


class Test@CLASS@Conformance(ProviderConformance):
    provider_class = @CLASS@Provider
    sample_params = {"@PREFIX@/put": {"key": "k", "value": 1}, "@PREFIX@/get": {"key": "k"}}
    invalid_params = {"@PREFIX@/get": {"key": "never-put"}}


def test_put_then_get():
    async def go():
        async with host(providers=[@CLASS@Provider()]) as h:
            await h.invoke("@PREFIX@/put", {"key": "answer", "value": 42})
            return await h.invoke("@PREFIX@/get", {"key": "answer"})

    assert asyncio.run(go())["result"] == 42
''',
}

EXAMPLE_CALL = {
    "tool": ("@PREFIX@/greet", '{"name": "Ada"}'),
    "llm": ("llm/chat", '{"messages": [{"role": "user", "content": "one two three"}]}'),
    "extension": ("@PREFIX@/put", '{"key": "answer", "value": 42}'),
}

README = """\
# gleitzeit-@NAME@

@DESCRIPTION@ — a [Gleitzeit](https://pypi.org/project/gleitzeit/) plugin.

```bash
gleitzeit plugins install -e .        # into the environment gleitzeit runs in
gleitzeit plugins list                # @NAME@: loaded
gleitzeit plugins info @NAME@
gleitzeit providers invoke @NAME@ @METHOD@ --args '@ARGS@'
pytest                                # the conformance suite and this plugin's tests
```

Settings, in `gleitzeit.yaml`:

```yaml
plugins:
  @NAME@: {}        # see @PACKAGE@/provider.py, @CLASS@Settings
```

Run it as a separate process serving a `gleitzeit serve`:

```bash
gleitzeit provider run @NAME@ --server http://127.0.0.1:8000
```
"""


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[-_]", name))


def scaffold(name: str, kind: str, directory: Path, *, description: str | None = None) -> Path:
    """Write ``gleitzeit-<name>/`` into ``directory``; return its path.

    ``name`` is normalised as pip normalises distribution names: ``My_LLM.provider``
    becomes ``my-llm-provider``.
    """
    name = re.sub(r"[-_.]+", "-", name).lower()
    if not NAME_RE.match(name):
        raise ConfigError(
            f"plugin name {name!r} must be lower-case letters, digits and '-', starting with a letter",
            hint="for example: weather, my-tool",
        )
    if kind not in TESTS:
        raise ConfigError(f"kind {kind!r} must be one of llm, tool, extension")
    root = directory / f"gleitzeit-{name}"
    if root.exists() and any(root.iterdir()):
        raise ConfigError(f"{root} exists and is not empty", hint="choose another --dir or name")
    package = f"gleitzeit_{name.replace('-', '_')}"
    method, args = EXAMPLE_CALL[kind]
    values = {
        "@NAME@": name,
        "@PACKAGE@": package,
        "@CLASS@": _class_name(name),
        "@PREFIX@": name,
        "@DESCRIPTION@": description or f"{kind} provider {name} for Gleitzeit",
        "@GLEITZEIT_VERSION@": __version__,
        "@METHOD@": method.replace("@PREFIX@", name),
        "@ARGS@": args,
    }

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace(key, value)
        return text

    provider = {"tool": TOOL, "llm": LLM, "extension": EXTENSION}[kind]
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{package}/__init__.py": INIT,
        f"{package}/plugin.py": PLUGIN,
        f"{package}/provider.py": provider,
        f"tests/test_{package.removeprefix('gleitzeit_')}.py": TESTS[kind],
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(fill(text), encoding="utf-8")
    return root
