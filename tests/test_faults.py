"""Honest failure under faults: stalled and killed provider processes (SIGSTOP, SIGCONT,
SIGKILL), with real subprocesses and sockets. Delivery is at least once; the tests
report how often a call ran twice and check the bound docs/security.md states."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_remote import TOKEN, procs, remote, serve, wait_until  # noqa: E402, F401 - fixtures

from gleitzeit.socketio.client import Client

FAST_PINGS = "ping_interval: 1, ping_timeout: 2"


def executions(path) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = defaultdict(list)
    if path.exists():
        for line in path.read_text().splitlines():
            what, job, pid = line.split()
            out[what].append((int(job), int(pid)))
    return out


async def test_sigstop_of_one_of_two_instances_answers_every_call(serve, procs, tmp_path, caplog):  # noqa: F811, E501
    log = tmp_path / "exec.log"
    procs.env["EXEC_LOG"] = str(log)
    server = await serve(FAST_PINGS)
    victim = procs.provider("remote_providers:Worker", server.url)
    procs.provider("remote_providers:Worker", server.url)
    await wait_until(lambda: len(remote(server, "worker")) == 2, "two instances")
    instances = remote(server, "worker")

    async with Client(server.url, token=TOKEN) as client:
        tasks = [
            asyncio.ensure_future(client.invoke("work/do", {"id": i, "delay": 0.3}))
            for i in range(200)
        ]
        await wait_until(lambda: all(i.in_flight > 0 for i in instances), "load on both")
        victim.send_signal(signal.SIGSTOP)
        started_before_stop = {j for j, pid in executions(log)["start"] if pid == victim.pid}
        try:
            await wait_until(lambda: len(remote(server, "worker")) == 1, "the drop", timeout=30)
        finally:
            victim.send_signal(signal.SIGCONT)
        results = await asyncio.gather(*tasks)
    assert sorted(r["result"] for r in results) == list(range(200))  # every call answered

    def victim_settled() -> bool:
        ran = executions(log)
        started = Counter(j for j, pid in ran["start"] if pid == victim.pid)
        done = Counter(j for j, pid in ran["done"] if pid == victim.pid)
        return started == done and len(remote(server, "worker")) == 2

    await wait_until(victim_settled, "the resumed instance to finish and come back", 30)
    done = Counter(j for j, _ in executions(log)["done"])
    twice = sorted(j for j, n in done.items() if n > 1)
    skipped = [r.getMessage() for r in caplog.records if "did not run" in r.getMessage()]
    print(
        f"\nSIGSTOP figures: {len(started_before_stop)} calls started on the stopped instance "
        f"before the stop; {len(twice)} of 200 ran twice; reported skipped: "
        + (skipped[0].split(" did not run ")[1].split(" call")[0] if skipped else "0")
    )
    assert set(twice) <= started_before_stop
    assert len(twice) <= len(started_before_stop)


async def test_sigkill_of_the_last_instance_waits_for_a_replacement(serve, procs):  # noqa: F811
    server = await serve()
    server.host.config.routing.wait_for_instance = 60.0
    first = procs.provider("remote_providers:Worker", server.url)
    await wait_until(lambda: remote(server, "worker"), "registration")
    async with Client(server.url, token=TOKEN) as client:
        tasks = [
            asyncio.ensure_future(client.invoke("work/do", {"id": i, "delay": 0.5}))
            for i in range(50)
        ]
        await wait_until(lambda: server.in_flight() >= 50, "the calls in flight")
        first.send_signal(signal.SIGKILL)
        await wait_until(lambda: not remote(server, "worker"), "the instance to leave")
        await asyncio.sleep(1.0)  # the scenario: a replacement starts a second later
        procs.provider("remote_providers:Worker", server.url)
        results = await asyncio.gather(*tasks)
        assert sorted(r["result"] for r in results) == list(range(50))
        # A new call for a provider whose last instance left waits too, rather than
        # failing with method_not_found.
        second = next(p for p in procs.procs if p is not first)
        second.send_signal(signal.SIGKILL)
        await wait_until(lambda: not remote(server, "worker"), "the replacement to leave")
        server.host.config.routing.wait_for_instance = 0.2
        try:
            await client.invoke("work/do", {"id": 1})
        except Exception as exc:
            assert getattr(exc, "code", None) == "unavailable" and exc.retryable, exc
        else:
            raise AssertionError("expected unavailable")
