"""Run a fake upstream (openai or ollama) in its own process for benchmarks.

python3 benchmarks/upstream_server.py openai CHUNKS   # prints the URL, serves until stdin closes
"""

from __future__ import annotations

import asyncio
import sys


async def main(kind: str, chunks: int) -> None:
    if kind == "openai":
        from gleitzeit.testing.fake_openai import FakeOpenAI as Server
    else:
        from gleitzeit.testing.fake_ollama import FakeOllama as Server
    from gleitzeit.testing.fake_server import Scenario

    server = Server()
    server.scenario = Scenario(reply="tok", chunks=chunks)
    server.requests = _Discard()
    await server.start()
    print(server.url, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await server.stop()


class _Discard(list):
    """Do not keep request records: a benchmark sends many."""

    def append(self, item: object) -> None:
        pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
