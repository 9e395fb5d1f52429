"""A real redis-server on an ephemeral port, and ``gleitzeit serve`` nodes joined to it,
for the cluster tests and the cluster benchmark."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

INSTALL = "apt-get install -y redis-server"


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def free_port() -> int:
    """A free port below the kernel's ephemeral range: Redis is killed and started again
    on it, and meanwhile the nodes keep connecting to it; a port from the ephemeral
    range could be taken as the source port of one of those attempts (which on Linux
    even connects to itself when nobody listens)."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000")


class RedisServer:
    """One redis-server process (no persistence) that can be killed and started again
    on the same port."""

    def __init__(self, binary: str, workdir: Path, password: str | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.password = password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def url_with(self, password: str | None) -> str:
        auth = f":{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


def node_env(tests_dir: Path, tmp_path: Path, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
    env.update(
        PYTHONPATH=str(tests_dir),
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        XDG_DATA_HOME=str(tmp_path / "xdg-data"),
        GLEITZEIT_PLUGINS="calculator",
        GLEITZEIT_TOKEN=token,
    )
    return env


def start_node(
    redis_url: str, env: dict[str, str], cwd: Path, *extra: str, log: Path
) -> tuple[subprocess.Popen[str], str]:
    """``gleitzeit serve --port 0 --redis URL`` in a subprocess, its log lines in
    ``log``; returns it and its URL once it serves."""
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gleitzeit", "serve", "--port", "0", "--redis", redis_url,
             "--log-level", "warning", *extra],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:  # ends when the node exits
        if line.startswith("gleitzeit serving on "):
            proc.serving_line = line  # type: ignore[attr-defined]
            return proc, line.split()[3]
    proc.wait(10)
    raise RuntimeError(f"the node did not start: {log.read_text()[-2000:]}")
