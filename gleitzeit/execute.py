"""``python/execute``: a Python file or code string run in a subprocess.

A workflow that uses it is code, so it is off unless ``workflows.allow_execute: true``
is set in ``gleitzeit.yaml`` (or ``gleitzeit run --allow-execute``): only then does the
host serve it. Each call runs in
its own process with a timeout, a memory limit (Linux: ``RLIMIT_AS``) and a working
directory; ``context`` is handed in as a global, the script's global ``result`` comes
back as JSON, and stdout and stderr are captured. A file must lie inside
``files.allowed_roots``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gleitzeit.config import FilesConfig
from gleitzeit.errors import (
    ExecuteNotAllowedError,
    ExecutionTimeoutError,
    FileAccessError,
    ToolError,
)
from gleitzeit.provider import Provider, method

RUNNER = Path(__file__).with_name("_exec_runner.py")
#: Most text kept of each of stdout and stderr (the end is kept).
OUTPUT_LIMIT = 1_000_000
STDERR_TAIL = 2000


class ExecuteParams(BaseModel):
    """Parameters of ``python/execute``."""

    model_config = ConfigDict(extra="forbid")

    file: str | None = Field(None, description="a .py file inside files.allowed_roots")
    file_path: str | None = Field(None, description="the same as file")
    code: str | None = Field(None, description="Python source to run instead of a file")
    context: dict[str, Any] = Field(
        default_factory=dict, description="the script's global 'context'"
    )
    timeout: float | None = Field(
        None, gt=0, description="seconds the script may run (default workflows.execute_timeout)"
    )
    memory_mb: int | None = Field(
        None, ge=16, description="address space limit (default workflows.execute_memory_mb)"
    )
    cwd: str | None = Field(
        None, description="working directory, inside files.allowed_roots (default: the current)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> ExecuteParams:
        given = [k for k in ("file", "file_path", "code") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of file (or file_path) and code")
        return self


def _inside_roots(raw: str, key: str, files: FilesConfig, base: Path, *, is_dir: bool) -> Path:
    path = Path(os.path.expanduser(raw))
    path = (path if path.is_absolute() else base / path).resolve()
    roots = [Path(os.path.expanduser(r)) for r in files.allowed_roots]
    roots = [(r if r.is_absolute() else base / r).resolve() for r in roots]
    if not any(path == r or r in path.parents for r in roots):
        raise FileAccessError(
            f"{key} {raw!r} is outside the allowed roots ({', '.join(map(str, roots))})",
            hint="add its directory to files.allowed_roots in gleitzeit.yaml",
        )
    if is_dir and not path.is_dir():
        raise FileAccessError(f"{key} {raw!r} is not a directory ({path})")
    if not is_dir and not path.is_file():
        raise FileAccessError(f"{key} {raw!r} does not exist or is not a file ({path})")
    return path


def _text(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    return text[-OUTPUT_LIMIT:]


def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill the script and anything it started (it leads its own process group)."""
    if proc.returncode is not None:
        return
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:
        pass


def _without_runner(stderr: str) -> str:
    """A traceback as the script's author would read it: the runner's own frames left out."""
    lines = stderr.splitlines()
    out: list[str] = []
    skip = 0
    for line in lines:
        if skip:
            skip -= 1
            continue
        if line.lstrip().startswith("File ") and RUNNER.name in line:
            skip = 1  # and the source line printed under it
            continue
        out.append(line)
    return "\n".join(out)


def _from_stdout(stdout: str) -> Any:
    """A script that sets no ``result``: its last line of output, read as JSON if it is."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except ValueError:
        return lines[-1].strip()


class PythonExecuteProvider(Provider):
    """Runs Python files and code strings named in workflows, each in a subprocess."""

    name = "python-execute"
    kind = "extension"
    description = "python/execute: a Python file or code string in a subprocess"
    version = "1"

    def __init__(self, settings: Any = None, *, name: str | None = None) -> None:
        super().__init__(settings, name=name)
        # Off until configured from the host's config (see gleitzeit_startup below).
        self.allowed = False
        self.files = FilesConfig()
        self.default_timeout = 60.0
        self.memory_mb = 1024

    def configure(self, config: Any) -> None:
        """Take ``workflows.allow_execute``, the limits and ``files`` from the host's config."""
        self.allowed = bool(config.workflows.allow_execute)
        self.default_timeout = config.workflows.execute_timeout
        self.memory_mb = config.workflows.execute_memory_mb
        self.files = config.files

    @method("python/execute", params=ExecuteParams)
    async def execute(self, params: ExecuteParams) -> dict[str, Any]:
        """Run a file or code string; ``result``, ``stdout``, ``stderr``, ``exit_code``,
        ``execution_time``. A non-zero exit is an error carrying the end of stderr."""
        if not self.allowed:
            raise ExecuteNotAllowedError(
                "python/execute is off: a workflow that uses it runs code from its file",
                hint="enable it with workflows.allow_execute: true in gleitzeit.yaml "
                "or `gleitzeit run --allow-execute`",
            )
        base = Path.cwd()
        cwd = (
            _inside_roots(params.cwd, "cwd", self.files, base, is_dir=True) if params.cwd else base
        )
        job: dict[str, Any] = {"context": params.context}
        raw = params.file or params.file_path
        what = "code"
        if raw is not None:
            path = _inside_roots(raw, "file", self.files, base, is_dir=False)
            job["file"] = str(path)
            what = path.name
        else:
            job["code"] = params.code
        memory = params.memory_mb or self.memory_mb
        job["memory_bytes"] = memory * 1024 * 1024
        timeout = params.timeout or self.default_timeout
        with tempfile.TemporaryDirectory(prefix="gleitzeit-exec-") as tmp:
            result_file = Path(tmp) / "result.json"
            job["result_file"] = str(result_file)
            began = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(RUNNER),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=str(cwd),
                start_new_session=True,
            )
            try:
                out, err = await asyncio.wait_for(
                    proc.communicate(json.dumps(job, default=str).encode()), timeout
                )
            except asyncio.TimeoutError:
                _kill(proc)
                await proc.wait()
                raise ExecutionTimeoutError(
                    f"python/execute: {what} ran longer than its timeout of {timeout:g}s "
                    "and was stopped",
                    hint="raise the task's timeout parameter, or make the script faster",
                ) from None
            except BaseException:
                _kill(proc)  # cancelled (a task timeout, a workflow timeout, Ctrl-C)
                raise
            elapsed = time.perf_counter() - began
            stdout, stderr = _text(out), _text(err)
            code = proc.returncode if proc.returncode is not None else -1
            if code != 0:
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                tail = _without_runner(stderr).strip()[-STDERR_TAIL:] or "(no output on stderr)"
                raise ToolError(f"python/execute: {what} {how}:\n{tail}")
            try:
                value = json.loads(result_file.read_text(encoding="utf-8"))["result"]
            except (OSError, ValueError, KeyError):
                value = None
        if value is None:
            value = _from_stdout(stdout)
        return {
            "result": value,
            "stdout": stdout,
            "stderr": stderr,
            "exit_code": code,
            "execution_time": round(elapsed, 6),
        }
