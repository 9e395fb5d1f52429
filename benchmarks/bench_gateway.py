"""The /v1 gateway's overhead: the official openai client through `gleitzeit serve` (in
its own process, as users run it) against the same client straight at the openai fake
upstream (in another process), rounds interleaved.

* added p50 latency per non-streamed request (target <= 1 ms);
* streamed tokens/s, through / direct (target >= 0.9), and time to first token added;
* requests/s with 50 in flight, through / direct (target >= 0.8).

Also reported: the p50 of the same client through the gateway to the in-process echo
model, which has no upstream hop — the gateway's own share, comparable to the direct
figure (one hop to the upstream). The rest of the added latency is the openai plugin's
own client call to the upstream.

Figures are medians over the rounds, with the min-max of the rounds beside them.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "gateway"
TARGET = (
    "openai client via gleitzeit serve vs direct: added p50 <= 1 ms, "
    "streamed tokens/s >= 0.9x, requests/s at 50 concurrent >= 0.8x"
)
HERE = Path(__file__).resolve().parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
LATENCY_REQUESTS = 200
STREAM_CHUNKS = 2000
CONCURRENCY = 50
CONCURRENT_REQUESTS = 1000
TOKEN = "bench-token"
MESSAGES = [{"role": "user", "content": "go"}]


class Upstream:
    """The openai fake upstream in its own process."""

    def __init__(self, chunks: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "upstream_server.py"), "openai", str(chunks)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


class Serve:
    """`gleitzeit serve --port 0`, its openai instances pointed at the upstreams."""

    def __init__(self, short_url: str, long_url: str) -> None:
        self.dir = tempfile.TemporaryDirectory()
        settings = "api_key: sk-test, models: [gpt-4o-mini]"
        Path(self.dir.name, "gleitzeit.yaml").write_text(
            "autoload_plugins: false\n"
            f"plugins: {{echo: {{}}, openai: {{base_url: '{short_url}', {settings}}}}}\n"
            "providers:\n"
            f"  short: {{type: openai, settings: {{base_url: '{short_url}', {settings}}}}}\n"
            f"  long: {{type: openai, settings: {{base_url: '{long_url}', {settings}}}}}\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GLEITZEIT_", "OPENAI_"))}
        env.update(GLEITZEIT_TOKEN=TOKEN, XDG_CONFIG_HOME=str(Path(self.dir.name, "xdg")))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gleitzeit", "serve", "--port", "0"],
            cwd=self.dir.name,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "serving on" not in line:
            self.close()
            raise RuntimeError(f"gleitzeit serve did not start: {line!r}")
        self.url = line.split("serving on ", 1)[1].split()[0] + "/v1"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.dir.cleanup()


async def _latencies(calls: list) -> list[float]:
    """Median seconds of one non-streamed request for each (client, model), over a
    batch in which the sides take turns request by request: what the machine does
    meanwhile falls on every side alike."""
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(LATENCY_REQUESTS):
        for side, (client, model) in enumerate(calls):
            t0 = time.perf_counter()
            await client.chat.completions.create(model=model, messages=MESSAGES)
            times[side].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


async def _stream(client, model: str) -> tuple[float, float]:
    """(tokens/s, seconds to the first token) of one long stream."""
    t0 = time.perf_counter()
    first = None
    n = 0
    stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            if first is None:
                first = time.perf_counter()
            n += 1
    end = time.perf_counter()
    return n / (end - t0), (first or end) - t0


async def _rps(client, model: str) -> float:
    """Requests/s with CONCURRENCY requests in flight."""
    left = CONCURRENT_REQUESTS

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await client.chat.completions.create(model=model, messages=MESSAGES)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return CONCURRENT_REQUESTS / (time.perf_counter() - t0)


def _spread(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    return (
        f"{statistics.median(values) * scale:.{digits}f} "
        f"({min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f})"
    )


async def _measure(short: Upstream, long: Upstream, serve: Serve) -> dict:
    import httpx
    import openai

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)

    def client(url: str, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=url,
            api_key=key,
            max_retries=0,
            http_client=httpx.AsyncClient(limits=limits, timeout=60),
        )

    sides = {
        "direct": (client(short.url, "sk-test"), client(long.url, "sk-test"), "gpt-4o-mini"),
        "gleitzeit": (client(serve.url, TOKEN), client(serve.url, TOKEN), None),
    }

    def model(side: str, which: str) -> str:
        # Through the gateway, provider/model pins the instance of each upstream.
        return "gpt-4o-mini" if side == "direct" else f"{which}/gpt-4o-mini"

    # The gateway's own share: the same client through gleitzeit serve to the in-process
    # echo model (no upstream hop), beside the direct figure (one hop to the upstream).
    echo: list[float] = []
    lat: dict[str, list[float]] = {"direct": [], "gleitzeit": []}
    rate: dict[str, list[float]] = {"direct": [], "gleitzeit": []}
    ttft: dict[str, list[float]] = {"direct": [], "gleitzeit": []}
    rps: dict[str, list[float]] = {"direct": [], "gleitzeit": []}
    for side, (c_short, c_long, _) in sides.items():  # warm-up: connections, imports
        await c_short.chat.completions.create(model=model(side, "short"), messages=MESSAGES)
        await _stream(c_long, model(side, "long"))
        await _rps(c_short, model(side, "short"))
    for n in range(ROUNDS):  # interleaved, so drift affects both sides alike
        d, g, e = await _latencies(
            [
                (sides["direct"][0], model("direct", "short")),
                (sides["gleitzeit"][0], model("gleitzeit", "short")),
                (sides["gleitzeit"][0], "echo"),
            ]
        )
        lat["direct"].append(d)
        lat["gleitzeit"].append(g)
        echo.append(e)
        # Each side's stream and 50-concurrent batch come right after the same kind of
        # work on the other, and who goes first swaps every round: one stream per round
        # is sensitive to what the processes did just before it.
        order = list(sides) if n % 2 == 0 else list(reversed(sides))
        for side in order:
            tokens, first = await _stream(sides[side][1], model(side, "long"))
            rate[side].append(tokens)
            ttft[side].append(first)
        for side in order:
            rps[side].append(await _rps(sides[side][0], model(side, "short")))
    for c_short, c_long, _ in sides.values():
        await c_short.close()
        await c_long.close()

    added = [g - d for g, d in zip(lat["gleitzeit"], lat["direct"], strict=True)]
    rate_ratio = [g / d for g, d in zip(rate["gleitzeit"], rate["direct"], strict=True)]
    rps_ratio = [g / d for g, d in zip(rps["gleitzeit"], rps["direct"], strict=True)]
    ttft_added = [g - d for g, d in zip(ttft["gleitzeit"], ttft["direct"], strict=True)]
    p50_added_ms = statistics.median(added) * 1000
    stream_ratio = statistics.median(rate_ratio)
    concurrent_ratio = statistics.median(rps_ratio)
    return {
        "direct_p50_ms": _spread(lat["direct"], 1000),
        "gleitzeit_p50_ms": _spread(lat["gleitzeit"], 1000),
        "added_p50_ms": _spread(added, 1000),
        "gleitzeit_to_echo_p50_ms": _spread(echo, 1000),
        "direct_tokens_per_s": _spread(rate["direct"], 1, 0),
        "gleitzeit_tokens_per_s": _spread(rate["gleitzeit"], 1, 0),
        "stream_ratio": _spread(rate_ratio),
        "ttft_added_ms": _spread(ttft_added, 1000),
        "direct_rps_at_50": _spread(rps["direct"], 1, 0),
        "gleitzeit_rps_at_50": _spread(rps["gleitzeit"], 1, 0),
        "rps_ratio": _spread(rps_ratio),
        "ratio": concurrent_ratio,
        "target_ok": p50_added_ms <= 1.0 and stream_ratio >= 0.9 and concurrent_ratio >= 0.8,
    }


def run() -> dict:
    short, long = Upstream(1), Upstream(STREAM_CHUNKS)
    try:
        serve = Serve(short.url, long.url)
        try:
            return asyncio.run(_measure(short, long, serve))
        finally:
            serve.close()
    finally:
        short.close()
        long.close()


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value}")
