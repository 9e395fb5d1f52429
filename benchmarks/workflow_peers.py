"""Workflows for the workflow benchmark, and the processes it times.

python3 workflow_peers.py loop SHAPE N           # N host.invoke calls in a plain loop
python3 workflow_peers.py phases SHAPE N FILE DB  # parse and run of FILE, timed apart

Both processes are laid out as ``gleitzeit run`` is: the host as it makes one, and
what is loaded before the calls start frozen out of the collector's sight.

Each prints one JSON line. The shapes:

* ``chains``: chains of 100 calc/add tasks, each reading the previous one's result;
* ``independent``: N calc/multiply tasks with no dependencies;
* ``for_each``: tasks of 100 items each (calc/power over a literal list), N calls in all.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from typing import Any

SHAPES = ("chains", "independent", "for_each")
LINK = 100  # tasks per chain, items per for_each task


def workflow_text(shape: str, n: int) -> str:
    """A workflow of ``shape`` that makes ``n`` provider calls."""
    lines = [f"name: bench-{shape}-{n}", "tasks:"]
    if shape == "chains":
        for c in range(n // LINK):
            lines.append(f"  - {{id: c{c}_0, method: calc/add, parameters: {{a: {c}, b: 1}}}}")
            for i in range(1, LINK):
                lines.append(
                    f"  - {{id: c{c}_{i}, method: calc/add, dependencies: [c{c}_{i - 1}],"
                    f" parameters: {{a: '${{c{c}_{i - 1}.result}}', b: 1}}}}"
                )
    elif shape == "independent":
        for s in range(n):
            lines.append(f"  - {{id: s{s}, method: calc/multiply, parameters: {{a: {s}, b: 2}}}}")
    elif shape == "for_each":
        for f in range(n // LINK):
            items = ", ".join(str(f * LINK + i) for i in range(LINK))
            lines.append(
                f"  - {{id: f{f}, method: calc/power, for_each: [{items}],"
                " parameters: {a: '${item}', b: 2}}"
            )
    else:
        raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")
    return "\n".join(lines) + "\n"


def calls(shape: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    """The calls a run of ``workflow_text(shape, n)`` makes, in an order a loop can make them."""
    out: list[tuple[str, dict[str, Any]]] = []
    if shape == "chains":
        for c in range(n // LINK):
            value = c
            for _ in range(LINK):
                out.append(("calc/add", {"a": value, "b": 1}))
                value += 1
    elif shape == "independent":
        out = [("calc/multiply", {"a": s, "b": 2}) for s in range(n)]
    else:
        out = [("calc/power", {"a": i, "b": 2}) for i in range(n)]
    return out


def _host() -> Any:
    """A host as ``gleitzeit run`` makes one: the default config, installed plugins."""
    from gleitzeit.config import load_config
    from gleitzeit.host import Host
    from gleitzeit.plugins import Plugins

    config = load_config(None)
    return Host(config, plugins=Plugins.load(config), lazy=True)


async def _loop(shape: str, n: int) -> dict[str, float]:
    plan = calls(shape, n)
    gc.freeze()  # as `gleitzeit run` does once its workflow is loaded (see _phases)
    host = _host()
    async with host:
        start = time.perf_counter()
        for method, params in plan:
            await host.invoke(method, params)
        return {"run_s": time.perf_counter() - start}


async def _phases(path: str, db: str) -> dict[str, float]:
    from gleitzeit.workflows import Engine, RunStore, load_workflow
    from gleitzeit.workflows.progress import PlainProgress

    start = time.perf_counter()
    workflow = load_workflow(path)
    parse_s = time.perf_counter() - start
    # What `gleitzeit run` does next: what is loaded lives through the run, out of the
    # collector's sight (gleitzeit/cli/run_cmd.py).
    gc.freeze()
    host = _host()
    store = RunStore(db)
    with open(os.devnull, "w") as quiet:
        engine = Engine(host, store=store, on_event=PlainProgress(quiet))
        async with host:
            start = time.perf_counter()
            result = await engine.run(workflow)
            run_s = time.perf_counter() - start
    store.close()
    assert result.status == "completed", result.status
    return {"parse_s": parse_s, "run_s": run_s, "tasks": len(workflow.tasks)}


def main(argv: list[str]) -> None:
    what, shape, n = argv[0], argv[1], int(argv[2])
    if what == "loop":
        out = asyncio.run(_loop(shape, n))
    else:
        out = asyncio.run(_phases(argv[3], argv[4]))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
