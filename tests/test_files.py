"""file_path and image_path: read once by the host, for every LLM provider."""

from __future__ import annotations

import base64

import pytest

import gleitzeit
from gleitzeit.config import parse_config
from gleitzeit.host import Host
from gleitzeit.llm import ChatParams
from gleitzeit.plugins import Plugins


class Capture(gleitzeit.Provider):
    name = "capture"
    kind = "llm"
    models = ("cap",)

    @gleitzeit.method("llm/chat", params=ChatParams)
    async def chat(self, p):
        self.seen = p
        return gleitzeit.llm_result("ok", model="cap", provider=self.name)

    @gleitzeit.method("llm/generate")
    async def generate(self, p):
        self.seen = p
        return gleitzeit.llm_result("ok", model="cap", provider=self.name)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("The meeting is at noon.")
    (tmp_path / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n-image-bytes-")
    (tmp_path / "binary.bin").write_bytes(b"\xff\xfe\x00bad")
    return tmp_path


def _host(config_text: str = "", *providers):
    config = parse_config(config_text or "{}")
    return Host(config, plugins=Plugins.load(config, installed=False), providers=list(providers))


async def test_file_path_is_appended_to_the_last_user_message(workdir):
    async with _host() as host:
        out = await host.invoke(
            "llm/chat",
            {"messages": [{"role": "user", "content": "Summarise:"}], "file_path": "notes.txt"},
        )
    assert out["response"] == "Summarise:\n\n--- notes.txt ---\nThe meeting is at noon."


async def test_file_path_is_appended_to_the_prompt_for_generate(workdir):
    async with _host() as host:
        out = await host.invoke(
            "llm/generate", {"prompt": "Read this", "file_path": str(workdir / "notes.txt")}
        )
    assert out["response"].endswith("The meeting is at noon.")


async def test_image_path_is_attached_base64_in_the_neutral_form(workdir):
    capture = Capture()
    async with _host("", capture) as host:
        await host.invoke(
            "llm/chat",
            {
                "model": "cap",
                "messages": [{"role": "user", "content": "What is it?"}],
                "image_path": "pic.png",
            },
        )
        (message,) = capture.seen.messages
        assert message.images == [base64.b64encode(b"\x89PNG\r\n\x1a\n-image-bytes-").decode()]
        await host.invoke(
            "llm/generate",
            {"model": "cap", "prompt": "x", "image_path": "pic.png"},
            provider="capture",
        )
        assert len(capture.seen["images"]) == 1


@pytest.mark.parametrize(
    "path, error, message",
    [
        ("/etc/hostname", gleitzeit.FileAccessError, "outside the allowed roots"),
        ("../outside.txt", gleitzeit.FileAccessError, "outside the allowed roots"),
        ("missing.txt", gleitzeit.FileAccessError, "does not exist"),
        ("binary.bin", gleitzeit.FileAccessError, "not UTF-8 text"),
    ],
)
async def test_bad_paths_are_clear_errors(workdir, path, error, message):
    async with _host() as host:
        with pytest.raises(error, match=message):
            await host.invoke("llm/chat", {"messages": [{"content": "x"}], "file_path": path})


async def test_oversized_file_and_other_roots(workdir, tmp_path_factory):
    other = tmp_path_factory.mktemp("shared")
    (other / "big.txt").write_text("x" * 2000)
    config = f"files:\n  allowed_roots: ['.', '{other}']\n  max_bytes: 1000\n"
    async with _host(config) as host:
        with pytest.raises(gleitzeit.PayloadTooLargeError, match="2,000 bytes; the limit is 1,000"):
            await host.invoke(
                "llm/chat", {"messages": [{"content": "x"}], "file_path": str(other / "big.txt")}
            )
        (other / "small.txt").write_text("fits")
        out = await host.invoke(
            "llm/chat", {"messages": [{"content": "x"}], "file_path": str(other / "small.txt")}
        )
        assert out["response"].endswith("fits")


async def test_file_inputs_are_only_for_llm_methods(workdir):
    config = parse_config("{}")
    async with Host(config, plugins=Plugins.load(config)) as host:
        with pytest.raises(gleitzeit.FileAccessError, match="not calc/add"):
            await host.invoke("calc/add", {"a": 1, "b": 2, "file_path": "notes.txt"})
