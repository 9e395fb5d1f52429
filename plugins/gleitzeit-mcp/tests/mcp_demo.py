"""The demo MCP server as a stdio command and as a streamable-HTTP process."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gleitzeit_mcp.settings import ServerConfig

DEMO = str(Path(__file__).with_name("demo_server.py"))


def stdio_config(*extra: str, **options: object) -> ServerConfig:
    """The demo server run as a stdio subprocess."""
    return ServerConfig(command=sys.executable, args=[DEMO, *extra], **options)  # type: ignore[arg-type]


class HttpDemo:
    """The demo server as a streamable-HTTP process on a 127.0.0.1 port."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            DEMO,
            "http",
            str(self.port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        assert line.startswith(b"port="), line
        self.port = int(line.split(b"=")[1])

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), 30)
