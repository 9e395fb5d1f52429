"""Streaming pass-through: tokens/s through gleitzeit (in-process provider) against the
same client library reading the same local server directly, for openai and ollama."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

NAME = "stream"
TARGET = "tokens/s through gleitzeit / tokens/s direct >= 0.8 (5,000 chunks), per plugin"
CHUNKS = 5000
ROUNDS = 5
HERE = Path(__file__).resolve().parent


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


async def _openai(url: str) -> dict:
    import openai

    from gleitzeit.config import parse_config
    from gleitzeit.host import Host
    from gleitzeit.plugins import Plugins

    client = openai.AsyncOpenAI(api_key="sk-test", base_url=url, max_retries=0)
    messages = [{"role": "user", "content": "go"}]

    async def direct():
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk

    config = parse_config(f"plugins:\n  openai: {{api_key: sk-test, base_url: '{url}'}}\n")
    host = Host(config, plugins=Plugins.load(config))
    await host.start()

    def through():
        return host.stream(
            "llm/chat", {"model": "gpt-4o-mini", "messages": messages}, provider="openai"
        )

    try:
        return await _compare(direct, through)
    finally:
        await host.stop()
        await client.close()


async def _ollama(url: str) -> dict:
    import ollama

    from gleitzeit.config import parse_config
    from gleitzeit.host import Host
    from gleitzeit.plugins import Plugins

    client = ollama.AsyncClient(host=url)
    messages = [{"role": "user", "content": "go"}]

    async def direct():
        async for part in await client.chat(model="llama3.2", messages=messages, stream=True):
            if part.message.content:
                yield part

    config = parse_config(f"plugins:\n  ollama: {{base_url: '{url}'}}\n")
    host = Host(config, plugins=Plugins.load(config))
    await host.start()

    def through():
        return host.stream(
            "llm/chat", {"model": "llama3.2", "messages": messages}, provider="ollama"
        )

    try:
        return await _compare(direct, through)
    finally:
        await host.stop()


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
    for kind, fn in (("openai", _openai), ("ollama", _ollama)):
        upstream = Upstream(kind)
        try:
            result = asyncio.run(fn(upstream.url))
        finally:
            upstream.close()
        for key, value in result.items():
            out[f"{kind}_{key}"] = value
        ok = ok and result["ratio"] >= 0.8
    out["ratio"] = min(out["openai_ratio"], out["ollama_ratio"])
    out["target_ok"] = ok
    return out
