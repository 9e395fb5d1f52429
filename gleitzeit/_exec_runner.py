"""The child side of ``python/execute``: run one script or code string, then write its
``result`` as JSON.

Started as ``python _exec_runner.py`` with the job as JSON on stdin: ``file`` or
``code``, ``context``, ``memory_bytes`` and ``result_file``. Only the standard library
is used, so nothing of the host is imported into the child.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _limit_memory(limit: int | None) -> None:
    if not limit or not sys.platform.startswith("linux"):
        return
    import resource

    # Address space, not resident size: the limit holds before the memory is touched,
    # so an over-large allocation fails at once with MemoryError.
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main() -> None:
    """Read the job, run it in a fresh ``__main__`` namespace, write its result."""
    job: dict[str, Any] = json.loads(sys.stdin.read())
    sys.stdin.close()
    sys.stdin = open(os.devnull, encoding="utf-8")
    path = job.get("file")
    # The runner's own directory must not shadow the script's imports.
    sys.path[0] = os.path.dirname(path) if path else os.getcwd()
    if path:
        with open(path, encoding="utf-8") as f:
            source = f.read()
        code = compile(source, path, "exec")
        sys.argv = [path]
    else:
        code = compile(job["code"], "<code>", "exec")
        sys.argv = ["-c"]
    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "__file__": path or "<code>",
        "__builtins__": __builtins__,
        "context": job.get("context") or {},
        "result": None,
    }
    _limit_memory(job.get("memory_bytes"))
    exec(code, namespace)
    sys.stdout.flush()
    with open(job["result_file"], "w", encoding="utf-8") as f:
        # Values JSON cannot carry (sets, dates, objects) arrive as their text.
        json.dump({"result": namespace.get("result")}, f, default=str)


if __name__ == "__main__":
    main()
