"""The dashboard and chat pages in a real browser: Debian's Chromium, headless,
driven by Playwright (which never downloads a browser here). Each test saves a
screenshot under its temporary directory when it fails."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from observe_support import TOKEN, provider_process, remote, start_server, wait_until  # noqa: E402

from gleitzeit.builtins.echo import EchoChatParams, EchoProvider  # noqa: E402
from gleitzeit.provider import method  # noqa: E402

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL = "apt-get install -y chromium"


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = f"the page tests need Debian's Chromium on PATH: {INSTALL}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
async def page(tmp_path):
    executable = chromium_path()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        message = "the page tests need playwright: pip install -e '.[test]'"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh --user-data-dir
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 760},
        )
        try:
            tab = context.pages[0] if context.pages else await context.new_page()
            tab.set_default_timeout(20_000)
            yield tab
        finally:
            await context.close()


@asynccontextmanager
async def screenshot_on_failure(page, tmp_path: Path):
    try:
        yield
    except BaseException:
        await page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise


async def log_in(page, url: str) -> None:
    await page.goto(url)
    form = page.locator("#token-form")
    await form.locator("input").fill(TOKEN)
    await form.locator("button").click()
    await page.locator("#status.connected").wait_for()


class SlowEchoParams(EchoChatParams):
    delay: float = 0.15


class SlowEcho(EchoProvider):
    """The echo LLM, streaming a word every 0.15 s."""

    name = "slow-echo"
    models = ("slow-echo",)

    @method("llm/chat", params=SlowEchoParams)
    async def chat_stream(self, params: SlowEchoParams):  # type: ignore[override]
        async for chunk in self._stream(self._last_user(params), params.prefix, params.delay):
            yield chunk


async def test_dashboard_shows_providers_live(tmp_path, page):
    from gleitzeit_calculator.provider import CalculatorProvider

    from gleitzeit.workflows.store import RunStore

    server = await start_server(tmp_path, providers=[CalculatorProvider()])
    proc = provider_process("remote_providers:Worker", server.url, tmp_path)
    try:
        async with screenshot_on_failure(page, tmp_path):
            await wait_until(lambda: remote(server, "worker"), "the remote worker")
            (worker,) = remote(server, "worker")
            await log_in(page, server.url + "/")
            await page.locator('tbody[data-provider="calculator"]').wait_for()
            row = page.locator(f'tr[data-instance="{worker.id}"]')
            await row.wait_for()

            # Slow calls: the in-flight count rises while they run, then falls.
            slow = [
                asyncio.ensure_future(server.host.invoke("work/do", {"id": i, "delay": 2.5}))
                for i in range(3)
            ]
            await row.locator("td.in-flight", has_text="3").wait_for()
            await server.host.invoke("calc/add", {"a": 1, "b": 2})
            await asyncio.gather(*slow)
            await row.locator("td.in-flight", has_text="0").wait_for()

            # A workflow run written by another process shows up with its tasks.
            store = RunStore(tmp_path / "runs.sqlite")
            store.create_run(
                "run-0001",
                name="nightly",
                path=None,
                text="tasks:\n  - id: fetch\n  - id: summarise\n",
                inputs={},
                target=None,
                task_ids=["fetch", "summarise"],
            )
            now = time.time()
            store.task_done(
                "run-0001", "fetch", "completed", result={"ok": 1}, started=now, finished=now
            )
            store.flush_now()
            await page.locator(
                '[data-run="run-0001"] .task.completed[data-task="fetch"]'
            ).wait_for()
            store.task_done(
                "run-0001", "summarise", "failed", error="boom", started=now, finished=now
            )
            store.flush_now()
            await page.locator(
                '[data-run="run-0001"] .task.failed[data-task="summarise"]'
            ).wait_for()
            store.close()

            # The detail view: methods and schemas.
            await page.locator('tbody[data-provider="calculator"] a').click()
            await page.locator('#detail [data-method="calc/add"] summary').click()
            await page.locator('#detail [data-method="calc/add"] pre').wait_for()

            shot = os.environ.get("GLEITZEIT_DASHBOARD_SCREENSHOT")
            await page.screenshot(path=shot or str(tmp_path / "dashboard.png"))

            # The provider goes away: its rows go too, with no reload.
            proc.kill()
            await page.locator('tbody[data-provider="worker"]').wait_for(state="detached")
            assert await page.locator('tbody[data-provider="calculator"]').count() == 1
    finally:
        proc.kill()
        proc.wait(10)
        await server.stop(grace=0)


async def test_chat_streams_cancels_and_reopens_after_reload(tmp_path, page):
    server = await start_server(tmp_path, providers=[SlowEcho()])
    try:
        async with screenshot_on_failure(page, tmp_path):
            await log_in(page, server.url + "/chat")
            await page.locator('#model option[value="slow-echo"]').wait_for(state="attached")
            await page.select_option("#model", "slow-echo")

            # Streams token by token: part of the answer shows before the rest.
            await page.fill("#input", "alpha beta gamma delta epsilon")
            await page.click("#send")
            answer = page.locator(".msg.assistant").last
            await answer.filter(has_text="alpha").wait_for()
            assert "epsilon" not in await answer.inner_text()
            await page.locator('body[data-answering="no"]').wait_for()
            assert await answer.inner_text() == "alpha beta gamma delta epsilon"

            # Cancel mid-answer: it stops, and what came is kept as incomplete.
            words = " ".join(f"word{i}" for i in range(40))
            await page.fill("#input", words)
            await page.click("#send")
            answer = page.locator(".msg.assistant").last
            await answer.filter(has_text="word1 ").wait_for()
            await page.click("#cancel")
            await page.locator('body[data-answering="no"]').wait_for()
            stopped = await answer.inner_text()
            assert "word39" not in stopped
            assert "incomplete" in (await answer.get_attribute("class") or "")

            # Reload: the token is kept for the session, the chat is listed, and
            # reopening it shows the whole history.
            await page.reload()
            await page.locator("#status.connected").wait_for()
            await page.locator("#sessions li").first.click()
            messages = page.locator("#messages .msg")
            await messages.nth(3).wait_for()
            texts = await messages.all_inner_texts()
            assert texts[0] == "alpha beta gamma delta epsilon"
            assert texts[1] == "alpha beta gamma delta epsilon"
            assert texts[2] == words
            assert texts[3].startswith("word0 word1")
            assert "incomplete" in (await messages.nth(3).get_attribute("class") or "")
    finally:
        await server.stop(grace=0)
