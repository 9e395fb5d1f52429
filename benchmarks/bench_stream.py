"""Streaming pass-through: tokens/s through gleitzeit (in-process provider) against the
plugin's own HTTP library (aiohttp) reading the same local server directly — each line
decoded as JSON — for openai and ollama."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

NAME = "stream"
TARGET = "tokens/s through gleitzeit / tokens/s direct >= 0.8 (5,000 chunks), per plugin"
CHUNKS = 5000
ROUNDS = 5
HERE = Path(__file__).resolve().parent
MESSAGES = [{"role": "user", "content": "go"}]


class Upstream:
    def __init__(self, kind: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "upstream_server.py"), kind, str(CHUNKS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self.proc.stdout.readline().strip()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


async def _timed(agen_factory) -> tuple[float, float, int]:
    start = time.perf_counter()
    first = None
    count = 0
    async for _ in agen_factory():
        if first is None:
            first = time.perf_counter()
        count += 1
    end = time.perf_counter()
    return end - start, (first or end) - start, count


async def _direct(session, url: str, body: dict, framing) -> AsyncIterator[dict]:
    """The messages of one stream, read with aiohttp alone (a kept-alive session)."""
    async with session.post(url, json=body) as resp:
        async for line in framing(resp.content.iter_any()):
            if line != b"[DONE]":
                yield json.loads(line)


async def _through(config: str, provider: str, model: str, direct) -> dict:
    from gleitzeit.config import parse_config
    from gleitzeit.host import Host
    from gleitzeit.plugins import Plugins

    host = Host(parse_config(config), plugins=Plugins.load(parse_config(config)))
    await host.start()

    def through():
        return host.stream("llm/chat", {"model": model, "messages": MESSAGES}, provider=provider)

    try:
        return await _compare(direct, through)
    finally:
        await host.stop()


def _has_token(kind: str, message: dict) -> bool:
    if kind == "openai":
        return bool(message["choices"] and message["choices"][0]["delta"].get("content"))
    return bool(message["message"]["content"])


async def _plugin(kind: str, url: str) -> dict:
    """One plugin's stream, direct and through gleitzeit."""
    import aiohttp

    from gleitzeit.httpllm import ndjson_lines, sse_data

    if kind == "openai":
        model, path, framing = "gpt-4o-mini", "/chat/completions", sse_data
        settings = f"{{api_key: sk-test, base_url: '{url}'}}"
    else:
        model, path, framing = "llama3.2", "/api/chat", ndjson_lines
        settings = f"{{base_url: '{url}'}}"
    body = {"model": model, "messages": MESSAGES, "stream": True}
    session = aiohttp.ClientSession(headers={"Authorization": "Bearer sk-test"})

    async def direct():
        async for message in _direct(session, url + path, body, framing):
            if _has_token(kind, message):
                yield message

    try:
        return await _through(f"plugins:\n  {kind}: {settings}\n", kind, model, direct)
    finally:
        await session.close()


async def _compare(direct, through) -> dict:
    await _timed(direct)  # warm-up: connections, imports
    await _timed(through)
    d_rates, t_rates, d_ttft, t_ttft = [], [], [], []
    for _ in range(ROUNDS):  # alternate, so drift affects both sides alike
        secs, ttft, n = await _timed(direct)
        d_rates.append(n / secs)
        d_ttft.append(ttft)
        secs, ttft, n = await _timed(through)
        t_rates.append((n - 1) / secs)  # the final done chunk is not a token
        t_ttft.append(ttft)
    direct_rate, through_rate = statistics.median(d_rates), statistics.median(t_rates)
    return {
        "direct_tokens_per_s": direct_rate,
        "gleitzeit_tokens_per_s": through_rate,
        "ratio": through_rate / direct_rate,
        "ttft_extra_ms": (statistics.median(t_ttft) - statistics.median(d_ttft)) * 1000,
    }


def run() -> dict:
    out: dict = {}
    ok = True
    for kind in ("openai", "ollama"):
        upstream = Upstream(kind)
        try:
            result = asyncio.run(_plugin(kind, upstream.url))
        finally:
            upstream.close()
        for key, value in result.items():
            out[f"{kind}_{key}"] = value
        ok = ok and result["ratio"] >= 0.8
    out["ratio"] = min(out["openai_ratio"], out["ollama_ratio"])
    out["target_ok"] = ok
    return out
